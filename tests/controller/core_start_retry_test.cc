// The core: starting an attempt, pods that cannot start, and retries.
#include "core_world.h"

using namespace core_test;

namespace {

// ---------------------------------------------------------------------------
// Start

TEST(Start, NewFlowRunGetsFinalizerThenJobThenStatus) {
  World w;
  w.flowrun["metadata"].erase("finalizers");
  auto r = w.Reconcile();
  ASSERT_GE(r.actions.size(), 3u) << r.Describe();
  EXPECT_TRUE(std::holds_alternative<fc::AddFinalizer>(r.actions[0])) << r.Describe();
  EXPECT_TRUE(std::holds_alternative<fc::CreateJob>(r.actions[1])) << r.Describe();
  EXPECT_TRUE(std::holds_alternative<fc::PatchStatus>(r.actions[2])) << r.Describe();
  auto* c = r.Find<fc::CreateJob>();
  EXPECT_EQ(c->name, "research-1-a1");
  EXPECT_EQ(c->attempt, 1);
  json st = r.Find<fc::PatchStatus>()->patch["status"];
  EXPECT_EQ(st["phase"], "Pending");
  EXPECT_EQ(st["attempt"], 1);
  EXPECT_EQ(st["currentJob"], "research-1-a1");
  EXPECT_EQ(st["attempts"][0]["outcome"], "running");
  EXPECT_EQ(st["attempts"][0]["startTime"], Ts(0));
  EXPECT_EQ(st["observedGeneration"], 1);
  EXPECT_TRUE(HasEvent(r, "Normal", "Created"));
  w.Apply(r);
  auto again = w.Reconcile();
  EXPECT_TRUE(again.actions.empty()) << again.Describe();
}

TEST(Start, StaleCacheDoesNotCreateASecondJob) {
  World w;
  w.Step();
  // The informer has not delivered the Job yet.
  w.jobs = json::array();
  w.now = At(20);
  auto r = w.Reconcile();
  EXPECT_EQ(Count<fc::CreateJob>(r), 0u) << r.Describe();
  auto* rq = r.Find<fc::RequeueAfter>();
  ASSERT_NE(rq, nullptr);
  EXPECT_EQ(rq->after, milliseconds(40000));
}

// Both caches lag (the FlowRun without the status patch that recorded
// attempt 1, no Job yet) while the agent of attempt 1 already started and
// wrote to the database: attempt 1 is adopted and waited for, never a second
// Job beside it (seen under load in e2e_chaos_test).
TEST(Start, AttemptOnlyTheDatabaseKnowsIsWaitedForNotDuplicated) {
  World w;
  w.Step();  // finalizer, Job a1, status attempt 1
  w.flowrun = MakeFlowRun();  // the stale cache: neither the patch...
  w.flowrun["metadata"]["finalizers"] = json::array({"flowrun.dev/cleanup"});
  w.jobs = json::array();  // ...nor the Job
  w.run = MakeRun("running", 1);
  flowrun::AttemptRecord a;
  a.epoch = 1;
  a.attempt = 1;
  a.started_at = At(0);
  w.run->attempts.push_back(a);
  w.now = At(1);
  auto r = w.Reconcile();
  EXPECT_EQ(Count<fc::CreateJob>(r), 0u) << r.Describe();
  auto* rq = r.Find<fc::RequeueAfter>();
  ASSERT_NE(rq, nullptr) << r.Describe();
  EXPECT_EQ(rq->after, milliseconds(59000));
  auto* p = r.Find<fc::PatchStatus>();
  ASSERT_NE(p, nullptr) << r.Describe();
  EXPECT_EQ(p->patch["status"]["attempt"], 1);
  EXPECT_EQ(p->patch["status"]["attempts"][0]["job"], Job(1));
  EXPECT_EQ(p->patch["status"]["attempts"][0]["startTime"], Ts(0));

  // The Job never shows up: after the grace the attempt counts as deleted and
  // the retry is attempt 2.
  w.now = At(61);
  auto r2 = w.Step();
  EXPECT_EQ(Count<fc::CreateJob>(r2), 0u) << r2.Describe();
  EXPECT_EQ((*w.attempt_record(1))["outcome"], "job_deleted");
  w.now = At(75);
  auto r3 = w.Step();
  auto* c = r3.Find<fc::CreateJob>();
  ASSERT_NE(c, nullptr) << r3.Describe();
  EXPECT_EQ(c->attempt, 2);
}

TEST(Start, JobThatVanishedFailsTheAttemptAndRetries) {
  World w;
  w.Step();
  w.jobs = json::array();
  w.now = At(61);
  auto r = w.Step();
  EXPECT_EQ(Count<fc::CreateJob>(r), 0u) << r.Describe();
  EXPECT_EQ((*w.attempt_record(1))["outcome"], "job_deleted");
  EXPECT_EQ(w.phase(), "Pending");  // retry backoff
  w.now = At(71);
  auto r2 = w.Step();
  ASSERT_NE(r2.Find<fc::CreateJob>(), nullptr) << r2.Describe();
  EXPECT_EQ(r2.Find<fc::CreateJob>()->attempt, 2);
}

TEST(Start, PendingUntilThePodRunsThenRunning) {
  World w;
  w.Step();
  w.now = At(2);
  w.pod(1);  // ContainerCreating
  auto r = w.Step();
  EXPECT_EQ(w.phase(), "Pending");
  EXPECT_NE(w.status()["message"].get<std::string>().find("ContainerCreating"), std::string::npos);
  PodRunning(w.pod(1), 3);
  w.now = At(3);
  w.Step();
  EXPECT_EQ(w.phase(), "Running");
  EXPECT_EQ(w.status()["currentJob"], "research-1-a1");
  const json* c = w.condition("Completed");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ((*c)["status"], "False");
  EXPECT_EQ((*w.condition("Succeeded"))["status"], "Unknown");
}

TEST(Start, UnschedulablePodIsReportedInTheMessage) {
  World w;
  w.Step();
  json& p = w.pod(1);
  p["status"]["conditions"] = {{{"type", "PodScheduled"}, {"status", "False"}, {"reason", "Unschedulable"},
                                {"message", "0/3 nodes are available: insufficient memory"}}};
  w.now = At(4);
  w.Step();
  EXPECT_EQ(w.phase(), "Pending");
  EXPECT_NE(w.status()["message"].get<std::string>().find("insufficient memory"), std::string::npos);
}

// ---------------------------------------------------------------------------
// Pods that cannot start: fail fast after a grace period.

struct StuckCase {
  std::string reason;
  bool immediate;
  std::string outcome;
};

class StuckPod : public ::testing::TestWithParam<StuckCase> {};

TEST_P(StuckPod, FailsTheAttemptAfterTheGracePeriod) {
  const StuckCase& c = GetParam();
  World w;
  w.Step();
  PodWaiting(w.pod(1), c.reason, "detail of " + c.reason);
  w.now = At(30);
  if (!c.immediate) {
    auto r = w.Step();
    EXPECT_EQ(Count<fc::DeleteJob>(r), 0u) << r.Describe();
    ASSERT_NE(r.Find<fc::RequeueAfter>(), nullptr) << r.Describe();
    EXPECT_EQ(r.Find<fc::RequeueAfter>()->after, milliseconds(90000));
    EXPECT_EQ(w.phase(), "Pending");
    w.now = At(120);
  }
  auto r = w.Step();
  ASSERT_EQ(Count<fc::DeleteJob>(r), 1u) << r.Describe();
  EXPECT_EQ(r.Find<fc::DeleteJob>()->name, "research-1-a1");
  const json& a = *w.attempt_record(1);
  EXPECT_EQ(a["outcome"], c.outcome);
  EXPECT_EQ(a["reason"], c.reason);
  EXPECT_EQ(a["message"], "detail of " + c.reason);
  EXPECT_EQ(w.phase(), "Pending");  // retried after backoff
  EXPECT_TRUE(HasEvent(r, "Warning", "AttemptFailed"));
  EXPECT_EQ(w.status().value("currentJob", ""), "");
}

INSTANTIATE_TEST_SUITE_P(
    Reasons, StuckPod,
    ::testing::Values(StuckCase{"ImagePullBackOff", false, "image_pull_failed"},
                      StuckCase{"ErrImagePull", false, "image_pull_failed"},
                      StuckCase{"ErrImageNeverPull", false, "image_pull_failed"},
                      StuckCase{"CreateContainerConfigError", false, "container_create_failed"},
                      StuckCase{"CreateContainerError", false, "container_create_failed"},
                      StuckCase{"InvalidImageName", true, "image_pull_failed"}),
    [](const auto& info) { return info.param.reason; });

// ---------------------------------------------------------------------------
// Retries

TEST(Retry, ExponentialBackoffThenFailedWithThePreciseReason) {
  World w = RunningWorld();
  int t = 50;
  std::vector<int> delays;
  for (int attempt = 1; attempt <= 3; ++attempt) {
    w.now = At(t);
    if (attempt > 1) PodRunning(w.pod(attempt), t - 1);
    w.Finish(attempt, "", 137, t, "OOMKilled");
    auto r = w.Step();
    if (attempt == 3) {
      EXPECT_EQ(w.phase(), "Failed") << r.Describe();
      EXPECT_EQ((*w.condition("Succeeded"))["reason"], "OOMKilled");
      EXPECT_NE(w.status()["message"].get<std::string>().find("3 consecutive attempts failed"), std::string::npos);
      EXPECT_TRUE(HasEvent(r, "Warning", "Failed"));
      break;
    }
    auto* rq = r.Find<fc::RequeueAfter>();
    ASSERT_NE(rq, nullptr) << r.Describe();
    delays.push_back(static_cast<int>(rq->after.count() / 1000));
    // One second early: still waiting.
    w.now = At(t + delays.back() - 1);
    EXPECT_EQ(Count<fc::CreateJob>(w.Reconcile()), 0u);
    w.now = At(t + delays.back());
    auto r2 = w.Step();
    ASSERT_NE(r2.Find<fc::CreateJob>(), nullptr) << r2.Describe();
    EXPECT_EQ(r2.Find<fc::CreateJob>()->attempt, attempt + 1);
    t += delays.back() + 30;
  }
  EXPECT_EQ(delays, (std::vector<int>{10, 20}));
  ASSERT_EQ(w.status()["attempts"].size(), 3u);
  for (const auto& a : w.status()["attempts"]) EXPECT_EQ(a["outcome"], "oom_killed");
}

TEST(Retry, BackoffIsCapped) {
  World w;
  w.flowrun = MakeFlowRun({{"retry", {{"maxAttempts", 10}, {"backoffSeconds", 100}, {"maxBackoffSeconds", 150}}}});
  json atts = json::array();
  for (int i = 1; i <= 3; ++i)
    atts.push_back({{"attempt", i}, {"job", Job(i)}, {"startTime", Ts(0)}, {"endTime", Ts(1000)},
                    {"outcome", "error"}, {"reason", "Error"}});
  w.status() = {{"phase", "Pending"}, {"attempt", 3}, {"attempts", atts}};
  w.now = At(1000);
  auto r = w.Reconcile();
  ASSERT_NE(r.Find<fc::RequeueAfter>(), nullptr) << r.Describe();
  EXPECT_EQ(r.Find<fc::RequeueAfter>()->after, milliseconds(150000));
}

TEST(Retry, WaitsAndBudgetStopsDoNotCountAgainstMaxAttempts) {
  World w;
  w.flowrun = MakeFlowRun({{"retry", {{"maxAttempts", 2}, {"backoffSeconds", 0}, {"maxBackoffSeconds", 0}}}});
  w.status() = {{"phase", "Running"},
                {"attempt", 3},
                {"attempts",
                 {{{"attempt", 1}, {"endTime", Ts(10)}, {"outcome", "error"}, {"reason", "Error"}},
                  {{"attempt", 2}, {"endTime", Ts(20)}, {"outcome", "waiting"}, {"message", "proceed"}},
                  {{"attempt", 3}, {"job", Job(3)}, {"startTime", Ts(30)}, {"outcome", "running"}}}}};
  w.jobs.push_back(MakeJob(3, 30));
  w.now = At(40);
  w.Finish(3, "", 1, 40);
  auto r = w.Step();
  ASSERT_NE(r.Find<fc::CreateJob>(), nullptr) << "one failure since the wait: retried\n" << r.Describe();
  EXPECT_EQ(r.Find<fc::CreateJob>()->attempt, 4);
}

TEST(Retry, NextAttemptIsAboveEveryKnownAttempt) {
  World w;
  // Jobs a1..a3 exist although the status only knows attempt 1 (lost patches).
  for (int i = 1; i <= 3; ++i) w.jobs.push_back(MakeJob(i, i * 10));
  for (int i = 1; i <= 3; ++i) {
    json p = MakePod(w.jobs[i - 1], i * 10);
    PodTerminated(p, 1, "Error", "", i * 10 + 5);
    JobFailed(w.jobs[i - 1], "BackoffLimitExceeded", "", i * 10 + 5);
    w.pods.push_back(p);
  }
  w.flowrun = MakeFlowRun({{"retry", {{"maxAttempts", 5}}}});
  w.status() = {{"phase", "Running"}, {"attempt", 1}};
  w.run = MakeRun("failed", 4);  // the database saw a 4th execution
  w.now = At(1000);
  // Attempt 4's Job is not in the cache: waited for (it may be informer lag)...
  auto r = w.Step();
  EXPECT_EQ(Count<fc::CreateJob>(r), 0u) << r.Describe();
  EXPECT_EQ(w.status()["attempt"], 4);
  // ...then counted as deleted, and the retry is attempt 5.
  std::optional<fc::CreateJob> created;
  for (int t = 1061; t < 3000 && !created; t += 30) {
    w.now = At(t);
    auto step = w.Step();
    if (auto* c = step.Find<fc::CreateJob>()) created = *c;
  }
  ASSERT_TRUE(created);
  EXPECT_EQ(created->attempt, 5);
  EXPECT_EQ((*w.attempt_record(4))["outcome"], "job_deleted");
  EXPECT_EQ(w.status()["attempt"], 5);
}

TEST(Retry, StaleJobOfAnOlderAttemptIsStopped) {
  World w = RunningWorld();
  json old = MakeJob(1, 0);
  w.jobs.push_back(MakeJob(2, 60));
  w.status()["attempt"] = 2;
  w.now = At(61);
  auto r = w.Reconcile();
  ASSERT_EQ(Count<fc::DeleteJob>(r), 1u) << r.Describe();
  EXPECT_EQ(r.Find<fc::DeleteJob>()->name, Job(1));
}

}  // namespace
