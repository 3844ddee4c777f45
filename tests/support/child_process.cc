#include "support/child_process.h"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <system_error>
#include <thread>

extern char** environ;

namespace flowrun::testing {
namespace {

std::string TempDirectory() {
  const char* t = std::getenv("TMPDIR");
  return (t != nullptr && *t != '\0') ? t : "/tmp";
}

// Creates an empty capture file and returns its path and an O_APPEND fd.
// O_APPEND keeps interleaved stdout/stderr writes from clobbering each other.
std::pair<std::string, int> MakeCaptureFile(const char* tag) {
  std::string path = TempDirectory() + "/flowrun-child-" + tag + "-XXXXXX";
  int fd = mkostemp(path.data(), O_CLOEXEC | O_APPEND);
  if (fd < 0) {
    throw std::system_error(errno, std::generic_category(),
                            "ChildProcess: mkstemp in " + TempDirectory());
  }
  return {path, fd};
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("ChildProcess: cannot read " + path);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// Resolves a program name against the PATH the child will see (not ours: the
// caller may override PATH), the way execvp would.
std::string ResolveProgram(const std::string& name, const std::string& path_var) {
  if (name.find('/') != std::string::npos) return name;
  std::stringstream dirs(path_var.empty() ? "/usr/local/bin:/usr/bin:/bin" : path_var);
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    if (dir.empty()) dir = ".";
    std::string candidate = dir + "/" + name;
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  throw std::system_error(ENOENT, std::generic_category(),
                          "ChildProcess: '" + name + "' not found in PATH=" + path_var);
}

// Everything the child needs after fork, prepared beforehand because only
// async-signal-safe calls are allowed between fork and exec in a
// multi-threaded parent (no malloc, no locks).
struct ChildPlan {
  std::string program;
  std::vector<char*> argv;
  std::vector<char*> envp;
  const char* working_dir = nullptr;
  bool switch_user = false;
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;
  bool die_with_parent = false;
  int parent_death_signal = SIGKILL;
  pid_t parent_pid = 0;
  int out_fd = -1;
  int err_fd = -1;
  int devnull_fd = -1;
  int report_fd = -1;  // write end of the exec-error pipe (close-on-exec)
};

// Runs in the child. Never returns.
[[noreturn]] void RunChild(const ChildPlan& plan) {
  // Report the failing step's errno to the parent, then die.
  auto fail = [&](int step) {
    int payload[2] = {step, errno};
    ssize_t ignored = write(plan.report_fd, payload, sizeof(payload));
    (void)ignored;
    _exit(127);
  };
  // Own process group: terminal/ctest signals aimed at the test's group do not
  // hit the child, and KillGroup()/the destructor can reach its descendants.
  if (setpgid(0, 0) != 0) fail(1);
  // Default signal dispositions and an empty mask: exec keeps ignored signals
  // and the mask, and a child that ignores SIGTERM would surprise tests.
  sigset_t empty;
  sigemptyset(&empty);
  sigprocmask(SIG_SETMASK, &empty, nullptr);
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig != SIGKILL && sig != SIGSTOP) signal(sig, SIG_DFL);
  }
  if (dup2(plan.devnull_fd, STDIN_FILENO) < 0) fail(2);
  if (dup2(plan.out_fd, STDOUT_FILENO) < 0) fail(3);
  if (dup2(plan.err_fd, STDERR_FILENO) < 0) fail(4);
  // Do not leak the test process's sockets/files into the child (a leaked
  // listening socket would keep a port "in use" after the test closed it).
  // The report pipe is already close-on-exec, so mark everything else too.
  if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
    long max_fd = sysconf(_SC_OPEN_MAX);
    if (max_fd < 0 || max_fd > 65536) max_fd = 65536;
    for (int fd = 3; fd < max_fd; ++fd) {
      if (fd != plan.report_fd) close(fd);
    }
  }
  if (plan.switch_user) {
    if (setgroups(plan.groups.size(), plan.groups.data()) != 0) fail(5);
    if (setgid(plan.gid) != 0) fail(6);
    if (setuid(plan.uid) != 0) fail(7);
  }
  // After setuid: changing credentials clears the parent-death signal.
  if (plan.die_with_parent) {
    if (prctl(PR_SET_PDEATHSIG, plan.parent_death_signal) != 0) fail(8);
    // The parent may have died before prctl took effect.
    if (getppid() != plan.parent_pid) _exit(127);
  }
  if (plan.working_dir != nullptr && chdir(plan.working_dir) != 0) fail(9);
  execve(plan.program.c_str(), plan.argv.data(), plan.envp.data());
  fail(10);
  _exit(127);  // unreachable; fail() exits
}

