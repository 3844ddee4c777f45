// The chart's RBAC is sufficient: helm installs helm/flowrun into the test
// control plane (replicaCount=0: nodesim would run the Deployment's pods as
// local processes by image, and the controller's image is not a local
// program), then the real flowrun-controller runs as a child process with a
// TokenRequest token of the chart's ServiceAccount — not as admin — and a
// research run goes apply → Waiting → answer → Succeeded. A second run is
// answered by a person bound to flowrun-approver and deleted by one bound to
// flowrun-author; the controller (still the ServiceAccount) removes its
// finalizer. Leader election uses the chart's Lease (get/update only).
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "e2e/e2e_world.h"

namespace flowrun::testing {
namespace {

constexpr char kReleaseNs[] = "flowrun-system";
constexpr char kServiceAccount[] = "flowrun-controller";

// helm with the cluster's admin kubeconfig; fails the test on a non-zero exit.
std::string Helm(E2eWorld& w, std::vector<std::string> args) {
  args.insert(args.begin(), w.cluster->bin_dir() + "/helm");
  CommandResult r = RunCommand(args, {{"KUBECONFIG", w.cluster->admin_kubeconfig()},
                                      {"HELM_CACHE_HOME", w.dir + "/helm-cache"},
                                      {"HELM_CONFIG_HOME", w.dir + "/helm-config"},
                                      {"HELM_DATA_HOME", w.dir + "/helm-data"}});
  EXPECT_TRUE(r.ok()) << r.output;
  return r.output;
}

// kubectl as another identity (a kubeconfig of MintUser / ServiceAccountKubeconfig).
CommandResult KubectlAs(E2eWorld& w, const std::string& kubeconfig, std::vector<std::string> args) {
  args.insert(args.begin(), {w.cluster->bin_dir() + "/kubectl", "--kubeconfig", kubeconfig, "-n", w.options.ns});
  return RunCommand(args);
}

class HelmLifecycle : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    E2eWorld& w = E2eWorld::Get({.apply_crds = false, .start_controller = false});
    w.cluster->CreateNamespace(kReleaseNs);
    // No migrate hook: nodesim runs only the research agent's image, and the
    // controller this test starts migrates at start anyway.
    Helm(w, {"install", "flowrun", FLOWRUN_SOURCE_DIR "/helm/flowrun", "-n", kReleaseNs, "--set", "replicaCount=0",
             "--set", "migrate.enabled=false"});
    std::string sa = w.cluster->ServiceAccountKubeconfig(kReleaseNs, kServiceAccount);
    w.StartController({.kubeconfig = sa,
                       .args = {"--leader-elect", "--leader-election-namespace", kReleaseNs,
                                "--leader-election-name", "flowrun-controller", "--database-secret",
                                "flowrun-database/url"}});
  }
};

TEST_F(HelmLifecycle, ControllerWithTheChartsServiceAccountRunsTheResearchAgent) {
  E2eWorld& w = E2eWorld::Get();
  ASSERT_TRUE(w.ControllerRunning()) << w.ControllerLog();
  int port = HealthPort(*w.controller());
  ASSERT_GT(port, 0) << w.ControllerLog();
  // Ready = informers synced (list/watch allowed) and leading (the chart's Lease).
  ASSERT_TRUE(WaitReady(port, std::chrono::seconds(60))) << w.ControllerLog();
  EXPECT_NE(w.cluster->Kubectl({"get", "lease", "flowrun-controller", "-n", kReleaseNs, "-o",
                                "jsonpath={.spec.holderIdentity}"})
                .size(),
            0u);
  EXPECT_TRUE(w.ExpectResearchLifecycle("helm-1")) << w.ControllerLog();
  // Nothing was refused to the controller on the way.
  EXPECT_EQ(w.ControllerLog().find("forbidden"), std::string::npos) << Tail(w.ControllerLog(), 4000);
}

TEST_F(HelmLifecycle, ApproverAnswersAuthorDeletesControllerCleansUp) {
  E2eWorld& w = E2eWorld::Get();
  const std::string& ns = w.options.ns;
  std::string alice = w.cluster->MintUser("alice");
  std::string arthur = w.cluster->MintUser("arthur");
  w.cluster->Kubectl({"create", "rolebinding", "alice-approves", "-n", ns, "--clusterrole=flowrun-approver",
                      "--user=alice"});
  w.cluster->Kubectl({"create", "rolebinding", "arthur-authors", "-n", ns, "--clusterrole=flowrun-author",
                      "--user=arthur"});

  w.ApplyResearchRun("helm-2");
  ASSERT_TRUE(w.WaitPhase("helm-2", "Waiting"));
  // The author may not answer; the approver may.
  CommandResult denied = KubectlAs(w, arthur, {"patch", "flowrun", "helm-2", "--subresource=status", "--type=merge",
                                               "-p", R"({"status":{"answers":{"proceed":true}}})"});
  EXPECT_FALSE(denied.ok());
  EXPECT_NE(denied.output.find("forbidden"), std::string::npos) << denied.output;
  CommandResult answered = KubectlAs(w, alice, {"patch", "flowrun", "helm-2", "--subresource=status", "--type=merge",
                                                "-p", R"({"status":{"answers":{"proceed":true}}})"});
  ASSERT_TRUE(answered.ok()) << answered.output;
  ASSERT_TRUE(w.WaitPhase("helm-2", "Succeeded"));

  std::string uid = w.Uid("helm-2");
  ASSERT_FALSE(uid.empty());
  CommandResult deleted = KubectlAs(w, arthur, {"delete", "flowrun", "helm-2", "--timeout=90s"});
  ASSERT_TRUE(deleted.ok()) << deleted.output << w.Diagnostics("helm-2");
  EXPECT_TRUE(Eventually([&] { return w.JobsOf("helm-2").empty(); }, std::chrono::seconds(60)))
      << w.Diagnostics("helm-2");
  EXPECT_EQ(w.Psql("SELECT count(*) FROM flowrun.runs WHERE run_uid = '" + uid + "'"), "0");
}

}  // namespace
}  // namespace flowrun::testing
