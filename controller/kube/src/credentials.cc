// Bearer tokens, token files and exec credential plugins.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>

#include <nlohmann/json.hpp>

#include "flowrun/rfc3339.h"
#include "internal.h"

extern char** environ;

namespace flowrun::kube::internal {

StatusOr<ExecResult> RunProgram(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
                                std::chrono::milliseconds timeout) {
  if (argv.empty() || argv[0].empty()) return InvalidArgument("empty command");
  // Environment: ours, overridden by `env`.
  std::map<std::string, std::string> merged;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string kv = *e;
    auto eq = kv.find('=');
    if (eq != std::string::npos) merged[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  for (const auto& [k, v] : env) merged[k] = v;
  std::vector<std::string> env_strings;
  for (const auto& [k, v] : merged) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp, args;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> argv_copy = argv;
  for (auto& s : argv_copy) args.push_back(s.data());
  args.push_back(nullptr);

  int out_pipe[2], err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0) return Unavailable(std::string("pipe: ") + strerror(errno));
  if (pipe2(err_pipe, O_CLOEXEC) != 0) {
    close(out_pipe[0]);
    close(out_pipe[1]);
    return Unavailable(std::string("pipe: ") + strerror(errno));
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, out_pipe[1], 1);
  posix_spawn_file_actions_adddup2(&fa, err_pipe[1], 2);
  pid_t pid = -1;
  // posix_spawnp: no shell; a name without '/' is looked up in PATH.
  int rc = posix_spawnp(&pid, args[0], &fa, nullptr, args.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  close(out_pipe[1]);
  close(err_pipe[1]);
  if (rc != 0) {
    close(out_pipe[0]);
    close(err_pipe[0]);
    return Unavailable("cannot run " + argv[0] + ": " + strerror(rc));
  }
  ExecResult result;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  bool out_open = true, err_open = true, timed_out = false;
  char buf[4096];
  while (out_open || err_open) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    struct pollfd fds[2];
    int n = 0;
    if (out_open) fds[n++] = {out_pipe[0], POLLIN, 0};
    if (err_open) fds[n++] = {err_pipe[0], POLLIN, 0};
    int pr = poll(fds, n, static_cast<int>(left.count()));
    if (pr < 0 && errno == EINTR) continue;
    if (pr <= 0) continue;
    for (int i = 0; i < n; ++i) {
      if (fds[i].revents == 0) continue;
      ssize_t r = read(fds[i].fd, buf, sizeof buf);
      if (r < 0 && errno == EINTR) continue;
      bool is_out = fds[i].fd == out_pipe[0];
      if (r <= 0) {
        (is_out ? out_open : err_open) = false;
      } else {
        std::string& dst = is_out ? result.out : result.err;
        if (dst.size() < (16u << 20)) dst.append(buf, static_cast<size_t>(r));
      }
    }
  }
  close(out_pipe[0]);
  close(err_pipe[0]);
  if (timed_out) kill(pid, SIGKILL);
  int wstatus = 0;
  while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
  }
  if (timed_out) return DeadlineExceeded(argv[0] + " did not finish within " + std::to_string(timeout.count()) + " ms");
  result.exit_code = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
  return result;
}

Credentials::Credentials(const ClusterConfig& config, Clock* clock) : config_(config), clock_(clock) {}

int Credentials::exec_runs() const {
  std::lock_guard<std::mutex> lock(mu_);
  return exec_runs_;
}

