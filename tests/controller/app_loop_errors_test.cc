// Errors are classified, not dropped (retry_policy.h): a FlowRun the core
// finds unusable is told on the FlowRun (condition ReconcileError, a Warning
// Event) and not retried until it changes; an exception during a pass is
// counted as an error, told the same way and retried with backoff; the next
// pass that succeeds sets the condition False.
#include "app_loop_fixture.h"
#include "core_world.h"

namespace {

using namespace app_loop_test;
using flowrun::testing::Eventually;
using std::chrono::milliseconds;

const json* Condition(const json& fr, const std::string& type) {
  if (!fr.contains("status") || !fr["status"].contains("conditions")) return nullptr;
  for (const auto& c : fr["status"]["conditions"])
    if (c.value("type", "") == type) return &c;
  return nullptr;
}

double Terminal(Loop& loop) {
  return CounterValue(loop.metrics, "controller_runtime_terminal_reconcile_errors_total");
}

// No uid: the core cannot reconcile it (kInvalidArgument, permanent).
TEST(AppLoopErrors, PermanentErrorIsToldOnceAndNotRetriedUntilTheObjectChanges) {
  FakeCluster cluster;
  cluster.Seed("flowruns", json::array({json::parse(R"({"apiVersion": "flowrun.dev/v1alpha1", "kind": "FlowRun",
      "metadata": {"name": "broken", "namespace": "ns", "resourceVersion": "1"}, "spec": {}})")}));
  FakeDatabase db;
  Loop loop(&cluster, &db, core_test::At(10));
  loop.Start();
  ASSERT_TRUE(cluster.WaitFor([&] { return !cluster.patches_.empty() && !cluster.events_.empty(); }))
      << "no condition patch or Event";
  ASSERT_TRUE(loop.Idle());
  const json stored = cluster.Stored("flowruns", "ns/broken");
  const json* c = Condition(stored, "ReconcileError");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ((*c)["status"], "True");
  EXPECT_EQ((*c)["reason"], "InvalidObject");
  EXPECT_NE((*c)["message"].get<std::string>().find("uid"), std::string::npos) << c->dump();
  EXPECT_EQ((*c)["lastTransitionTime"], flowrun::controller::FormatTime(core_test::At(10)));
  {
    std::lock_guard<std::mutex> l(cluster.mu_);
    EXPECT_EQ(cluster.events_.front().value("type", ""), "Warning");
    EXPECT_EQ(cluster.events_.front().value("reason", ""), "InvalidObject");
  }
  EXPECT_EQ(loop.Reconciles("error"), 1);
  EXPECT_EQ(Terminal(loop), 1);
  // Forgotten: no backoff history, nothing scheduled, however long one waits.
  EXPECT_EQ(loop.controller->queue()->NumRequeues("ns/broken"), 0);
  loop.clock.Advance(std::chrono::hours(1));
  EXPECT_EQ(loop.Queue().delayed, 0);
  EXPECT_EQ(loop.Queue().depth, 0);
  EXPECT_EQ(db.Gets(), 0);  // no uid, no run to read

  // Its spec changes: reconciled again, still unusable. The condition is
  // already there (the cache has it), so nothing is written twice.
  json changed = cluster.Stored("flowruns", "ns/broken");
  changed["spec"]["budgetUSD"] = 1;
  cluster.Modify("flowruns", changed);
  ASSERT_TRUE(Eventually([&] { return loop.Reconciles("error") == 2; }));
  ASSERT_TRUE(loop.Idle());
  EXPECT_EQ(Terminal(loop), 2);
  std::lock_guard<std::mutex> l(cluster.mu_);
  EXPECT_EQ(cluster.patches_.size(), 1u);
  EXPECT_EQ(cluster.events_.size(), 1u);
}

// GetRun throws (a bug in a client library, an unexpected shape): the
// worker survives, the pass counts as an error, the FlowRun gets
// ReconcileError=True (InternalError) and a Warning Event, and the key is
// retried after the backoff. That retry succeeds, and its status patch
// (the core's) sets the condition False.
TEST(AppLoopErrors, ExceptionIsCountedToldAndRetriedThenTheNextPassClearsTheCondition) {
  core_test::World w = core_test::RunningWorld();
  w.now = core_test::At(20);
  FakeCluster cluster;
  cluster.SeedWorld(w.flowrun, w.jobs, w.pods);
  FakeDatabase db;
  db.run = w.run;
  db.throw_on_get = "boom";
  Loop loop(&cluster, &db, w.now);
  loop.Start();
  ASSERT_TRUE(cluster.WaitFor([&] { return !cluster.patches_.empty() && !cluster.events_.empty(); }));
  ASSERT_TRUE(loop.Idle());
  const std::string key = "team-a/research-1";
  json stored = cluster.Stored("flowruns", key);
  const json* c = Condition(stored, "ReconcileError");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ((*c)["status"], "True");
  EXPECT_EQ((*c)["reason"], "InternalError");
  EXPECT_NE((*c)["message"].get<std::string>().find("boom"), std::string::npos) << c->dump();
  {
    std::lock_guard<std::mutex> l(cluster.mu_);
    EXPECT_EQ(cluster.events_.front().value("type", ""), "Warning");
    EXPECT_EQ(cluster.events_.front().value("reason", ""), "InternalError");
  }
  EXPECT_EQ(loop.Reconciles("error"), 1);
  EXPECT_EQ(Terminal(loop), 0);  // retried, so not terminal
  EXPECT_EQ(loop.controller->queue()->NumRequeues(key), 1);
  EXPECT_EQ(loop.Queue().delayed, 1);

  db.Set([](FakeDatabase& d) { d.throw_on_get.clear(); });
  loop.clock.Advance(milliseconds(5));
  ASSERT_TRUE(Eventually([&] { return db.Gets() == 2; }));
  ASSERT_TRUE(loop.Idle());
  stored = cluster.Stored("flowruns", key);
  c = Condition(stored, "ReconcileError");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ((*c)["status"], "False");
  EXPECT_EQ((*c)["reason"], "Reconciled");
  EXPECT_EQ(cluster.Stored("flowruns", key)["status"]["phase"], "Running");  // the rest is the core's, intact
  EXPECT_EQ(loop.Reconciles("error"), 1);
  EXPECT_EQ(loop.controller->queue()->NumRequeues(key), 0);
}

}  // namespace