const char* StepName(int step) {
  switch (step) {
    case 1: return "setpgid";
    case 2: case 3: case 4: return "dup2";
    case 5: return "setgroups";
    case 6: return "setgid";
    case 7: return "setuid";
    case 8: return "prctl(PR_SET_PDEATHSIG)";
    case 9: return "chdir";
    case 10: return "execve";
    default: return "child setup";
  }
}

ExitStatus Decode(int raw) {
  ExitStatus s;
  if (WIFEXITED(raw)) {
    s.exited = true;
    s.code = WEXITSTATUS(raw);
  } else if (WIFSIGNALED(raw)) {
    s.signal = WTERMSIG(raw);
  }
  return s;
}

}  // namespace

std::string ExitStatus::ToString() const {
  if (exited) return "exit code " + std::to_string(code);
  if (signal != 0) {
    return "killed by signal " + std::to_string(signal) + " (" + strsignal(signal) + ")";
  }
  return "unknown status";
}

std::unique_ptr<ChildProcess> ChildProcess::Spawn(std::vector<std::string> argv,
                                                  std::map<std::string, std::string> env_overrides,
                                                  Options options) {
  if (argv.empty() || argv[0].empty()) {
    throw std::invalid_argument("ChildProcess::Spawn: empty argv");
  }

  // Environment: inherited (minus unset_env) then overridden.
  std::map<std::string, std::string> env;
  if (options.inherit_env) {
    for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
      std::string kv(*e);
      auto eq = kv.find('=');
      if (eq != std::string::npos) env[kv.substr(0, eq)] = kv.substr(eq + 1);
    }
    for (const auto& name : options.unset_env) env.erase(name);
  }
  for (auto& [k, v] : env_overrides) env[k] = v;
  std::vector<std::string> env_strings;
  env_strings.reserve(env.size());
  for (auto& [k, v] : env) env_strings.push_back(k + "=" + v);

  ChildPlan plan;
  plan.program = ResolveProgram(argv[0], env.count("PATH") ? env["PATH"] : "");
  for (auto& a : argv) plan.argv.push_back(a.data());
  plan.argv.push_back(nullptr);
  for (auto& e : env_strings) plan.envp.push_back(e.data());
  plan.envp.push_back(nullptr);
  if (!options.working_dir.empty()) plan.working_dir = options.working_dir.c_str();
  if (!options.run_as_user.empty()) {
    struct passwd pw_storage;
    struct passwd* pw = nullptr;
    std::vector<char> buf(16384);
    if (getpwnam_r(options.run_as_user.c_str(), &pw_storage, buf.data(), buf.size(), &pw) != 0 ||
        pw == nullptr) {
      throw std::invalid_argument("ChildProcess::Spawn: no such user '" + options.run_as_user + "'");
    }
    plan.switch_user = true;
    plan.uid = pw->pw_uid;
    plan.gid = pw->pw_gid;
    int ngroups = 64;
    plan.groups.resize(ngroups);
    if (getgrouplist(pw->pw_name, pw->pw_gid, plan.groups.data(), &ngroups) < 0) {
      plan.groups.resize(ngroups);
      getgrouplist(pw->pw_name, pw->pw_gid, plan.groups.data(), &ngroups);
    }
    plan.groups.resize(ngroups);
  }
  plan.die_with_parent = options.die_with_parent;
  plan.parent_death_signal = options.parent_death_signal;
  plan.parent_pid = getpid();

  auto [out_path, out_fd] = MakeCaptureFile("out");
  std::string err_path;
  int err_fd = out_fd;
  if (options.separate_stderr) {
    auto [p, fd] = MakeCaptureFile("err");
    err_path = p;
    err_fd = fd;
  }
  int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
  int report[2];
  if (devnull < 0 || pipe2(report, O_CLOEXEC) != 0) {
    int saved = errno;
    close(out_fd);
    if (err_fd != out_fd) close(err_fd);
    if (devnull >= 0) close(devnull);
    unlink(out_path.c_str());
    if (!err_path.empty()) unlink(err_path.c_str());
    throw std::system_error(saved, std::generic_category(), "ChildProcess: pipe/open");
  }
  plan.out_fd = out_fd;
  plan.err_fd = err_fd;
  plan.devnull_fd = devnull;
  plan.report_fd = report[1];

  pid_t pid = fork();
  if (pid == 0) RunChild(plan);
  int fork_errno = errno;
  close(report[1]);
  close(devnull);
  close(out_fd);
  if (err_fd != out_fd) close(err_fd);
  if (pid < 0) {
    close(report[0]);
    unlink(out_path.c_str());
    if (!err_path.empty()) unlink(err_path.c_str());
    throw std::system_error(fork_errno, std::generic_category(), "ChildProcess: fork");
  }
  // Also set the group from the parent so it is in place before Spawn
  // returns, whichever of parent/child runs first. Fails harmlessly (EACCES)
  // once the child has exec'd.
  setpgid(pid, pid);

  // The pipe closes on successful exec (EOF) or carries {step, errno}.
  int payload[2] = {0, 0};
  ssize_t n;
  do {
    n = read(report[0], payload, sizeof(payload));
  } while (n < 0 && errno == EINTR);
  close(report[0]);
  auto child = std::unique_ptr<ChildProcess>(new ChildProcess(pid, out_path, err_path));
  if (n == static_cast<ssize_t>(sizeof(payload))) {
    child->Wait(std::chrono::seconds(10));  // reap the _exit(127)
    throw std::system_error(payload[1], std::generic_category(),
                            std::string("ChildProcess: ") + StepName(payload[0]) + " for '" +
                                plan.program + "' failed");
  }
  return child;
}

