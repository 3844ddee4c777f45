// The loop and replays: a replay whose preparation failed waits out its
// backoff, except that its source appearing (or changing) wakes it at once;
// other FlowRuns do not, and a prepared replay is never woken by its source.
#include "app_loop_fixture.h"
#include "core_world.h"

namespace {

using namespace app_loop_test;
using flowrun::testing::Eventually;

json ReplayFlowRun(const std::string& name, const std::string& uid, const std::string& replay_status) {
  return {{"apiVersion", "flowrun.dev/v1alpha1"},
          {"kind", "FlowRun"},
          {"metadata",
           {{"name", name},
            {"namespace", "ns"},
            {"uid", uid},
            {"resourceVersion", "1"},
            {"generation", 1},
            {"finalizers", {"flowrun.dev/cleanup"}},
            {"labels", {{"flowrun.dev/replay-of", "src"}}}}},
          {"spec", {{"template", {{"image", "a"}}}, {"replay", {{"from", {{"run", "src"}, {"checkpoint", "analyze"}}}}}}},
          {"status",
           {{"phase", "Pending"},
            {"conditions",
             {{{"type", "Replay"}, {"status", replay_status}, {"reason", replay_status == "True" ? "Prepared" : "SourceNotFound"},
               {"message", "m"}, {"lastTransitionTime", core_test::Ts(0)}}}}}}};
}

json PlainFlowRun(const std::string& name, const std::string& uid) {
  return {{"apiVersion", "flowrun.dev/v1alpha1"},
          {"kind", "FlowRun"},
          {"metadata", {{"name", name}, {"namespace", "ns"}, {"uid", uid}, {"generation", 1},
                        {"finalizers", {"flowrun.dev/cleanup"}}}},
          {"spec", {{"template", {{"image", "a"}}}}},
          {"status", {{"phase", "Succeeded"}}}};
}

TEST(AppLoopReplay, ASourceThatAppearsWakesTheReplayWaitingForIt) {
  FakeCluster cluster;
  cluster.Seed("flowruns", json::array({ReplayFlowRun("r1", "uid-r1", "False")}));
  FakeDatabase db;
  Loop loop(&cluster, &db, core_test::At(10));
  loop.Start();
  // The preparation fails (this fake refuses live GETs, as an unreachable
  // source would): an error, and the key backs off on the fake clock.
  ASSERT_TRUE(Eventually([&] { return loop.Reconciles("error") >= 1; }, std::chrono::seconds(30)));
  ASSERT_TRUE(loop.Idle());
  const int gets = db.Gets();
  EXPECT_GE(loop.Queue().delayed, 1);

  // Another FlowRun appears: nothing for r1.
  cluster.Modify("flowruns", PlainFlowRun("other", "uid-other"));
  ASSERT_TRUE(loop.Idle());
  const int after_other = db.Gets();  // "other" itself is reconciled once
  EXPECT_LE(after_other, gets + 1);

  // The source appears: r1 is reconciled at once, no time passed.
  cluster.Modify("flowruns", PlainFlowRun("src", "uid-src"));
  ASSERT_TRUE(Eventually([&] { return db.Gets() >= after_other + 2; }, std::chrono::seconds(30)))
      << "the source and its waiting replay were reconciled";
  ASSERT_TRUE(loop.Idle());
  EXPECT_GE(loop.Reconciles("error"), 2) << "r1 tried to prepare again";
}

TEST(AppLoopReplay, APreparedReplayIsNotWokenByItsSource) {
  FakeCluster cluster;
  json r1 = ReplayFlowRun("r1", "uid-r1", "True");
  r1["status"]["phase"] = "Succeeded";
  cluster.Seed("flowruns", json::array({r1}));
  FakeDatabase db;
  Loop loop(&cluster, &db, core_test::At(10));
  loop.Start();
  ASSERT_TRUE(loop.Idle());
  const int gets = db.Gets();
  cluster.Modify("flowruns", PlainFlowRun("src", "uid-src"));
  ASSERT_TRUE(loop.Idle());
  EXPECT_EQ(db.Gets(), gets + 1) << "only the source itself was reconciled";
}

}  // namespace
