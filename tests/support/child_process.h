// ChildProcess runs a real program as a child of the test process.
//
// The program is exec'd directly (no shell, so no quoting surprises), in its
// own process group, with stdin on /dev/null and stdout+stderr captured to a
// temporary file that Output() reads back at any time, even while it runs.
//
// Ownership: the ChildProcess object owns the child. Its destructor sends
// SIGKILL to the child's whole process group if the child has not been reaped
// yet, reaps it, and deletes the capture files. Nothing outlives the object
// unless the program itself daemonizes into another process group.
//
// Thread safety: all methods may be called concurrently (for example Wait()
// in one thread and Kill() in another); the reap state is mutex-protected.
//
// Errors: Spawn() throws std::system_error when the program cannot be found
// or exec'd (the exec errno is reported back from the child through a
// close-on-exec pipe, so a missing binary fails loudly here rather than as a
// mysterious exit code 127 later) and std::invalid_argument for an empty argv
// or an unknown run_as_user. Other methods do not throw except Output(),
// which throws std::runtime_error if the capture file vanished.
#ifndef FLOWRUN_TESTS_SUPPORT_CHILD_PROCESS_H_
#define FLOWRUN_TESTS_SUPPORT_CHILD_PROCESS_H_

#include <sys/types.h>

#include <chrono>
#include <csignal>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace flowrun::testing {

// How a child ended. Exactly one of `exited` / signal != 0 describes it.
struct ExitStatus {
  bool exited = false;  // true: the program returned or called exit()
  int code = -1;        // exit code when exited, else -1
  int signal = 0;       // terminating signal when killed, else 0

  // True for a normal exit with code 0.
  bool ok() const { return exited && code == 0; }
  // "exit code 3" / "killed by signal 15 (Terminated)", for assertion text.
  std::string ToString() const;
};

class ChildProcess {
 public:
  struct Options {
    // true: the child starts from this process's environment; false: from an
    // empty one (only env_overrides are set).
    bool inherit_env = true;
    // Variables removed from the inherited environment before env_overrides
    // are applied.
    std::vector<std::string> unset_env;
    // Directory the child starts in; empty keeps ours.
    std::string working_dir;
    // When non-empty the child drops to this user (uid, gid and supplementary
    // groups) before exec. Needs root; PostgresServer uses it because
    // PostgreSQL refuses to run as root.
    std::string run_as_user;
    // false: stderr goes into the same capture file as stdout (interleaved in
    // write order). true: stderr is captured separately, see ErrorOutput().
    bool separate_stderr = false;
    // true: the kernel sends `parent_death_signal` to the child when the
    // *thread* that spawned it exits (Linux PR_SET_PDEATHSIG semantics), so a
    // crashed test binary does not leak servers. Only use it when spawning
    // from a thread that outlives the child, usually the main thread.
    bool die_with_parent = false;
    int parent_death_signal = SIGKILL;
  };

  // Starts argv[0] (looked up in the child's PATH when it has no '/') with
  // argv as its arguments. env_overrides are set on top of the (possibly
  // inherited, minus unset_env) environment.
  static std::unique_ptr<ChildProcess> Spawn(
      std::vector<std::string> argv,
      std::map<std::string, std::string> env_overrides,
      Options options);
  // (An overload, not a default argument: GCC rejects `Options options = {}`
  // while the enclosing class is incomplete.)
  static std::unique_ptr<ChildProcess> Spawn(
      std::vector<std::string> argv,
      std::map<std::string, std::string> env_overrides = {}) {
    return Spawn(std::move(argv), std::move(env_overrides), Options());
  }

  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ~ChildProcess();

  // The child's pid, which is also its process group id. Stays valid (as a
  // number) after the child was reaped; do not signal it yourself then.
  pid_t pid() const { return pid_; }

  // Waits up to `timeout` for the child to end and reaps it. Returns its
  // status, or nullopt if it is still running at the deadline. Once reaped,
  // every later call returns the same status immediately.
  std::optional<ExitStatus> Wait(std::chrono::milliseconds timeout);

  // Non-blocking: true while the child has not ended.
  bool Running();

  // Sends `sig` to the child only. Returns false (and does nothing) if the
  // child has already been reaped, so a stale pid is never signalled.
  bool Kill(int sig);
  // Sends `sig` to the child's whole process group (the child plus anything it
  // forked that stayed in the group). Same false-after-reap rule as Kill().
  bool KillGroup(int sig);

  // Everything captured so far: stdout and stderr, or only stdout when
  // Options::separate_stderr was set.
  std::string Output() const;
  // Captured stderr when Options::separate_stderr was set, else "".
  std::string ErrorOutput() const;
  // Path of the stdout capture file (removed by the destructor).
  const std::string& output_path() const { return output_path_; }

 private:
  ChildProcess(pid_t pid, std::string output_path, std::string error_path);

  // Reaps the child if it has ended; requires mu_ held.
  void PollLocked();

  const pid_t pid_;
  const std::string output_path_;
  const std::string error_path_;  // empty unless separate_stderr

  mutable std::mutex mu_;
  std::optional<ExitStatus> status_;  // set once reaped; guarded by mu_
};

}  // namespace flowrun::testing

#endif  // FLOWRUN_TESTS_SUPPORT_CHILD_PROCESS_H_
