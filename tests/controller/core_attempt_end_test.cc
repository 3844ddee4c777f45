// The core: how a finished attempt ends (termination message, database, exit code, pod and Job state).
#include "core_world.h"

using namespace core_test;

namespace {

// ---------------------------------------------------------------------------
// How a finished attempt ends: termination message, exit code, pod and Job state.

struct EndCase {
  std::string name;
  std::function<void(World&)> finish;  // makes attempt 1 end at t=50
  std::string phase;                   // phase right after
  std::string outcome, reason;
  bool retried;                        // a backoff then attempt 2
  std::string message_has = "";
};

class AttemptEnd : public ::testing::TestWithParam<EndCase> {};

TEST_P(AttemptEnd, LandsInStatus) {
  const EndCase& c = GetParam();
  World w = RunningWorld();
  w.now = At(50);
  c.finish(w);
  auto r = w.Step();
  EXPECT_EQ(w.phase(), c.phase) << r.Describe();
  const json* a = w.attempt_record(1);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ((*a)["outcome"], c.outcome) << a->dump();
  EXPECT_EQ((*a)["reason"], c.reason) << a->dump();
  EXPECT_TRUE(a->contains("endTime"));
  if (!c.message_has.empty()) {
    EXPECT_NE(a->value("message", "").find(c.message_has), std::string::npos) << a->dump();
  }
  EXPECT_EQ(Count<fc::CreateJob>(r), 0u) << "no retry before the backoff\n" << r.Describe();
  if (c.retried) {
    ASSERT_NE(r.Find<fc::RequeueAfter>(), nullptr) << r.Describe();
    w.now = At(60);
    auto r2 = w.Step();
    ASSERT_NE(r2.Find<fc::CreateJob>(), nullptr) << r2.Describe();
    EXPECT_EQ(r2.Find<fc::CreateJob>()->attempt, 2);
    EXPECT_EQ(w.phase(), "Pending");
  } else {
    w.now = At(10000);
    auto r2 = w.Reconcile();
    EXPECT_EQ(Count<fc::CreateJob>(r2), 0u) << r2.Describe();
  }
}

std::string LogTail() { return "Traceback (most recent call last):\n  ValueError: boom"; }

INSTANTIATE_TEST_SUITE_P(
    Outcomes, AttemptEnd,
    ::testing::Values(
        EndCase{"Succeeded", [](World& w) { w.Finish(1, Message("succeeded", 1), 0, 50); }, "Succeeded",
                "succeeded", "Succeeded", false},
        EndCase{"Waiting", [](World& w) { w.Finish(1, Message("waiting", 1), 0, 50); }, "Waiting", "waiting",
                "WaitingForAnswer", false, "proceed"},
        EndCase{"BudgetExceeded",
                [](World& w) {
                  w.flowrun["spec"]["budgetUSD"] = 0.01;
                  w.run->budget_usd = 0.01;
                  w.Finish(1, Message("budget_exceeded", 1), 0, 50);
                },
                "BudgetExceeded", "budget_exceeded", "BudgetExceeded", false},
        EndCase{"FlowThrew",
                [](World& w) {
                  w.Finish(1, Message("failed", 1, [](auto& o) { o.error = "checkpoint 'analyze' failed: 500"; }), 1,
                           50);
                },
                "Pending", "failed", "FlowFailed", true, "analyze"},
        EndCase{"DatabaseUnavailable",
                [](World& w) { w.Finish(1, Message("database_unavailable", 1), 3, 50); }, "Pending",
                "database_unavailable", "DatabaseUnavailable", true},
        EndCase{"ConfigError",
                [](World& w) {
                  w.Finish(1, Message("config_error", 1, [](auto& o) { o.error = "FLOWRUN_PARAMETERS: not JSON"; }), 2,
                           50);
                },
                "Failed", "config_error", "ConfigError", false, "FLOWRUN_PARAMETERS"},
        EndCase{"Divergence",
                [](World& w) {
                  w.Finish(1, Message("divergence", 1, [](auto& o) { o.error = "checkpoint 'plan' diverged"; }), 5, 50);
                },
                "Failed", "divergence", "Divergence", false},
        EndCase{"WaitTimedOutUnderFail",
                [](World& w) {
                  w.Finish(1, Message("failed", 1, [](auto& o) {
                             o.reason = flowrun::FailureReason::kWaitTimedOut;
                             o.error = "the deadline passed";  // any wording: only the reason is read
                           }),
                           1, 50);
                },
                "Failed", "failed", "WaitTimedOut", false},
        EndCase{"TimedOutWordingIsNotAReason",
                [](World& w) {
                  w.Finish(1, Message("failed", 1, [](auto& o) { o.error = "wait proceed#1 timed out without an answer"; }),
                           1, 50);
                },
                "Pending", "failed", "FlowFailed", true},
        EndCase{"WaitTimedOutFromDatabaseWhenMessageLost",
                [](World& w) {
                  w.Finish(1, "", 1, 50);
                  flowrun::AttemptRecord rec;
                  rec.attempt = 1;
                  rec.epoch = 1;
                  rec.outcome = flowrun::OutcomeKind::kFailed;
                  rec.reason = flowrun::FailureReason::kWaitTimedOut;
                  rec.finished_at = At(50);
                  w.run->attempts.push_back(rec);
                  w.run->status = flowrun::RunStatus::kFailed;
                  w.run->failure_reason = flowrun::FailureReason::kWaitTimedOut;
                },
                "Failed", "failed", "WaitTimedOut", false},
        EndCase{"CancelledOutcome", [](World& w) { w.Finish(1, Message("cancelled", 1), 1, 50); }, "Cancelled",
                "cancelled", "Cancelled", false},
        EndCase{"FencedOnly", [](World& w) { w.Finish(1, Message("fenced", 1), 4, 50); }, "Pending", "fenced",
                "Fenced", true},
        EndCase{"OOMKilled", [](World& w) { w.Finish(1, "", 137, 50, "OOMKilled"); }, "Pending", "oom_killed",
                "OOMKilled", true},
        EndCase{"CrashWithLogs", [](World& w) { w.Finish(1, LogTail(), 1, 50); }, "Pending", "error", "Error", true,
                "ValueError: boom"},
        EndCase{"SigKill", [](World& w) { w.Finish(1, "", 137, 50, "Error"); }, "Pending", "killed", "Killed", true},
        EndCase{"ExitTwoWithoutMessage", [](World& w) { w.Finish(1, "", 2, 50); }, "Failed", "config_error",
                "ConfigError", false},
        EndCase{"DeadlineExceeded",
                [](World& w) {
                  PodTerminated(w.pod(1), 143, "Error", "", 50);
                  JobFailed(w.job(1), "DeadlineExceeded", "Job was active longer than specified deadline", 50);
                },
                "Pending", "deadline_exceeded", "DeadlineExceeded", true, "longer than"},
        EndCase{"Evicted",
                [](World& w) {
                  json& p = w.pod(1);
                  PodTerminated(p, 137, "Error", "", 50);
                  p["status"]["reason"] = "Evicted";
                  p["status"]["message"] = "The node was low on resource: memory.";
                  JobFailed(w.job(1), "BackoffLimitExceeded", "Job has reached the specified backoff limit", 50);
                },
                "Pending", "evicted", "Evicted", true, "low on resource"},
        EndCase{"NodeLost",
                [](World& w) {
                  json& p = w.pod(1);
                  p["status"]["phase"] = "Failed";
                  p["status"]["conditions"] = {{{"type", "DisruptionTarget"}, {"status", "True"},
                                                {"reason", "DeletionByTaintManager"}}};
                  JobFailed(w.job(1), "BackoffLimitExceeded", "Job has reached the specified backoff limit", 50);
                },
                "Pending", "node_lost", "NodeLost", true},
        EndCase{"Preempted",
                [](World& w) {
                  json& p = w.pod(1);
                  PodTerminated(p, 143, "Error", "", 50);
                  p["status"]["conditions"] = {{{"type", "DisruptionTarget"}, {"status", "True"},
                                                {"reason", "PreemptionByScheduler"}}};
                  JobFailed(w.job(1), "BackoffLimitExceeded", "", 50);
                },
                "Pending", "preempted", "Preempted", true},
        EndCase{"PodDeleted",
                [](World& w) {
                  w.pods = json::array();
                  JobFailed(w.job(1), "BackoffLimitExceeded", "Job has reached the specified backoff limit", 50);
                },
                "Pending", "pod_deleted", "PodDeleted", true},
        EndCase{"ExitZeroWithoutOutcome", [](World& w) { w.Finish(1, "", 0, 50); }, "Pending", "no_outcome",
                "NoOutcome", true},
        EndCase{"OutcomeFromDatabaseWhenMessageLost",
                [](World& w) {
                  w.Finish(1, "", 0, 50);
                  flowrun::AttemptRecord rec;
                  rec.attempt = 1;
                  rec.epoch = 1;
                  rec.outcome = flowrun::OutcomeKind::kSucceeded;
                  rec.finished_at = At(50);
                  w.run->attempts.push_back(rec);
                  w.run->status = flowrun::RunStatus::kSucceeded;
                  w.run->result = json{{"report", "from db"}};
                },
                "Succeeded", "succeeded", "Succeeded", false},
        EndCase{"JobStatusLagsThePod",
                [](World& w) { PodTerminated(w.pod(1), 0, "Completed", Message("succeeded", 1), 50); }, "Succeeded",
                "succeeded", "Succeeded", false},
        EndCase{"DuplicatePodFencedOtherSucceeded",
                [](World& w) {
                  json other = MakePod(w.job(1), 40, "b8c1d");
                  PodTerminated(other, 4, "Error", Message("fenced", 1), 45);
                  w.pods.push_back(other);
                  w.Finish(1, Message("succeeded", 1), 0, 50);
                },
                "Succeeded", "succeeded", "Succeeded", false},
        EndCase{"UnknownOutcomeIsRetried",
                [](World& w) { w.Finish(1, R"({"v":1,"outcome":"exploded","attempt":1})", 1, 50); }, "Pending",
                "failed", "UnknownOutcome", true}),
    [](const auto& info) { return info.param.name; });

// The reconcile that concluded attempt 1 created attempt 2's Job, but its
// status patch was lost (409 on a stale copy): the next reconcile sees Job a2
// and must still conclude attempt 1 — from its Job when it is there, else as
// superseded — instead of leaving it "running" forever (seen in e2e).
TEST(AttemptEnd, AnOlderAttemptWhoseConclusionWasLostIsConcludedLater) {
  for (bool job_gone : {false, true}) {
    SCOPED_TRACE(job_gone ? "attempt 1's Job deleted as stale" : "attempt 1's Job still there");
    World w = RunningWorld();
    w.now = At(10);
    w.Finish(1, Message("terminated", 1), 143, 10);
    fc::ReconcileResult r = w.Reconcile();
    const fc::CreateJob* create = r.Find<fc::CreateJob>();
    ASSERT_NE(create, nullptr) << r.Describe();  // terminated: resumed at once
    w.jobs.push_back(create->job);               // ...and the status patch never landed
    if (job_gone) {
      w.jobs.erase(w.jobs.begin());
      w.pods.clear();
    }
    ASSERT_EQ(w.attempt_record(1)->value("outcome", ""), "running");
    w.now = At(11);
    w.Step();
    const json* a1 = w.attempt_record(1);
    ASSERT_NE(a1, nullptr);
    EXPECT_EQ(a1->value("reason", ""), job_gone ? "Superseded" : "Terminated") << *a1;
    EXPECT_EQ(a1->value("outcome", ""), job_gone ? "superseded" : "terminated") << *a1;
    EXPECT_FALSE(a1->value("endTime", "").empty()) << *a1;
    ASSERT_NE(w.attempt_record(2), nullptr);
    EXPECT_EQ(w.attempt_record(2)->value("outcome", ""), "running");
    EXPECT_EQ(w.jobs.size(), job_gone ? 1u : 2u);  // no third Job
  }
}

TEST(AttemptEnd, SucceededCarriesResultCostsAndConditions) {
  World w = RunningWorld();
  w.now = At(50);
  w.Finish(1, Message("succeeded", 1), 0, 50);
  w.run->status = flowrun::RunStatus::kSucceeded;
  w.run->result = json{{"report", std::string(10000, 'x')}};
  auto r = w.Step();
  EXPECT_EQ(w.phase(), "Succeeded");
  EXPECT_LE(w.status()["result"].get<std::string>().size(), 4096u);
  EXPECT_EQ(w.status()["result"].get<std::string>().substr(0, 12), R"({"report":"x)");
  EXPECT_EQ(w.status()["cost"]["usd"], 0.0123);
  EXPECT_EQ(w.status()["cost"]["llmCalls"], 2);
  EXPECT_EQ(w.status()["cost"]["unfinishedCalls"], 0);
  EXPECT_EQ(w.status()["cost"]["savedTokens"], 15);
  EXPECT_EQ(w.status()["checkpoints"]["live"], 2);
  EXPECT_EQ(w.status()["checkpoints"]["completed"], 2);
  EXPECT_EQ((*w.condition("Completed"))["status"], "True");
  EXPECT_EQ((*w.condition("Succeeded"))["status"], "True");
  EXPECT_EQ((*w.condition("Succeeded"))["lastTransitionTime"], Ts(50));
  EXPECT_EQ(w.status().value("currentJob", ""), "");
  EXPECT_TRUE(HasEvent(r, "Normal", "Succeeded"));
  // Later reconciles keep lastTransitionTime.
  w.now = At(500);
  auto r2 = w.Reconcile();
  EXPECT_TRUE(r2.actions.empty()) << r2.Describe();
}

// ---------------------------------------------------------------------------
// SIGTERM: the agent's "terminated" outcome (its pod was deleted mid-run).

// Attempt `n`'s pod was deleted: the agent got SIGTERM and reported "terminated" (exit 143).
void Terminate(World& w, int n, int at) {
  w.Finish(n, Message("terminated", n, [](auto& o) { o.error = "SIGTERM: the pod is being deleted"; }),
           flowrun::kExitTerminated, at);
}

TEST(Terminated, ClassifiedTerminatedAndResumedAtOnceWithoutAFailure) {
  World w = RunningWorld();
  w.now = At(50);
  Terminate(w, 1, 50);
  auto r = w.Step();
  const json* a = w.attempt_record(1);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ((*a)["outcome"], "terminated") << a->dump();
  EXPECT_EQ((*a)["reason"], "Terminated") << a->dump();
  EXPECT_NE(a->value("message", "").find("SIGTERM"), std::string::npos) << a->dump();
  // No backoff: attempt 2 (a resume from the cache) is created in the same reconcile.
  ASSERT_NE(r.Find<fc::CreateJob>(), nullptr) << r.Describe();
  EXPECT_EQ(r.Find<fc::CreateJob>()->attempt, 2);
  EXPECT_TRUE(HasEvent(r, "Normal", "AttemptTerminated")) << r.Describe();
  EXPECT_FALSE(HasEvent(r, "Warning", "AttemptFailed")) << "a termination is no failure of the flow\n" << r.Describe();
  EXPECT_EQ(w.phase(), "Pending");
}

TEST(Terminated, NotCountedAgainstMaxAttempts) {
  World w;
  w.flowrun = MakeFlowRun({{"retry", {{"maxAttempts", 1}, {"backoffSeconds", 10}}}});
  w.Step();  // attempt 1
  for (int n = 1; n <= 3; ++n) {  // three pods deleted in a row: each resumed
    w.now = At(n * 100);
    PodRunning(w.pod(n), n * 100 - 5);
    Terminate(w, n, n * 100);
    auto r = w.Step();
    ASSERT_NE(w.phase(), "Failed") << "termination " << n << " counted as a failure\n" << r.Describe();
    ASSERT_NE(r.Find<fc::CreateJob>(), nullptr) << r.Describe();
    EXPECT_EQ(r.Find<fc::CreateJob>()->attempt, n + 1);
  }
  // The first real failure is the first one counted: maxAttempts 1 fails the run.
  w.now = At(500);
  PodRunning(w.pod(4), 450);
  w.Finish(4, Message("failed", 4, [](auto& o) { o.error = "checkpoint 'analyze' failed"; }), 1, 500);
  auto r = w.Step();
  EXPECT_EQ(w.phase(), "Failed") << r.Describe();
  EXPECT_NE(w.status()["message"].get<std::string>().find("1 consecutive attempts failed"), std::string::npos)
      << w.status()["message"];
}

TEST(Terminated, AnExitWithoutTheMessageIsTerminatedToo) {
  World w = RunningWorld();  // e.g. an agent not built on a runtime with the watcher
  w.now = At(50);
  w.Finish(1, "", 143, 50);
  auto r = w.Step();
  EXPECT_EQ((*w.attempt_record(1))["outcome"], "terminated");
  EXPECT_EQ((*w.attempt_record(1))["reason"], "Terminated");
  ASSERT_NE(r.Find<fc::CreateJob>(), nullptr) << r.Describe();
}

TEST(Terminated, ADisruptionKubernetesNamesIsTheMorePreciseCause) {
  World w = RunningWorld();  // the taint manager deleted the pod of a lost node
  w.now = At(50);
  Terminate(w, 1, 50);
  w.pod(1)["status"]["conditions"] = {
      {{"type", "DisruptionTarget"}, {"status", "True"}, {"reason", "DeletionByTaintManager"}}};
  w.Step();
  EXPECT_EQ((*w.attempt_record(1))["reason"], "NodeLost");
  EXPECT_EQ((*w.attempt_record(1))["outcome"], "node_lost");
}

TEST(Terminated, TheAttemptDeadlineStillWins) {
  World w = RunningWorld();  // the Job controller deleted the pod at activeDeadlineSeconds
  w.now = At(50);
  Terminate(w, 1, 50);
  JobFailed(w.job(1), "DeadlineExceeded", "Job was active longer than specified deadline", 50);
  w.Step();
  EXPECT_EQ((*w.attempt_record(1))["reason"], "DeadlineExceeded");
}

}  // namespace
