// A FlowRun deleted before the loop got to it, or while a worker reconciled
// it: nothing is read from or written for an object that is gone, nothing is
// counted as an error, nothing is retried. (A FlowRun only vanishes like that
// before its first pass added the finalizer, or when someone removed the
// finalizer by hand; otherwise a deletion is a deletionTimestamp the core
// handles.)
#include "app_loop_fixture.h"
#include "core_world.h"

namespace {

using namespace app_loop_test;
using flowrun::testing::Eventually;

constexpr char kKey[] = "team-a/research-1";

TEST(AppLoopDeleted, WhileQueuedNothingIsReadOrWritten) {
  FakeCluster cluster;
  cluster.Seed("flowruns", json::array({core_test::MakeFlowRun()}));
  FakeDatabase db;
  Loop loop(&cluster, &db, core_test::At(10));
  loop.Start(/*workers=*/false);
  EXPECT_EQ(loop.Queue().depth, 1);  // the initial list queued it
  cluster.Remove("flowruns", kKey);
  loop.controller->StartWorkers();

  ASSERT_TRUE(Eventually([&] { return loop.Reconciles("success") >= 1; }));
  ASSERT_TRUE(loop.Idle());
  EXPECT_EQ(loop.Reconciles("success"), 1);
  EXPECT_EQ(loop.Reconciles("error"), 0);
  EXPECT_EQ(db.Gets(), 0);
  EXPECT_EQ(loop.controller->queue()->NumRequeues(kKey), 0);
  std::lock_guard<std::mutex> l(cluster.mu_);
  EXPECT_TRUE(cluster.patches_.empty());
  EXPECT_TRUE(cluster.refused_patches_.empty());
  EXPECT_TRUE(cluster.created_.empty());
  EXPECT_TRUE(cluster.events_.empty());
}

TEST(AppLoopDeleted, WhileReconciledItsWritesEndWithoutAnErrorOrARetry) {
  json fr = core_test::MakeFlowRun();
  fr["metadata"].erase("finalizers");  // its first pass: adding the finalizer is the first write
  FakeCluster cluster;
  cluster.Seed("flowruns", json::array({fr}));
  FakeDatabase db;
  db.hold_get = true;
  Loop loop(&cluster, &db, core_test::At(10));
  loop.Start();
  ASSERT_TRUE(db.WaitHeld());  // the worker read the FlowRun from the cache and now reads the database
  cluster.Remove("flowruns", kKey);
  db.Set([](FakeDatabase& d) { d.hold_get = false; });

  ASSERT_TRUE(cluster.WaitFor([&] { return !cluster.refused_patches_.empty(); }));
  ASSERT_TRUE(loop.Idle());
  EXPECT_EQ(loop.Reconciles("error"), 0);
  EXPECT_EQ(loop.Reconciles("success"), 2);  // the pass that was running, and the delete's (finds nothing)
  EXPECT_EQ(loop.controller->queue()->NumRequeues(kKey), 0);
  EXPECT_EQ(loop.Queue().delayed, 0);  // no backoff scheduled
  EXPECT_EQ(db.Gets(), 1);
  std::lock_guard<std::mutex> l(cluster.mu_);
  EXPECT_EQ(cluster.refused_patches_, std::vector<std::string>{kKey});  // the finalizer; then it stopped
  EXPECT_TRUE(cluster.created_.empty());
  EXPECT_TRUE(cluster.patches_.empty());
}

}  // namespace