Status Credentials::ReadTokenFile(bool force) {
  struct stat st {};
  if (::stat(config_.token_file.c_str(), &st) != 0)
    return Unauthenticated("token file " + config_.token_file + ": " + strerror(errno));
  auto now = clock_->MonotonicNow();
  bool changed = st.st_mtim.tv_sec != file_mtime_.tv_sec || st.st_mtim.tv_nsec != file_mtime_.tv_nsec ||
                 static_cast<long long>(st.st_size) != file_size_;
  if (file_read_ && !force && !changed && now - file_read_at_ < std::chrono::minutes(1)) return Status::Ok();
  auto content = ReadFileToString(config_.token_file);
  if (!content.ok()) return Unauthenticated("token file: " + content.status().message());
  std::string t = *content;
  while (!t.empty() && (t.back() == '\n' || t.back() == '\r' || t.back() == ' ')) t.pop_back();
  file_token_ = t;
  file_read_ = true;
  file_mtime_ = st.st_mtim;
  file_size_ = static_cast<long long>(st.st_size);
  file_read_at_ = now;
  return Status::Ok();
}

Status Credentials::RunExec() {
  const ExecPlugin& plugin = *config_.exec;
  std::vector<std::string> argv{plugin.command};
  argv.insert(argv.end(), plugin.args.begin(), plugin.args.end());
  std::map<std::string, std::string> env = plugin.env;
  nlohmann::json info = {{"apiVersion", plugin.api_version},
                         {"kind", "ExecCredential"},
                         {"spec", {{"interactive", false}}}};
  env["KUBERNETES_EXEC_INFO"] = info.dump();
  ++exec_runs_;
  auto res = RunProgram(argv, env, std::chrono::seconds(60));
  if (!res.ok()) return Unauthenticated("exec plugin: " + res.status().message());
  if (res->exit_code != 0)
    return Unauthenticated("exec plugin " + plugin.command + " exited with " + std::to_string(res->exit_code) +
                           ": " + res->err.substr(0, 1024));
  nlohmann::json cred = nlohmann::json::parse(res->out, nullptr, false);
  if (cred.is_discarded() || !cred.is_object())
    return Unauthenticated("exec plugin " + plugin.command + " printed no JSON ExecCredential");
  if (cred.value("kind", "") != "ExecCredential")
    return Unauthenticated("exec plugin output is not an ExecCredential");
  auto st = cred.find("status");
  if (st == cred.end() || !st->is_object()) return Unauthenticated("exec plugin output has no status");
  AuthState state;
  state.token = st->value("token", "");
  state.client_cert_pem = st->value("clientCertificateData", "");
  state.client_key_pem = st->value("clientKeyData", "");
  if (state.token.empty() && (state.client_cert_pem.empty() || state.client_key_pem.empty()))
    return Unauthenticated("exec plugin status has neither token nor clientCertificateData+clientKeyData");
  exec_expiry_.reset();
  std::string exp = st->value("expirationTimestamp", "");
  if (!exp.empty()) {
    exec_expiry_ = ParseTime(exp);
    if (!exec_expiry_) return Unauthenticated("exec plugin: bad expirationTimestamp \"" + exp + "\"");
  }
  exec_state_ = std::move(state);
  exec_valid_ = true;
  return Status::Ok();
}

StatusOr<AuthState> Credentials::Current() {
  std::lock_guard<std::mutex> lock(mu_);
  if (config_.exec) {
    bool expired = exec_expiry_ && clock_->Now() >= *exec_expiry_;
    if (!exec_valid_ || expired) FLOWRUN_RETURN_IF_ERROR(RunExec());
    return exec_state_;
  }
  AuthState state;
  if (!config_.token_file.empty()) {
    FLOWRUN_RETURN_IF_ERROR(ReadTokenFile(false));
    state.token = file_token_;
  } else {
    state.token = config_.bearer_token;
  }
  return state;
}

bool Credentials::Invalidate(const AuthState& used) {
  std::lock_guard<std::mutex> lock(mu_);
  if (config_.exec) {
    // Another thread may have refreshed already.
    if (exec_valid_ && exec_state_.token == used.token && exec_state_.client_cert_pem == used.client_cert_pem)
      exec_valid_ = false;
    return true;
  }
  if (!config_.token_file.empty()) {
    if (file_token_ == used.token) file_read_ = false;
    return true;
  }
  return false;
}

}  // namespace flowrun::kube::internal
