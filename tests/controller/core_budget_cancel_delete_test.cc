// The core: budget stops, cancellation, deletion and TTL.
#include "core_world.h"

using namespace core_test;

namespace {

// ---------------------------------------------------------------------------
// Budget

World BudgetWorld() {
  World w = RunningWorld();
  w.flowrun["spec"]["budgetUSD"] = 0.01;
  w.run->budget_usd = 0.01;
  w.now = At(100);
  w.Finish(1, Message("budget_exceeded", 1), 0, 100);
  w.run->status = flowrun::RunStatus::kBudgetExceeded;
  w.Step();
  EXPECT_EQ(w.phase(), "BudgetExceeded");
  return w;
}

TEST(Budget, StaysStoppedUntilRaised) {
  World w = BudgetWorld();
  EXPECT_NE(w.status()["message"].get<std::string>().find("raise spec.budgetUSD"), std::string::npos);
  w.now = At(5000);
  EXPECT_TRUE(w.Reconcile().actions.empty());
}

TEST(Budget, RaisedBudgetIsSetThenTheRunResumes) {
  World w = BudgetWorld();
  w.flowrun["spec"]["budgetUSD"] = 2.5;
  w.flowrun["metadata"]["generation"] = 2;
  w.now = At(200);
  auto r = w.Step();
  ASSERT_FALSE(r.actions.empty());
  auto* sb = std::get_if<fc::SetBudget>(&r.actions[0]);
  ASSERT_NE(sb, nullptr) << r.Describe();
  EXPECT_EQ(sb->usd, 2.5);
  ASSERT_NE(r.Find<fc::CreateJob>(), nullptr);
  EXPECT_EQ(r.Find<fc::CreateJob>()->attempt, 2);
  EXPECT_EQ(w.phase(), "Resuming");
  EXPECT_EQ(w.status()["observedGeneration"], 2);
}

TEST(Budget, RaisedButStillBelowTheSpendStaysStopped) {
  World w = BudgetWorld();
  w.flowrun["spec"]["budgetUSD"] = 0.012;  // spent 0.0123
  auto r = w.Step();
  EXPECT_EQ(Count<fc::SetBudget>(r), 1u) << r.Describe();
  EXPECT_EQ(Count<fc::CreateJob>(r), 0u);
  EXPECT_EQ(w.phase(), "BudgetExceeded");
}

TEST(Budget, RemovedBudgetResumes) {
  World w = BudgetWorld();
  w.flowrun["spec"].erase("budgetUSD");
  auto r = w.Step();
  ASSERT_NE(r.Find<fc::SetBudget>(), nullptr);
  EXPECT_FALSE(r.Find<fc::SetBudget>()->usd.has_value());
  EXPECT_NE(r.Find<fc::CreateJob>(), nullptr);
}

TEST(Budget, ChangedWhileRunningIsSyncedWithoutANewJob) {
  World w = RunningWorld();
  w.flowrun["spec"]["budgetUSD"] = 5.0;
  auto r = w.Step();
  EXPECT_EQ(Count<fc::SetBudget>(r), 1u) << r.Describe();
  EXPECT_EQ(Count<fc::CreateJob>(r), 0u);
  EXPECT_EQ(w.phase(), "Running");
}

// ---------------------------------------------------------------------------
// Cancel: works in every non-final phase.

struct CancelCase {
  std::string name;
  std::function<World()> make;
  bool deletes_job;
};

class Cancel : public ::testing::TestWithParam<CancelCase> {};

TEST_P(Cancel, StopsTheRun) {
  World w = GetParam().make();
  w.flowrun["spec"]["cancel"] = true;
  w.now = w.now + seconds(1);
  auto r = w.Step();
  ASSERT_NE(r.Find<fc::CancelRun>(), nullptr) << r.Describe();
  EXPECT_EQ(Count<fc::DeleteJob>(r), GetParam().deletes_job ? 1u : 0u) << r.Describe();
  EXPECT_EQ(w.phase(), "Cancelled");
  EXPECT_FALSE(w.status().contains("wait"));
  EXPECT_EQ((*w.condition("Completed"))["status"], "True");
  EXPECT_EQ((*w.condition("Succeeded"))["status"], "False");
  EXPECT_TRUE(HasEvent(r, "Normal", "Cancelled"));
  EXPECT_TRUE(w.run.has_value() && w.run->status == flowrun::RunStatus::kCancelled);
}

INSTANTIATE_TEST_SUITE_P(
    Phases, Cancel,
    ::testing::Values(CancelCase{"BeforeAnyJob", [] { return World(); }, false},
                      CancelCase{"PendingJob",
                                 [] {
                                   World w;
                                   w.Step();
                                   return w;
                                 },
                                 true},
                      CancelCase{"Running", [] { return RunningWorld(); }, true},
                      CancelCase{"Waiting", [] { return WaitingWorld(); }, false},
                      CancelCase{"BudgetExceeded", [] { return BudgetWorld(); }, false},
                      CancelCase{"RetryBackoff",
                                 [] {
                                   World w = RunningWorld();
                                   w.now = At(50);
                                   w.Finish(1, "", 137, 50, "OOMKilled");
                                   w.Step();
                                   return w;
                                 },
                                 false}),
    [](const auto& info) { return info.param.name; });

TEST(Cancel, FinalRunsIgnoreCancel) {
  World w = RunningWorld();
  w.now = At(50);
  w.Finish(1, Message("succeeded", 1), 0, 50);
  w.Step();
  w.flowrun["spec"]["cancel"] = true;
  auto r = w.Reconcile();
  EXPECT_EQ(Count<fc::CancelRun>(r), 0u) << r.Describe();
  EXPECT_EQ(w.phase(), "Succeeded");
}

// ---------------------------------------------------------------------------
// Deletion and TTL

TEST(Deletion, DeletesJobsThenRowsThenRemovesTheFinalizer) {
  World w = RunningWorld();
  w.flowrun["metadata"]["deletionTimestamp"] = Ts(60);
  w.now = At(60);
  auto r = w.Reconcile();
  ASSERT_EQ(r.actions.size(), 3u) << r.Describe();
  EXPECT_EQ(std::get<fc::DeleteJob>(r.actions[0]).name, Job(1));
  EXPECT_EQ(std::get<fc::DeleteJob>(r.actions[0]).propagation_policy, "Background");
  EXPECT_TRUE(std::holds_alternative<fc::DeleteRunRows>(r.actions[1]));
  EXPECT_TRUE(std::holds_alternative<fc::RemoveFinalizer>(r.actions[2]));
}

TEST(Deletion, RetentionKeepCancelsInsteadOfDeletingRows) {
  World w = RunningWorld();
  w.config.retention = fc::Retention::kKeep;
  w.flowrun["metadata"]["deletionTimestamp"] = Ts(60);
  auto r = w.Reconcile();
  EXPECT_EQ(Count<fc::DeleteRunRows>(r), 0u) << r.Describe();
  EXPECT_EQ(Count<fc::CancelRun>(r), 1u);
  EXPECT_EQ(Count<fc::RemoveFinalizer>(r), 1u);
}

TEST(Deletion, WithoutOurFinalizerNothingIsDone) {
  World w = RunningWorld();
  w.flowrun["metadata"]["finalizers"] = json::array();
  w.flowrun["metadata"]["deletionTimestamp"] = Ts(60);
  EXPECT_TRUE(w.Reconcile().actions.empty());
}

TEST(Deletion, JobsAlreadyBeingDeletedAreNotDeletedAgain) {
  World w = RunningWorld();
  w.job(1)["metadata"]["deletionTimestamp"] = Ts(59);
  w.flowrun["metadata"]["deletionTimestamp"] = Ts(60);
  auto r = w.Reconcile();
  EXPECT_EQ(Count<fc::DeleteJob>(r), 0u) << r.Describe();
  EXPECT_EQ(Count<fc::RemoveFinalizer>(r), 1u);
}

TEST(Ttl, FinishedRunIsDeletedWhenDue) {
  World w = RunningWorld();
  w.flowrun["spec"]["ttlSecondsAfterFinished"] = 60;
  w.now = At(50);
  w.Finish(1, Message("succeeded", 1), 0, 50);
  auto r = w.Step();
  ASSERT_NE(r.Find<fc::RequeueAfter>(), nullptr) << r.Describe();
  EXPECT_EQ(r.Find<fc::RequeueAfter>()->after, milliseconds(60000));
  w.now = At(80);
  EXPECT_EQ(w.Reconcile().Find<fc::RequeueAfter>()->after, milliseconds(30000));
  w.now = At(110);
  auto r2 = w.Reconcile();
  EXPECT_NE(r2.Find<fc::DeleteFlowRun>(), nullptr) << r2.Describe();
  w.Apply(r2);
  // The deletion then runs the finalizer.
  auto r3 = w.Reconcile();
  EXPECT_EQ(Count<fc::DeleteRunRows>(r3), 1u) << r3.Describe();
  EXPECT_EQ(Count<fc::RemoveFinalizer>(r3), 1u);
}

TEST(Ttl, ZeroDeletesRightAway) {
  World w = RunningWorld();
  w.flowrun["spec"]["ttlSecondsAfterFinished"] = 0;
  w.now = At(50);
  w.Finish(1, Message("config_error", 1), 2, 50);
  auto r = w.Reconcile();
  EXPECT_NE(r.Find<fc::DeleteFlowRun>(), nullptr) << r.Describe();
  EXPECT_NE(r.Find<fc::PatchStatus>(), nullptr);
}

TEST(Ttl, FinalRunStillStopsALeftoverRunningJob) {
  World w = RunningWorld();
  w.status()["phase"] = "Failed";
  auto r = w.Reconcile();
  EXPECT_EQ(Count<fc::DeleteJob>(r), 1u) << r.Describe();
}

}  // namespace
