// The Manager (controller/app/manager.h): leader election, the health and
// metrics servers and the loop while leading, against the loop's fake
// cluster (app_loop_fixture.h, which also serves Leases) on loopback. No
// cluster, no database (the metrics server is off: its totals need
// PostgreSQL; tests/metrics covers it).
#include <cstdio>
#include <fstream>
#include <sstream>

#include "app_loop_fixture.h"
#include "core_world.h"
#include "flowrun/controller/app/health_server.h"
#include "flowrun/controller/app/manager.h"
#include "support/local_http.h"

namespace {

using namespace app_loop_test;
using flowrun::testing::Eventually;
using flowrun::testing::HttpGetStatus;

std::string TempFile(const std::string& content) {
  char path[] = "/tmp/flowrun-manager-test-XXXXXX";
  int fd = mkstemp(path);
  EXPECT_GE(fd, 0);
  close(fd);
  std::ofstream(path) << content;
  return path;
}

TEST(AppManager, LeaseNamespaceIsTheFlagElseThePodsNamespaceElseDefault) {
  std::string file = TempFile("flowrun-system\n");
  EXPECT_EQ(fa::LeaseNamespace("ops", file), "ops");
  EXPECT_EQ(fa::LeaseNamespace("", file), "flowrun-system");
  EXPECT_EQ(fa::LeaseNamespace("", "/nonexistent/namespace"), "default");
  std::string empty = TempFile("");
  EXPECT_EQ(fa::LeaseNamespace("", empty), "default");
  std::remove(file.c_str());
  std::remove(empty.c_str());
}

TEST(AppManager, LeaderIdentityNamesTheHost) { EXPECT_EQ(fa::LeaderIdentity("pod-7", 42), "pod-7_42"); }

// What main builds, minus PostgreSQL: a loop on the fake cluster and a
// Manager around it, logging into `log_text`.
struct Process {
  explicit Process(fa::Flags flags) : log("info", &log_text), metrics("flowrun", "test", 1) {
    cluster.Seed("flowruns", json::array({core_test::MakeFlowRun()}));
    flags.workers = 1;
    fa::FlowRunControllerDeps d;
    d.client = &cluster;
    d.open_admin = [this]() -> StatusOr<std::unique_ptr<flowrun::RunAdmin>> {
      return std::unique_ptr<flowrun::RunAdmin>(std::make_unique<FakeSession>(&db));
    };
    d.log = &log;
    d.metrics = &metrics;
    d.phases = &phases;
    controller = std::make_unique<fa::FlowRunController>(flags, fa::ToControllerConfig(flags), std::move(d));
    fa::ManagerDeps md;
    md.client = &cluster;
    md.controller = controller.get();
    md.metrics = &metrics;
    md.phases = &phases;
    md.log = &log;
    md.identity = "test-pod_1";
    md.on_lost_leadership = [this] { lost = true; };
    manager = std::make_unique<fa::Manager>(flags, std::move(md));
  }
  ~Process() {
    manager.reset();
    cluster.Stop();
  }
  // The log so far; call after Shutdown (the stream is not read concurrently).
  std::string Log() const { return log_text.str(); }

