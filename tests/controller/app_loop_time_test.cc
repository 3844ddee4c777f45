// Time in the loop comes from the injected Clock (FlowRunControllerDeps::
// clock), which it passes to its workqueue and informers: the core's `now`,
// a RequeueAfter the core asks for, and the backoff after an error all run
// on it. Under the FakeClock nothing is due until the test advances time, so
// "not yet" is read from the queue instead of waited for.
#include "app_loop_fixture.h"
#include "core_world.h"

namespace {

using namespace app_loop_test;
using flowrun::testing::Eventually;
using std::chrono::milliseconds;

constexpr char kKey[] = "team-a/research-1";

// The core asks to come back at the wait's deadline: AddAfter with exactly
// that delay, on the injected clock; the pass after it sees the clock's time.
TEST(AppLoopTime, RequeueAfterIsScheduledOnTheInjectedClock) {
  core_test::World w = core_test::WaitingWorld(/*deadline=*/1000);
  w.now = core_test::At(200);
  flowrun::controller::ReconcileResult expected = w.Reconcile();
  ASSERT_EQ(expected.actions.size(), 1u) << expected.Describe();  // nothing to do but come back
  const auto* requeue = expected.Find<flowrun::controller::RequeueAfter>();
  ASSERT_NE(requeue, nullptr) << expected.Describe();
  ASSERT_EQ(requeue->after, std::chrono::seconds(800));

  FakeCluster cluster;
  cluster.SeedWorld(w.flowrun, w.jobs, w.pods);
  FakeDatabase db;
  db.run = w.run;
  Loop loop(&cluster, &db, w.now);
  loop.Start();
  ASSERT_TRUE(Eventually([&] { return loop.Reconciles("requeue_after") == 1; }));
  ASSERT_TRUE(loop.Idle());
  EXPECT_EQ(loop.Queue().delayed, 1);
  EXPECT_EQ(db.Gets(), 1);
  EXPECT_EQ(loop.controller->queue()->NumRequeues(kKey), 0);  // a requeue, not a failure

  loop.clock.Advance(requeue->after - milliseconds(1));
  EXPECT_EQ(loop.Queue().delayed, 1) << "due before its time";
  EXPECT_EQ(db.Gets(), 1);
  loop.clock.Advance(milliseconds(1));
  ASSERT_TRUE(Eventually([&] {
    loop.Queue();  // promotes what is due at once (else the worker looks within 1 s)
    return db.Gets() >= 2;
  }));
  ASSERT_TRUE(loop.Idle());
  // That pass ran at the deadline, by the injected clock: it expires the wait.
  auto expiries = db.Read<std::vector<flowrun::TimePoint>>([](FakeDatabase& d) { return d.expiries; });
  ASSERT_FALSE(expiries.empty());
  EXPECT_EQ(expiries.front(), core_test::At(1000));
}

// The database cannot be reached: every pass is an error, counted, and
// retried after the workqueue's per-key exponential backoff (5 ms, 10 ms,
// 20 ms on the injected clock), each with a fresh session. Nothing is written
// from a pass without the run's state. Once the database is back, the next
// pass writes the status.
TEST(AppLoopTime, DatabaseUnavailableIsRetriedWithBackoffAndNothingIsLost) {
  FakeCluster cluster;
  cluster.Seed("flowruns", json::array({core_test::MakeFlowRun()}));
  FakeDatabase db;
  db.open_error = flowrun::Unavailable("connection refused");
  Loop loop(&cluster, &db, core_test::At(10));
  loop.Start();
  ASSERT_TRUE(Eventually([&] { return loop.Reconciles("error") == 1; }));
  ASSERT_TRUE(loop.Idle());
  int opens = db.Opens();
  for (milliseconds delay : {milliseconds(5), milliseconds(10), milliseconds(20)}) {
    SCOPED_TRACE(delay.count());
    EXPECT_EQ(loop.Queue().delayed, 1);
    EXPECT_EQ(loop.controller->queue()->NumRequeues(kKey), opens);
    loop.clock.Advance(delay - milliseconds(1));
    EXPECT_EQ(loop.Queue().delayed, 1) << "retried before its backoff";
    loop.clock.Advance(milliseconds(1));
    ASSERT_TRUE(Eventually([&] { return db.Opens() == opens + 1; }));
    ASSERT_TRUE(loop.Idle());
    ++opens;
  }
  EXPECT_EQ(loop.Reconciles("error"), 4);
  EXPECT_EQ(loop.Reconciles("success"), 0);
  EXPECT_TRUE(cluster.FlowRunStatusPatches().empty());
  EXPECT_EQ(db.Gets(), 0);

  db.Set([](FakeDatabase& d) { d.open_error = flowrun::Status(); });
  loop.clock.Advance(milliseconds(40));
  ASSERT_TRUE(Eventually([&] { return !cluster.FlowRunStatusPatches().empty(); }));
  ASSERT_TRUE(loop.Idle());
  EXPECT_EQ(cluster.Stored("flowruns", kKey)["status"]["phase"], "Pending");
  EXPECT_TRUE(cluster.Stored("jobs", "team-a/" + core_test::Job(1)).is_object());
  EXPECT_EQ(loop.controller->queue()->NumRequeues(kKey), 0);  // success forgets the backoff
  EXPECT_EQ(loop.Reconciles("error"), 4);
}

// A session whose database went away mid-way (GetRun answers kUnavailable)
// is dropped; the retry opens a new one.
TEST(AppLoopTime, UnavailableDuringASessionReopensItOnTheRetry) {
  FakeCluster cluster;
  cluster.Seed("flowruns", json::array({core_test::MakeFlowRun()}));
  FakeDatabase db;
  db.get_error = flowrun::Unavailable("server closed the connection unexpectedly");
  Loop loop(&cluster, &db, core_test::At(10));
  loop.Start();
  ASSERT_TRUE(Eventually([&] { return loop.Reconciles("error") == 1; }));
  ASSERT_TRUE(loop.Idle());
  EXPECT_EQ(db.Opens(), 1);
  db.Set([](FakeDatabase& d) { d.get_error = flowrun::Status(); });
  loop.clock.Advance(milliseconds(5));
  ASSERT_TRUE(Eventually([&] {
    loop.Queue();  // promotes what is due at once (else the worker looks within 1 s)
    return db.Gets() >= 2;
  }));
  ASSERT_TRUE(loop.Idle());
  EXPECT_EQ(db.Opens(), 2);  // one more, kept for the passes after it (the new Job's echo)
  EXPECT_EQ(loop.Reconciles("error"), 1);
}

}  // namespace