ChildProcess::ChildProcess(pid_t pid, std::string output_path, std::string error_path)
    : pid_(pid), output_path_(std::move(output_path)), error_path_(std::move(error_path)) {}

ChildProcess::~ChildProcess() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    PollLocked();
    if (!status_) {
      // The unreaped (possibly zombie) leader keeps the group id reserved, so
      // this cannot hit an unrelated, recycled process group.
      kill(-pid_, SIGKILL);
      kill(pid_, SIGKILL);  // in case the child left its group
      int raw = 0;
      while (waitpid(pid_, &raw, 0) < 0 && errno == EINTR) {
      }
      status_ = Decode(raw);
    }
  }
  unlink(output_path_.c_str());
  if (!error_path_.empty()) unlink(error_path_.c_str());
}

void ChildProcess::PollLocked() {
  if (status_) return;
  int raw = 0;
  pid_t r = waitpid(pid_, &raw, WNOHANG);
  if (r == pid_) {
    status_ = Decode(raw);
  } else if (r < 0 && errno == ECHILD) {
    // Someone else reaped it (e.g. SIGCHLD set to SIG_IGN); the code is lost.
    status_ = ExitStatus{};
  }
}

std::optional<ExitStatus> ChildProcess::Wait(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  // Polling with a short, growing sleep: simple, needs no SIGCHLD handler
  // (which would be process-global state a test library must not own).
  auto nap = std::chrono::microseconds(200);
  for (;;) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      PollLocked();
      if (status_) return status_;
    }
    auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(nap, deadline - now));
    nap = std::min(nap * 2, std::chrono::microseconds(10000));
  }
}

bool ChildProcess::Running() {
  std::lock_guard<std::mutex> lock(mu_);
  PollLocked();
  return !status_.has_value();
}

bool ChildProcess::Kill(int sig) {
  std::lock_guard<std::mutex> lock(mu_);
  if (status_) return false;
  return kill(pid_, sig) == 0;
}

bool ChildProcess::KillGroup(int sig) {
  std::lock_guard<std::mutex> lock(mu_);
  if (status_) return false;
  return kill(-pid_, sig) == 0;
}

std::string ChildProcess::Output() const { return ReadFile(output_path_); }

std::string ChildProcess::ErrorOutput() const {
  return error_path_.empty() ? std::string() : ReadFile(error_path_);
}

}  // namespace flowrun::testing
