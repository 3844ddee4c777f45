// KubeCluster: a real Kubernetes control plane (etcd, kube-apiserver,
// kube-controller-manager, nodesim) for tests, from tests/cluster/.
//
//   #include "kube/kube_cluster.h"       (target flowrun_kube_test_support)
//   auto& c = flowrun::testing::KubeCluster::Get();   // starts it on first use
//   auto cfg = flowrun::kube::LoadKubeconfig(c.admin_kubeconfig());
//   c.Kubectl({"get", "pods", "-A"});                  // output (stdout+stderr)
//
// One cluster per test process, started lazily by Get() (tests that never call
// it start nothing) in a fresh temporary directory: `tests/cluster/build.sh`
// (warm: instant) then `cluster.sh start <dir>` (~5 s). It is stopped by the
// gtest Environment below at the end of the run, and also - even if the
// process crashes or is killed - by a watchdog process that waits for this
// process to die. FLOWRUN_KUBE_KEEP=1 keeps the (stopped) directory and its
// logs for a post-mortem; its path is printed when the cluster starts.
//
// Environment read at start: FLOWRUN_ETCD_COMPACTION_INTERVAL (cluster.sh's
// kube-apiserver --etcd-compaction-interval; default 5m) and the other
// cluster.sh variables (FLOWRUN_APISERVER_ARGS, FLOWRUN_NODESIM_ARGS, ...),
// passed through unchanged.
//
// main(): linking flowrun_kube_test_support gives a main() that registers
// KubeClusterEnvironment (unless the test defines its own main, which should
// then call ::testing::AddGlobalTestEnvironment(new KubeClusterEnvironment)).
//
// Thread safety: Get() and every method may be called from any thread.
// Failures to start abort the test run with a message (gtest FAIL in Get()
// cannot return a cluster): Get() calls std::abort after printing the logs'
// tails.
#pragma once

#include <map>
#include <mutex>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace flowrun::testing {

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr interleaved
  bool ok() const { return exit_code == 0; }
};

// Runs argv (no shell; argv[0] looked up in PATH) and collects its output.
CommandResult RunCommand(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env = {});

class KubeCluster {
 public:
  // The process's cluster, started on first call.
  static KubeCluster& Get();
  // Stops the cluster if one was started (idempotent). Called by the Environment.
  static void StopIfStarted();

  const std::string& dir() const { return dir_; }
  const std::string& bin_dir() const { return bin_dir_; }
  std::string admin_kubeconfig() const { return dir_ + "/admin.kubeconfig"; }
  std::string ca_file() const { return dir_ + "/pki/ca.crt"; }
  std::string apiserver_url() const { return apiserver_url_; }
  std::string etcd_endpoint() const { return etcd_endpoint_; }
  std::string scripts_dir() const;  // tests/cluster in the source tree

  // The cluster's kubectl with the admin kubeconfig; output (stdout+stderr).
  // ADD_FAILURE()s when kubectl exits non-zero unless `allow_failure`.
  std::string Kubectl(const std::vector<std::string>& args, bool allow_failure = false);
  CommandResult KubectlResult(const std::vector<std::string>& args);

  // `cluster.sh restart-apiserver`: same port, certs and etcd; ~3 s.
  void RestartApiserver();
  void StopApiserver();
  void StartApiserver();
  // SIGKILLs kube-apiserver (connections break without a graceful close).
  void KillApiserver();

  // A kubeconfig for a user with a client certificate signed by the cluster
  // CA (`mint-user.sh`); no permissions unless RBAC grants some.
  std::string MintUser(const std::string& name, const std::vector<std::string>& groups = {});
  // A kubeconfig with a token of ServiceAccount ns/sa (`sa-token.sh`; the SA
  // must exist, e.g. "default" in any namespace).
  std::string ServiceAccountKubeconfig(const std::string& ns, const std::string& sa,
                                       const std::string& duration = "1h");
  // A TokenRequest token for ns/sa (`kubectl create token`).
  std::string ServiceAccountToken(const std::string& ns, const std::string& sa, const std::string& duration = "1h");

  // Creates a namespace (ok if it exists) and returns its name.
  std::string CreateNamespace(const std::string& name);

 private:
  KubeCluster() = default;
  void Start();
  void Stop();
  std::string Script(const std::string& name) const;
  void ClusterCmd(const std::string& cmd);

  std::string dir_, bin_dir_, apiserver_url_, etcd_endpoint_;
  int watchdog_fd_ = -1;
  bool running_ = false;
  std::mutex mu_;
};

// Stops the cluster at the end of the test program.
class KubeClusterEnvironment : public ::testing::Environment {
 public:
  void TearDown() override { KubeCluster::StopIfStarted(); }
};

}  // namespace flowrun::testing
