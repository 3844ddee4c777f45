// The loop records an answer a person wrote into status.answers, naming who
// answered from the FlowRun's cached managedFields: no live GET of the
// FlowRun (the cache keeps the managedFields entries that own an answer,
// update_predicate.h ManagedFieldTouchesAnswers).
#include "app_loop_fixture.h"
#include "core_world.h"

namespace {

using namespace app_loop_test;
using flowrun::testing::Eventually;

TEST(AppLoopAnswers, AnswerIsRecordedWithWhoAnsweredFromManagedFieldsWithoutALiveGet) {
  core_test::World w = core_test::WaitingWorld();
  w.now = core_test::At(200);
  core_test::Answer(w, "proceed", true);  // by kubectl-patch, in managedFields
  // The controller's own entry (status fields it writes) is there too; the
  // cache drops it, and it never names who answered.
  w.flowrun["metadata"]["managedFields"].push_back(
      {{"manager", "flowrun-controller"}, {"operation", "Update"}, {"subresource", "status"},
       {"fieldsV1", {{"f:status", {{"f:phase", json::object()}, {"f:wait", json::object()}}}}}});
  FakeCluster cluster;
  cluster.SeedWorld(w.flowrun, w.jobs, w.pods);
  FakeDatabase db;
  db.run = w.run;
  Loop loop(&cluster, &db, w.now);
  loop.Start();

  ASSERT_TRUE(Eventually([&] { return db.Read<size_t>([](FakeDatabase& d) { return d.answers.size(); }) > 0; }));
  ASSERT_TRUE(loop.Idle());
  auto answers = db.Read<std::vector<FakeDatabase::Answer>>([](FakeDatabase& d) { return d.answers; });
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_EQ(answers[0].wait, "proceed");
  EXPECT_EQ(answers[0].answer, json(true));
  EXPECT_EQ(answers[0].answered_by, "kubernetes:kubectl-patch");
  // ...then the attempt that resumes with it, and the status saying so.
  json job = cluster.Stored("jobs", "team-a/" + core_test::Job(2));
  ASSERT_TRUE(job.is_object()) << "no Job for attempt 2";
  EXPECT_EQ(json::parse(job["metadata"]["annotations"]["flowrun.dev/answer"].get<std::string>()),
            json({{"wait", "proceed"}, {"answer", true}}));
  EXPECT_EQ(cluster.Stored("flowruns", "team-a/research-1")["status"]["phase"], "Resuming");
  std::lock_guard<std::mutex> l(cluster.mu_);
  EXPECT_TRUE(cluster.gets_.empty()) << cluster.gets_.front();
}

}  // namespace