  FakeCluster cluster;
  FakeDatabase db;
  std::ostringstream log_text;
  fa::Logger log;
  flowrun::metrics::ControllerMetrics metrics;
  flowrun::metrics::PhaseCounter phases;
  std::atomic<bool> lost{false};
  std::unique_ptr<fa::FlowRunController> controller;
  std::unique_ptr<fa::Manager> manager;
};

double LeaderGauge(const flowrun::metrics::ControllerMetrics& m) {
  for (const auto& f : m.registry()->Collect())
    if (f.name == "leader_election_master_status")
      for (const auto& metric : f.metric) return metric.gauge.value;
  return -1;
}

// Without election: the health server first, then the loop at once; ready
// once the informers synced; Shutdown drains and stops the server.
TEST(AppManager, WithoutElectionTheLoopRunsAtOnceAndReadinessFollowsTheSync) {
  fa::Flags f;
  f.health_addr = "127.0.0.1:0";
  Process p(f);
  ASSERT_TRUE(p.manager->Start().ok());
  int port = p.manager->health_port();
  ASSERT_GT(port, 0);
  EXPECT_TRUE(p.manager->leading());
  EXPECT_EQ(HttpGetStatus(port, "/healthz"), 200);
  ASSERT_TRUE(Eventually([&] { return HttpGetStatus(port, "/readyz") == 200; }));
  EXPECT_TRUE(p.manager->ready());
  // The loop runs: the FlowRun got its first Job.
  ASSERT_TRUE(p.cluster.WaitFor([&] { return !p.cluster.created_.empty(); }));
  EXPECT_EQ(LeaderGauge(p.metrics), 1);
  p.manager->Shutdown();
  p.manager->Shutdown();  // idempotent
  EXPECT_EQ(HttpGetStatus(port, "/healthz"), 0) << "the health server still answers";
  std::string log = p.Log();
  EXPECT_NE(log.find("\"msg\":\"health server listening\""), std::string::npos) << log;
  EXPECT_NE(log.find("\"msg\":\"informers synced\""), std::string::npos) << log;
  EXPECT_NE(log.find("\"msg\":\"controller stopped\""), std::string::npos) << log;
  EXPECT_EQ(log.find("became leader"), std::string::npos) << log;
}

// With election: the loop starts only once this process holds the Lease (in
// the flag's namespace); Shutdown releases it, which is not a lost leadership.
TEST(AppManager, WithElectionTheLoopStartsOnceLeadingAndShutdownReleasesTheLease) {
  fa::Flags f;
  f.leader_elect = true;
  f.leader_election_namespace = "flowrun-system";
  f.leader_election_name = "flowrun-controller";
  f.health_addr = "127.0.0.1:0";
  Process p(f);
  ASSERT_TRUE(p.manager->Start().ok());
  ASSERT_TRUE(Eventually([&] { return p.manager->ready(); }));
  EXPECT_TRUE(p.manager->leading());
  EXPECT_EQ(p.cluster.Stored("leases", "flowrun-system/flowrun-controller")["spec"]["holderIdentity"], "test-pod_1");
  EXPECT_EQ(LeaderGauge(p.metrics), 1);
  ASSERT_TRUE(p.cluster.WaitFor([&] { return !p.cluster.created_.empty(); }));
  p.manager->Shutdown();
  EXPECT_EQ(p.cluster.Stored("leases", "flowrun-system/flowrun-controller")["spec"].value("holderIdentity", ""), "");
  EXPECT_FALSE(p.manager->leading());
  EXPECT_FALSE(p.lost.load());
  std::string log = p.Log();
  EXPECT_NE(log.find("\"lease\":\"flowrun-system/flowrun-controller\",\"level\":\"info\",\"msg\":\"became leader\""),
            std::string::npos)
      << log;
  EXPECT_EQ(log.find("lost leadership"), std::string::npos) << log;
}

// Somebody else holds the Lease: this replica serves /healthz, is not ready,
// and does not reconcile.
TEST(AppManager, AStandbyIsNotReadyAndDoesNotReconcile) {
  fa::Flags f;
  f.leader_elect = true;
  f.leader_election_namespace = "flowrun-system";
  f.health_addr = "127.0.0.1:0";
  Process p(f);
  ASSERT_TRUE(p.cluster
                  .Create(flowrun::kube::resources::Leases(), "flowrun-system",
                          {{"apiVersion", "coordination.k8s.io/v1"}, {"kind", "Lease"},
                           {"metadata", {{"name", "flowrun-controller"}, {"namespace", "flowrun-system"}}},
                           {"spec", {{"holderIdentity", "other-pod_9"}, {"leaseDurationSeconds", 3600}}}})
                  .ok());
  ASSERT_TRUE(p.manager->Start().ok());
  int port = p.manager->health_port();
  EXPECT_EQ(HttpGetStatus(port, "/healthz"), 200);
  EXPECT_EQ(HttpGetStatus(port, "/readyz"), 503);
  EXPECT_FALSE(p.manager->leading());
  EXPECT_EQ(LeaderGauge(p.metrics), 0);
  p.manager->Shutdown();
  EXPECT_EQ(p.db.Opens(), 0);
  std::lock_guard<std::mutex> l(p.cluster.mu_);
  EXPECT_EQ(p.cluster.created_.size(), 1u);  // only the test's own Lease
}

TEST(AppManager, MisconfiguredElectionIsAnErrorNamedInTheLog) {
  fa::Flags f;
  f.leader_elect = true;
  f.leader_election_name = "";
  f.leader_election_namespace = "flowrun-system";
  Process p(f);
  EXPECT_EQ(p.manager->Start().code(), flowrun::StatusCode::kInvalidArgument);
  p.manager->Shutdown();
  EXPECT_NE(p.Log().find("\"msg\":\"leader election misconfigured\""), std::string::npos) << p.Log();
}

TEST(AppManager, ABusyHealthPortIsAnErrorNamedInTheLog) {
  fa::HealthServer other([] { return true; });
  ASSERT_TRUE(other.Start("127.0.0.1:0").ok());
  fa::Flags f;
  f.health_addr = "127.0.0.1:" + std::to_string(other.port());
  Process p(f);
  EXPECT_FALSE(p.manager->Start().ok());
  p.manager->Shutdown();
  EXPECT_NE(p.Log().find("\"msg\":\"health server failed\""), std::string::npos) << p.Log();
}

}  // namespace
