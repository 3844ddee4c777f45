// Internals of the Kubernetes client shared by its source files (not installed).
#pragma once

#include <chrono>
#include <ctime>
#include <map>
#include <vector>
#include <mutex>
#include <optional>
#include <string>

#include "flowrun/clock.h"
#include "flowrun/kube/config.h"
#include "flowrun/status.h"

namespace flowrun::kube::internal {

inline Status Unauthenticated(std::string m) { return {StatusCode::kUnauthenticated, std::move(m)}; }

StatusOr<std::string> ReadFileToString(const std::string& path);
StatusOr<std::string> Base64Decode(const std::string& in);

// What authenticates the next request besides the transport's static TLS.
struct AuthState {
  std::string token;                            // bearer token, "" for none
  std::string client_cert_pem, client_key_pem;  // from an exec plugin, else ""
};

// Bearer tokens and exec-plugin credentials, cached and refreshed:
//   static token      as is
//   token file        re-read when its mtime/size change, at least every
//                     minute, and after a 401 (in-cluster tokens rotate)
//   exec plugin       run (fork/exec, no shell) on first use, again after
//                     status.expirationTimestamp or a 401
// Thread safety: all methods may be called concurrently; one plugin run at a time.
class Credentials {
 public:
  // `clock` (not owned, outlives this): token-file age and exec expiry.
  Credentials(const ClusterConfig& config, Clock* clock);
  StatusOr<AuthState> Current();
  // A request with `used` got 401: drop it so the next Current() refreshes.
  // Returns false when nothing could change (static credentials).
  bool Invalidate(const AuthState& used);
  int exec_runs() const;  // for tests and logs

 private:
  Status RunExec();  // with mu_ held
  Status ReadTokenFile(bool force);  // with mu_ held

  const ClusterConfig config_;
  Clock* const clock_;
  mutable std::mutex mu_;
  AuthState exec_state_;
  bool exec_valid_ = false;
  std::optional<std::chrono::system_clock::time_point> exec_expiry_;
  int exec_runs_ = 0;
  std::string file_token_;
  bool file_read_ = false;
  struct timespec file_mtime_ {};
  long long file_size_ = -1;
  std::chrono::steady_clock::time_point file_read_at_{};
};

// Runs argv[0] (PATH lookup without '/') without a shell, with `env` added
// to this process's environment; returns stdout. Killed after `timeout` of
// real (steady) time: the child runs in real time whatever a test clock says,
// and poll() waits in real time, so this deadline is not a Clock's.
struct ExecResult {
  int exit_code = -1;
  std::string out, err;
};
StatusOr<ExecResult> RunProgram(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
                                std::chrono::milliseconds timeout);

}  // namespace flowrun::kube::internal
