#include "kube/kube_cluster.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

extern char** environ;

#ifndef FLOWRUN_CLUSTER_SCRIPTS_DIR
#error "FLOWRUN_CLUSTER_SCRIPTS_DIR must point at tests/cluster"
#endif

namespace flowrun::testing {
namespace {

std::vector<char*> CStrings(std::vector<std::string>& v) {
  std::vector<char*> out;
  for (auto& s : v) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

std::vector<std::string> MergedEnv(const std::map<std::string, std::string>& extra) {
  std::map<std::string, std::string> merged;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string kv = *e;
    auto eq = kv.find('=');
    if (eq != std::string::npos) merged[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  for (const auto& [k, v] : extra) merged[k] = v;
  std::vector<std::string> out;
  for (const auto& [k, v] : merged) out.push_back(k + "=" + v);
  return out;
}

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

std::string LastLine(const std::string& s) {
  std::string t = Trim(s);
  auto nl = t.rfind('\n');
  return nl == std::string::npos ? t : t.substr(nl + 1);
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string Tail(const std::string& path, size_t bytes) {
  std::string s = ReadFile(path);
  return s.size() > bytes ? s.substr(s.size() - bytes) : s;
}

// KEY=value from <dir>/cluster.env (the last one wins).
std::string EnvValue(const std::string& file, const std::string& key) {
  std::istringstream in(ReadFile(file));
  std::string line, value;
  while (std::getline(in, line))
    if (line.rfind(key + "=", 0) == 0) value = line.substr(key.size() + 1);
  return value;
}

KubeCluster* g_cluster = nullptr;
std::mutex g_mu;

}  // namespace

CommandResult RunCommand(const std::vector<std::string>& argv_in, const std::map<std::string, std::string>& env) {
  CommandResult result;
  if (argv_in.empty()) return result;
  std::vector<std::string> argv = argv_in;
  std::vector<std::string> envs = MergedEnv(env);
  auto args = CStrings(argv);
  auto envp = CStrings(envs);
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) {
    result.output = std::string("pipe: ") + strerror(errno);
    return result;
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, p[1], 1);
  posix_spawn_file_actions_adddup2(&fa, p[1], 2);
  pid_t pid = -1;
  int rc = posix_spawnp(&pid, args[0], &fa, nullptr, args.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  close(p[1]);
  if (rc != 0) {
    close(p[0]);
    result.output = "cannot run " + argv[0] + ": " + strerror(rc);
    return result;
  }
  char buf[8192];
  for (;;) {
    ssize_t n = read(p[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    result.output.append(buf, static_cast<size_t>(n));
  }
  close(p[0]);
  int st = 0;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  result.exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  return result;
}

KubeCluster& KubeCluster::Get() {
  std::lock_guard<std::mutex> lock(g_mu);
  if (g_cluster == nullptr) {
    g_cluster = new KubeCluster();  // leaked on purpose: no static destructor order games
    g_cluster->Start();
  }
  return *g_cluster;
}

void KubeCluster::StopIfStarted() {
  std::lock_guard<std::mutex> lock(g_mu);
  if (g_cluster != nullptr) g_cluster->Stop();
}

std::string KubeCluster::scripts_dir() const { return FLOWRUN_CLUSTER_SCRIPTS_DIR; }
std::string KubeCluster::Script(const std::string& name) const { return scripts_dir() + "/" + name; }

void KubeCluster::Start() {
  auto t0 = std::chrono::steady_clock::now();
  const char* tmp = std::getenv("TMPDIR");
  std::string tmpl = std::string(tmp != nullptr && *tmp ? tmp : "/tmp") + "/flowrun-kube-XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) {
    std::cerr << "KubeCluster: mkdtemp: " << strerror(errno) << "\n";
    std::abort();
  }
  dir_ = tmpl;

  CommandResult build = RunCommand({Script("build.sh")});
  if (!build.ok()) {
    std::cerr << "KubeCluster: tests/cluster/build.sh failed:\n" << build.output << "\n";
    std::abort();
  }
  bin_dir_ = LastLine(build.output);

  // The watchdog: its stdin is a pipe whose only writer is this process;
  // when we die (any way), read sees EOF and it stops the cluster. Its own
  // session, so a process-group kill of the test does not take it along.
  const bool keep = std::getenv("FLOWRUN_KUBE_KEEP") != nullptr;
  int p[2];
  if (pipe2(p, O_CLOEXEC) == 0) {
    std::vector<std::string> argv = {
        "setsid", "bash", "-c",
        "read -r _ || true; \"$0\" stop \"$1\" >/dev/null 2>&1; [ \"$2\" = 1 ] || rm -rf \"$1\"",
        Script("cluster.sh"), dir_, keep ? "1" : "0"};
    std::vector<std::string> envs = MergedEnv({});
    auto args = CStrings(argv);
    auto envp = CStrings(envs);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, p[0], 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    pid_t pid;
    if (posix_spawnp(&pid, args[0], &fa, nullptr, args.data(), envp.data()) == 0) {
      watchdog_fd_ = p[1];
      // Reap it in the background so it does not linger as a zombie.
      std::thread([pid] {
        int st;
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
        }
      }).detach();
    } else {
      close(p[1]);
    }
    posix_spawn_file_actions_destroy(&fa);
    close(p[0]);
  }

  CommandResult start = RunCommand({Script("cluster.sh"), "start", dir_});
  if (!start.ok()) {
    std::cerr << "KubeCluster: cluster.sh start " << dir_ << " failed:\n" << start.output << "\n";
    for (const char* log : {"etcd", "kube-apiserver", "kube-controller-manager", "nodesim"})
      std::cerr << "--- " << log << ".log (tail)\n" << Tail(dir_ + "/logs/" + log + ".log", 2000) << "\n";
    RunCommand({Script("cluster.sh"), "stop", dir_});
    std::abort();
  }
  running_ = true;
  std::string env_file = dir_ + "/cluster.env";
  apiserver_url_ = "https://127.0.0.1:" + EnvValue(env_file, "APISERVER_PORT");
  etcd_endpoint_ = "http://127.0.0.1:" + EnvValue(env_file, "ETCD_PORT");
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::cerr << "KubeCluster: started in " << dir_ << " (" << apiserver_url_ << ") in " << secs << " s\n";
}

void KubeCluster::Stop() {
  std::lock_guard<std::mutex> lock(mu_);
  if (running_) {
    RunCommand({Script("cluster.sh"), "stop", dir_});
    running_ = false;
  }
  if (watchdog_fd_ >= 0) {
    close(watchdog_fd_);  // the watchdog stops (no-op now) and removes the dir
    watchdog_fd_ = -1;
  }
}

void KubeCluster::ClusterCmd(const std::string& cmd) {
  CommandResult r = RunCommand({Script("cluster.sh"), cmd, dir_});
  if (!r.ok()) ADD_FAILURE() << "cluster.sh " << cmd << " failed:\n" << r.output;
}

void KubeCluster::RestartApiserver() { ClusterCmd("restart-apiserver"); }
void KubeCluster::StopApiserver() { ClusterCmd("stop-apiserver"); }
void KubeCluster::StartApiserver() { ClusterCmd("start-apiserver"); }

void KubeCluster::KillApiserver() {
  std::string pid = Trim(ReadFile(dir_ + "/pids/kube-apiserver.pid"));
  if (pid.empty()) {
    ADD_FAILURE() << "no kube-apiserver pid file";
    return;
  }
  pid_t p = static_cast<pid_t>(std::atol(pid.c_str()));
  // Only the apiserver this cluster started (cluster.sh marks its environment).
  std::string environ_text = ReadFile("/proc/" + pid + "/environ");
  if (environ_text.find("FLOWRUN_CLUSTER_PROC=" + dir_) == std::string::npos) {
    ADD_FAILURE() << "pid " << pid << " is not this cluster's kube-apiserver";
    return;
  }
  kill(p, SIGKILL);
  for (int i = 0; i < 100 && kill(p, 0) == 0; ++i) {
    std::string status = ReadFile("/proc/" + pid + "/status");
    if (status.find("State:\tZ") != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

CommandResult KubeCluster::KubectlResult(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {bin_dir_ + "/kubectl", "--kubeconfig=" + admin_kubeconfig()};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunCommand(argv);
}

std::string KubeCluster::Kubectl(const std::vector<std::string>& args, bool allow_failure) {
  CommandResult r = KubectlResult(args);
  if (!r.ok() && !allow_failure) {
    std::string joined;
    for (const auto& a : args) joined += " " + a;
    ADD_FAILURE() << "kubectl" << joined << " exited " << r.exit_code << ":\n" << r.output;
  }
  return r.output;
}

std::string KubeCluster::MintUser(const std::string& name, const std::vector<std::string>& groups) {
  std::vector<std::string> argv = {Script("mint-user.sh"), dir_, name};
  argv.insert(argv.end(), groups.begin(), groups.end());
  CommandResult r = RunCommand(argv);
  if (!r.ok()) ADD_FAILURE() << "mint-user.sh " << name << " failed:\n" << r.output;
  return LastLine(r.output);
}

std::string KubeCluster::ServiceAccountKubeconfig(const std::string& ns, const std::string& sa,
                                                  const std::string& duration) {
  CommandResult r = RunCommand({Script("sa-token.sh"), dir_, ns, sa, duration});
  if (!r.ok()) ADD_FAILURE() << "sa-token.sh " << ns << " " << sa << " failed:\n" << r.output;
  return LastLine(r.output);
}

std::string KubeCluster::ServiceAccountToken(const std::string& ns, const std::string& sa,
                                             const std::string& duration) {
  CommandResult r = KubectlResult({"create", "token", sa, "-n", ns, "--duration=" + duration});
  if (!r.ok()) ADD_FAILURE() << "kubectl create token failed:\n" << r.output;
  return LastLine(r.output);
}

std::string KubeCluster::CreateNamespace(const std::string& name) {
  CommandResult r = KubectlResult({"create", "namespace", name});
  if (!r.ok() && r.output.find("AlreadyExists") == std::string::npos)
    ADD_FAILURE() << "kubectl create namespace " << name << ":\n" << r.output;
  return name;
}

}  // namespace flowrun::testing
