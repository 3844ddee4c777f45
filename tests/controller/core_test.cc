// Unit tests of the pure reconcile core: the FlowRun lifecycle as a table of
// (phase x Job state x pod failure mode x answer x deadline x budget x cancel
// x deletion) cases, idempotency (apply the actions, reconcile again: nothing
// new), BuildJob's environment contract and security context, Job names.
//
// Termination messages are made with the runtime's own encoder
// (flowrun::EncodeTerminationMessage), so the controller reads exactly what
// agents write.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <set>

#include "flowrun/controller/reconcile.h"
#include "flowrun/outcome.h"

namespace fc = flowrun::controller;
using json = nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;

namespace {

const fc::TimePoint kT0 = *fc::ParseTime("2026-11-26T10:00:00Z");
fc::TimePoint At(int s) { return kT0 + seconds(s); }
std::string Ts(int s) { return fc::FormatTime(At(s)); }

constexpr char kName[] = "research-1";
constexpr char kUid[] = "6f1c2a7e-1b7d-4c55-9a1e-3f0c9d8b2a11";

json MakeFlowRun(const json& spec_patch = json::object()) {
  json fr = {{"apiVersion", "flowrun.dev/v1alpha1"},
             {"kind", "FlowRun"},
             {"metadata",
              {{"name", kName},
               {"namespace", "team-a"},
               {"uid", kUid},
               {"generation", 1},
               {"creationTimestamp", Ts(0)},
               {"finalizers", {"flowrun.dev/cleanup"}}}},
             {"spec",
              {{"template", {{"image", "flowrun/research-agent:0.1.0"}}},
               {"parameters", {{"topic", "durable execution"}}},
               {"flow", "research"},
               {"retry", {{"maxAttempts", 3}, {"backoffSeconds", 10}, {"maxBackoffSeconds", 300}}}}}};
  fr["spec"].merge_patch(spec_patch);
  return fr;
}

std::string Job(int attempt) { return fc::JobName(kName, attempt); }

json MakeJob(int attempt, int created_at) {
  std::string name = Job(attempt);
  return {{"apiVersion", "batch/v1"},
          {"kind", "Job"},
          {"metadata",
           {{"name", name},
            {"namespace", "team-a"},
            {"uid", "uid-" + name},
            {"creationTimestamp", Ts(created_at)},
            {"labels", {{"flowrun.dev/attempt", std::to_string(attempt)}}}}},
          {"status", {{"active", 1}}}};
}

void JobComplete(json& job, int at) {
  job["status"] = {{"succeeded", 1},
                   {"completionTime", Ts(at)},
                   {"conditions",
                    {{{"type", "SuccessCriteriaMet"}, {"status", "True"}, {"lastTransitionTime", Ts(at)}},
                     {{"type", "Complete"}, {"status", "True"}, {"lastTransitionTime", Ts(at)}}}}};
}

void JobFailed(json& job, const std::string& reason, const std::string& message, int at) {
  job["status"] = {{"failed", 1},
                   {"conditions",
                    {{{"type", "FailureTarget"}, {"status", "True"}, {"reason", reason}, {"message", message},
                      {"lastTransitionTime", Ts(at)}},
                     {{"type", "Failed"}, {"status", "True"}, {"reason", reason}, {"message", message},
                      {"lastTransitionTime", Ts(at)}}}}};
}

json MakePod(const json& job, int created_at, const std::string& suffix = "x7k2p") {
  std::string jn = job["metadata"]["name"];
  return {{"apiVersion", "v1"},
          {"kind", "Pod"},
          {"metadata",
           {{"name", jn + "-" + suffix},
            {"namespace", "team-a"},
            {"uid", "pod-" + jn + suffix},
            {"creationTimestamp", Ts(created_at)},
            {"labels", {{"batch.kubernetes.io/job-name", jn}, {"job-name", jn}}},
            {"ownerReferences",
             {{{"apiVersion", "batch/v1"}, {"kind", "Job"}, {"name", jn}, {"uid", job["metadata"]["uid"]},
               {"controller", true}}}}}},
          {"status",
           {{"phase", "Pending"},
            {"containerStatuses",
             {{{"name", "agent"}, {"state", {{"waiting", {{"reason", "ContainerCreating"}}}}}}}}}}};
}

void PodWaiting(json& pod, const std::string& reason, const std::string& message = "") {
  pod["status"]["phase"] = "Pending";
  pod["status"]["containerStatuses"][0]["state"] = {{"waiting", {{"reason", reason}, {"message", message}}}};
}

void PodRunning(json& pod, int at) {
  pod["status"]["phase"] = "Running";
  pod["status"]["containerStatuses"][0]["state"] = {{"running", {{"startedAt", Ts(at)}}}};
}

void PodTerminated(json& pod, int exit_code, const std::string& reason, const std::string& message, int at) {
  pod["status"]["phase"] = exit_code == 0 ? "Succeeded" : "Failed";
  json t = {{"exitCode", exit_code}, {"reason", reason}, {"finishedAt", Ts(at)}};
  if (!message.empty()) t["message"] = message;
  pod["status"]["containerStatuses"][0]["state"] = {{"terminated", t}};
}

flowrun::OpenWait MakeWait(const std::string& name, int occurrence = 1, std::optional<int> deadline = {},
                           flowrun::OnTimeout on_timeout = flowrun::OnTimeout::kFail) {
  flowrun::OpenWait w;
  w.name = name;
  w.occurrence = occurrence;
  w.question = "Research complete. Proceed?";
  w.schema = {{"type", "boolean"}};
  w.asked_at = At(100);
  if (deadline) w.deadline = At(*deadline);
  w.on_timeout = on_timeout;
  if (on_timeout == flowrun::OnTimeout::kUseDefault) w.default_answer = true;
  return w;
}

// A termination message exactly as the runtime writes it.
std::string Message(const std::string& outcome, int attempt,
                    const std::function<void(flowrun::Outcome&)>& edit = {}) {
  flowrun::Outcome o;
  o.kind = flowrun::ParseOutcomeKind(outcome).value();
  o.attempt = attempt;
  o.spent.cost_usd = 0.0123;
  o.run_spent_usd = 0.0123;
  if (outcome == "waiting") o.wait = MakeWait("proceed");
  if (outcome == "succeeded") o.result = json{{"report", "done"}};
  if (edit) edit(o);
  return flowrun::EncodeTerminationMessage(o);
}

flowrun::RunState MakeRun(const std::string& status, int attempt) {
  flowrun::RunState r;
  r.uid = kUid;
  r.namespace_ = "team-a";
  r.name = kName;
  r.flow = "research";
  r.status = flowrun::ParseRunStatus(status).value();
  r.attempt = attempt;
  r.epoch = attempt;
  r.spent.cost_usd = 0.0123;
  r.spent.llm_calls = 2;
  r.spent.input_tokens = 40;
  r.spent.output_tokens = 50;
  r.saved.cost_usd = 0.001;
  r.saved.input_tokens = 10;
  r.saved.output_tokens = 5;
  r.live_checkpoints = 2;
  r.cached_checkpoints = 1;
  r.checkpoints_completed = 2;
  return r;
}

bool Mutating(const fc::Action& a) { return !std::holds_alternative<fc::RequeueAfter>(a); }

// The world the core observes, and fake adapters that apply its actions.
struct World {
  json flowrun = MakeFlowRun();
  json jobs = json::array();
  json pods = json::array();
  std::optional<flowrun::RunState> run;
  fc::TimePoint now = At(0);
  fc::ControllerConfig config;
  bool flowrun_deleted = false;
  std::vector<fc::RecordAnswer> recorded;

  fc::ReconcileResult Reconcile() const {
    fc::ReconcileInput in{flowrun, jobs, pods, run, now, config};
    fc::ReconcileResult r = fc::Reconcile(in);
    CheckInvariants(r);
    return r;
  }

  void CheckInvariants(const fc::ReconcileResult& r) const {
    std::set<std::string> existing;
    for (const auto& j : jobs) existing.insert(j["metadata"]["name"].get<std::string>());
    std::set<std::string> created;
    size_t patch_at = SIZE_MAX;
    for (size_t i = 0; i < r.actions.size(); ++i) {
      const auto& a = r.actions[i];
      if (auto* p = std::get_if<fc::PatchStatus>(&a)) {
        patch_at = i;
        ASSERT_TRUE(p->patch.contains("status")) << r.Describe();
        EXPECT_FALSE(p->patch["status"].contains("answers")) << "the controller never writes answers\n"
                                                             << r.Describe();
        EXPECT_FALSE(p->patch["status"].empty()) << r.Describe();
      }
      if (auto* c = std::get_if<fc::CreateJob>(&a)) {
        EXPECT_EQ(existing.count(c->name), 0u) << "CreateJob for an existing Job\n" << r.Describe();
        EXPECT_TRUE(created.insert(c->name).second) << r.Describe();
        EXPECT_EQ(c->name, Job(c->attempt));
        EXPECT_LE(c->name.size(), 63u);
      }
      if (std::holds_alternative<fc::RequeueAfter>(a)) EXPECT_EQ(i, r.actions.size() - 1) << r.Describe();
      if (std::holds_alternative<fc::Event>(a) && patch_at == SIZE_MAX) {
        // Events follow the status patch that records them.
        bool patch_later = false;
        for (size_t k = i; k < r.actions.size(); ++k)
          patch_later |= std::holds_alternative<fc::PatchStatus>(r.actions[k]);
        EXPECT_FALSE(patch_later) << r.Describe();
      }
    }
  }

  void Apply(const fc::ReconcileResult& r) {
    for (const auto& a : r.actions) {
      if (auto* c = std::get_if<fc::CreateJob>(&a)) {
        json job = c->job;
        job["metadata"]["uid"] = "uid-" + c->name;
        job["metadata"]["creationTimestamp"] = fc::FormatTime(now);
        job["status"] = json::object();
        jobs.push_back(job);
      } else if (auto* d = std::get_if<fc::DeleteJob>(&a)) {
        EXPECT_EQ(d->propagation_policy, "Background");
        json kept = json::array();
        for (auto& j : jobs)
          if (j["metadata"]["name"] != d->name) kept.push_back(j);
        jobs = kept;
        json kept_pods = json::array();
        for (auto& p : pods)
          if (p["metadata"]["labels"]["job-name"] != d->name) kept_pods.push_back(p);
        pods = kept_pods;
      } else if (auto* p = std::get_if<fc::PatchStatus>(&a)) {
        fc::ApplyMergePatch(flowrun, p->patch);
      } else if (std::holds_alternative<fc::AddFinalizer>(a)) {
        flowrun["metadata"]["finalizers"].push_back("flowrun.dev/cleanup");
      } else if (std::holds_alternative<fc::RemoveFinalizer>(a)) {
        flowrun["metadata"]["finalizers"] = json::array();
        flowrun_deleted = flowrun["metadata"].contains("deletionTimestamp");
      } else if (auto* ra = std::get_if<fc::RecordAnswer>(&a)) {
        recorded.push_back(*ra);
        if (run && run->open_wait && run->open_wait->name == ra->wait) run->open_wait.reset();
      } else if (auto* sb = std::get_if<fc::SetBudget>(&a)) {
        if (!run) run = MakeRun("pending", 0);
        run->budget_usd = sb->usd;
      } else if (auto* ew = std::get_if<fc::ExpireWait>(&a)) {
        if (run && run->open_wait && run->open_wait->deadline && *run->open_wait->deadline <= ew->now) {
          if (run->open_wait->on_timeout == flowrun::OnTimeout::kUseDefault && run->open_wait->default_answer) {
            run->open_wait.reset();
          } else {
            run->status = flowrun::RunStatus::kFailed;
            run->failure_reason = flowrun::FailureReason::kWaitTimedOut;
            run->error = "the database's words, which the core never reads";
            run->open_wait.reset();
          }
        }
      } else if (std::holds_alternative<fc::CancelRun>(a)) {
        if (!run) run = flowrun::RunState{};  // the row CancelRun creates: nothing ran
        run->status = flowrun::RunStatus::kCancelled;
        run->open_wait.reset();
      } else if (std::holds_alternative<fc::DeleteRunRows>(a)) {
        run.reset();
      } else if (std::holds_alternative<fc::DeleteFlowRun>(a)) {
        flowrun["metadata"]["deletionTimestamp"] = fc::FormatTime(now);
      }
    }
  }

  // Reconciles, applies, and checks that reconciling the result again changes nothing.
  fc::ReconcileResult Step() {
    fc::ReconcileResult r = Reconcile();
    EXPECT_TRUE(r.error.ok()) << r.error;
    Apply(r);
    // ExpireWait is two-phase by design: the database decides, the requeued
    // reconcile reads its decision.
    // So is DeleteFlowRun: the deletion then runs the finalizer.
    if (r.Find<fc::ExpireWait>() || r.Find<fc::DeleteFlowRun>()) return r;
    fc::ReconcileResult again = Reconcile();
    for (const auto& a : again.actions)
      EXPECT_FALSE(Mutating(a)) << "not idempotent; first:\n" << r.Describe() << "then:\n" << again.Describe();
    return r;
  }

  json& status() { return flowrun["status"]; }
  std::string phase() const { return flowrun.contains("status") ? flowrun["status"].value("phase", "") : ""; }
  json& job(int attempt) {
    for (auto& j : jobs)
      if (j["metadata"]["name"] == Job(attempt)) return j;
    throw std::runtime_error("no job " + Job(attempt));
  }
  json& pod(int attempt) {
    for (auto& p : pods)
      if (p["metadata"]["labels"]["job-name"] == Job(attempt)) return p;
    pods.push_back(MakePod(job(attempt), fc::ParseTime(job(attempt)["metadata"]["creationTimestamp"]).has_value()
                                             ? static_cast<int>(std::chrono::duration_cast<seconds>(
                                                                    *fc::ParseTime(job(attempt)["metadata"]
                                                                                                  ["creationTimestamp"]) -
                                                                    kT0)
                                                                    .count())
                                             : 0));
    return pods.back();
  }
  // Attempt n's agent ends with this termination message / exit code.
  void Finish(int attempt, const std::string& message, int exit_code, int at, const std::string& reason = "") {
    PodTerminated(pod(attempt), exit_code, reason.empty() ? (exit_code == 0 ? "Completed" : "Error") : reason,
                  message, at);
    if (exit_code == 0) JobComplete(job(attempt), at);
    else JobFailed(job(attempt), "BackoffLimitExceeded", "Job has reached the specified backoff limit", at);
  }
  const json* attempt_record(int n) const {
    for (const auto& a : flowrun["status"]["attempts"])
      if (a["attempt"] == n) return &a;
    return nullptr;
  }
  const json* condition(const std::string& type) const {
    for (const auto& c : flowrun["status"]["conditions"])
      if (c["type"] == type) return &c;
    return nullptr;
  }
};

template <typename T>
size_t Count(const fc::ReconcileResult& r) {
  return r.All<T>().size();
}

bool HasEvent(const fc::ReconcileResult& r, const std::string& type, const std::string& reason) {
  for (const auto* e : r.All<fc::Event>())
    if (e->type == type && e->reason == reason) return true;
  return false;
}

// Brings a world to "attempt 1 is running".
World RunningWorld() {
  World w;
  w.Step();  // CreateJob a1
  w.now = At(5);
  PodRunning(w.pod(1), 5);
  w.run = MakeRun("running", 1);
  w.Step();
  EXPECT_EQ(w.phase(), "Running");
  return w;
}

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
  if (!c.message_has.empty())
    EXPECT_NE(a->value("message", "").find(c.message_has), std::string::npos) << a->dump();
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

// ---------------------------------------------------------------------------
// Waiting and answers

World WaitingWorld(std::optional<int> deadline = {}, flowrun::OnTimeout policy = flowrun::OnTimeout::kFail) {
  World w = RunningWorld();
  w.now = At(100);
  w.Finish(1, Message("waiting", 1, [&](auto& o) { o.wait = MakeWait("proceed", 1, deadline, policy); }), 0, 100);
  w.run->status = flowrun::RunStatus::kWaiting;
  w.run->open_wait = MakeWait("proceed", 1, deadline, policy);
  auto r = w.Step();
  EXPECT_EQ(w.phase(), "Waiting") << r.Describe();
  EXPECT_TRUE(HasEvent(r, "Normal", "Waiting"));
  return w;
}

void Answer(World& w, const std::string& key, const json& answer) {
  w.status()["answers"][key] = answer;
  w.flowrun["metadata"]["managedFields"] = {
      {{"manager", "kubectl-patch"}, {"operation", "Update"}, {"subresource", "status"},
       {"fieldsV1", {{"f:status", {{"f:answers", {{"f:" + key, json::object()}}}}}}}}};
}

TEST(Waiting, StatusShowsTheQuestionAndNothingHappensWithoutAnAnswer) {
  World w = WaitingWorld();
  const json& wait = w.status()["wait"];
  EXPECT_EQ(wait["name"], "proceed");
  EXPECT_EQ(wait["question"], "Research complete. Proceed?");
  EXPECT_EQ(wait["schema"], json({{"type", "boolean"}}));
  EXPECT_EQ(wait["askedAt"], Ts(100));
  EXPECT_EQ(wait["onTimeout"], "fail");
  EXPECT_FALSE(wait.contains("deadline"));
  EXPECT_EQ(w.status().value("currentJob", ""), "");
  w.now = At(100000);
  EXPECT_TRUE(w.Reconcile().actions.empty()) << w.Reconcile().Describe();
}

TEST(Waiting, ValidAnswerIsRecordedThenANewAttemptResumes) {
  World w = WaitingWorld();
  w.now = At(200);
  Answer(w, "proceed", true);
  auto r = w.Step();
  ASSERT_EQ(w.recorded.size(), 1u) << r.Describe();
  EXPECT_EQ(w.recorded[0].wait, "proceed");
  EXPECT_EQ(w.recorded[0].answer, json(true));
  EXPECT_EQ(w.recorded[0].answered_by, "kubernetes:kubectl-patch");
  // Order: the answer is in the database before the Job that reads it starts.
  size_t record_at = SIZE_MAX, create_at = SIZE_MAX, patch_at = SIZE_MAX;
  for (size_t i = 0; i < r.actions.size(); ++i) {
    if (std::holds_alternative<fc::RecordAnswer>(r.actions[i])) record_at = i;
    if (std::holds_alternative<fc::CreateJob>(r.actions[i])) create_at = i;
    if (std::holds_alternative<fc::PatchStatus>(r.actions[i])) patch_at = i;
  }
  EXPECT_LT(record_at, create_at);
  EXPECT_LT(create_at, patch_at);
  EXPECT_EQ(r.Find<fc::CreateJob>()->attempt, 2);
  EXPECT_EQ(w.phase(), "Resuming");
  EXPECT_FALSE(w.status().contains("wait"));
  EXPECT_EQ(w.status()["answers"]["proceed"], true) << "answers stay as people wrote them";
  EXPECT_EQ((*w.condition("AnswerAccepted"))["status"], "True");
  EXPECT_TRUE(HasEvent(r, "Normal", "Accepted"));
  // The resumed pod runs: Running; then it succeeds.
  w.now = At(210);
  PodRunning(w.pod(2), 210);
  w.run->status = flowrun::RunStatus::kRunning;
  w.run->attempt = 2;
  w.Step();
  EXPECT_EQ(w.phase(), "Running");
  w.now = At(300);
  w.Finish(2, Message("succeeded", 2), 0, 300);
  w.Step();
  EXPECT_EQ(w.phase(), "Succeeded");
  EXPECT_EQ(w.recorded.size(), 1u);
}

TEST(Waiting, InvalidAnswerKeepsWaitingAndWarnsOnce) {
  World w = WaitingWorld();
  w.now = At(200);
  Answer(w, "proceed", "yes please");
  auto r = w.Step();
  EXPECT_EQ(Count<fc::RecordAnswer>(r), 0u) << r.Describe();
  EXPECT_EQ(Count<fc::CreateJob>(r), 0u);
  EXPECT_EQ(w.phase(), "Waiting");
  const json* c = w.condition("AnswerAccepted");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ((*c)["status"], "False");
  EXPECT_EQ((*c)["reason"], "InvalidAnswer");
  EXPECT_NE((*c)["message"].get<std::string>().find("does not match its schema"), std::string::npos) << *c;
  // The admission policy flowrun.dev-status-writers lets a person replace an
  // answer only when this condition's message starts so (crds/flowrun-policies.yaml).
  EXPECT_EQ((*c)["message"].get<std::string>().rfind("the answer to 'proceed'", 0), 0u) << *c;
  EXPECT_NE(w.status()["message"].get<std::string>().find("does not match its schema"), std::string::npos);
  EXPECT_TRUE(HasEvent(r, "Warning", "InvalidAnswer"));
  // A corrected answer is accepted; the condition flips.
  w.now = At(300);
  Answer(w, "proceed", false);
  auto r2 = w.Step();
  EXPECT_EQ(Count<fc::RecordAnswer>(r2), 1u) << r2.Describe();
  EXPECT_EQ((*w.condition("AnswerAccepted"))["reason"], "Accepted");
  EXPECT_EQ((*w.condition("AnswerAccepted"))["lastTransitionTime"], Ts(300));
}

TEST(Waiting, AnswerForAnotherWaitIsFlaggedAndKept) {
  World w = WaitingWorld();
  w.now = At(200);
  Answer(w, "procede", true);
  auto r = w.Step();
  EXPECT_EQ(Count<fc::RecordAnswer>(r), 0u);
  EXPECT_EQ(w.phase(), "Waiting");
  EXPECT_EQ((*w.condition("AnswerAccepted"))["reason"], "UnknownWait");
  EXPECT_TRUE(HasEvent(r, "Warning", "UnknownWait"));
  EXPECT_EQ(w.status()["answers"]["procede"], true);
}

// Answers are write-once: the resumed attempt's Job names the recorded
// answer; a later (or concurrent) change of status.answers is not applied -
// no second record, no new Job - and is reported until it agrees again.
TEST(Waiting, AnswerChangedAfterItWasRecordedIsReportedNotApplied) {
  World w = WaitingWorld();
  w.now = At(200);
  Answer(w, "proceed", true);
  auto r = w.Step();
  ASSERT_EQ(Count<fc::CreateJob>(r), 1u) << r.Describe();
  EXPECT_EQ(json::parse(r.Find<fc::CreateJob>()->job["metadata"]["annotations"]["flowrun.dev/answer"].get<std::string>()),
            json({{"wait", "proceed"}, {"answer", true}}));
  EXPECT_NE((*w.condition("AnswerAccepted"))["message"].get<std::string>().find("accepted: true"), std::string::npos);

  w.now = At(201);
  Answer(w, "proceed", false);
  auto r2 = w.Step();
  EXPECT_EQ(Count<fc::RecordAnswer>(r2), 0u) << r2.Describe();
  EXPECT_EQ(Count<fc::CreateJob>(r2), 0u) << r2.Describe();
  EXPECT_EQ(w.recorded.size(), 1u);
  EXPECT_EQ(w.phase(), "Resuming");
  const json* c = w.condition("AnswerAccepted");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ((*c)["status"], "False");
  EXPECT_EQ((*c)["reason"], "AnswerAlreadyRecorded");
  EXPECT_NE((*c)["message"].get<std::string>().find("'proceed' was answered true"), std::string::npos) << *c;
  EXPECT_NE((*c)["message"].get<std::string>().find("now has false"), std::string::npos) << *c;
  EXPECT_TRUE(HasEvent(r2, "Warning", "AnswerAlreadyRecorded"));
  EXPECT_TRUE(w.Reconcile().actions.empty() || Count<fc::Event>(w.Reconcile()) == 0u) << "reported once";

  // Still reported after the run finished; agreeing again clears it.
  w.now = At(210);
  w.Finish(2, Message("succeeded", 2), 0, 210);
  w.run->status = flowrun::RunStatus::kSucceeded;
  w.Step();
  EXPECT_EQ(w.phase(), "Succeeded");
  EXPECT_EQ((*w.condition("AnswerAccepted"))["reason"], "AnswerAlreadyRecorded");
  Answer(w, "proceed", true);
  auto r3 = w.Step();
  EXPECT_EQ((*w.condition("AnswerAccepted"))["reason"], "Accepted") << r3.Describe();
  EXPECT_EQ(w.recorded.size(), 1u);
}

// The database has the answer already (an earlier reconcile recorded it and
// failed before its status patch, or flowrunctl answered): status.answers is
// not recorded over it; the run resumes with the database's answer.
TEST(Waiting, AnswerAlreadyInTheDatabaseIsNotRecordedAgain) {
  World w = WaitingWorld();
  w.now = At(200);
  w.run->open_wait.reset();  // answered in the database
  Answer(w, "proceed", false);
  auto r = w.Step();
  EXPECT_EQ(Count<fc::RecordAnswer>(r), 0u) << r.Describe();
  ASSERT_EQ(Count<fc::CreateJob>(r), 1u) << r.Describe();
  EXPECT_FALSE(r.Find<fc::CreateJob>()->job["metadata"].contains("annotations")) << "its answer is not known here";
  EXPECT_EQ(w.phase(), "Resuming");
  EXPECT_FALSE(HasEvent(r, "Warning", "UnknownWait"));
}

TEST(Waiting, SchemaTooBigForTheMessageComesFromTheDatabase) {
  World w = RunningWorld();
  w.now = At(100);
  w.Finish(1, Message("waiting", 1, [](auto& o) { o.wait->schema = json::object(); }), 0, 100);
  // The termination message dropped the schema; the database has it.
  json msg = json::parse(Message("waiting", 1));
  msg["wait"].erase("schema");
  msg["truncated"] = true;
  w.pod(1)["status"]["containerStatuses"][0]["state"]["terminated"]["message"] = msg.dump();
  w.run->status = flowrun::RunStatus::kWaiting;
  w.run->open_wait = MakeWait("proceed");
  w.run->open_wait->schema = {{"type", "integer"}, {"minimum", 1}};
  w.Step();
  EXPECT_EQ(w.status()["wait"]["schema"]["type"], "integer");
  w.now = At(150);
  Answer(w, "proceed", 0);
  auto r = w.Step();
  EXPECT_EQ(Count<fc::RecordAnswer>(r), 0u) << r.Describe();
  Answer(w, "proceed", 3);
  auto r2 = w.Step();
  EXPECT_EQ(Count<fc::RecordAnswer>(r2), 1u) << r2.Describe();
}

TEST(Waiting, RepeatedWaitNeedsAFreshAnswer) {
  World w = WaitingWorld();
  w.now = At(200);
  Answer(w, "proceed", true);
  w.Step();
  w.now = At(210);
  PodRunning(w.pod(2), 210);
  w.Step();
  // The flow loops and asks "proceed" again (occurrence 2).
  w.now = At(300);
  w.Finish(2, Message("waiting", 2, [](auto& o) { o.wait = MakeWait("proceed", 2); }), 0, 300);
  w.run->status = flowrun::RunStatus::kWaiting;
  w.run->open_wait = MakeWait("proceed", 2);
  auto r = w.Step();
  EXPECT_EQ(w.phase(), "Waiting");
  EXPECT_EQ(w.status()["wait"]["name"], "proceed#2");
  EXPECT_EQ(Count<fc::RecordAnswer>(r), 0u) << "the first answer is not reused\n" << r.Describe();
  EXPECT_FALSE(HasEvent(r, "Warning", "UnknownWait")) << "a consumed answer is not unknown\n" << r.Describe();
  Answer(w, "proceed#2", false);
  w.now = At(400);
  auto r2 = w.Step();
  ASSERT_EQ(w.recorded.size(), 2u) << r2.Describe();
  EXPECT_EQ(w.recorded[1].wait, "proceed");
  EXPECT_EQ(w.recorded[1].answer, json(false));
  EXPECT_EQ(r2.Find<fc::CreateJob>()->attempt, 3);
}

TEST(Waiting, AnsweredOutsideKubernetesResumes) {
  World w = WaitingWorld();
  w.now = At(200);
  w.run->open_wait.reset();  // flowrunctl answer
  auto r = w.Step();
  ASSERT_NE(r.Find<fc::CreateJob>(), nullptr) << r.Describe();
  EXPECT_EQ(Count<fc::RecordAnswer>(r), 0u);
  EXPECT_EQ(w.phase(), "Resuming");
}

TEST(Waiting, DeadlineAheadRequeuesAtTheDeadline) {
  World w = WaitingWorld(1000);
  EXPECT_EQ(w.status()["wait"]["deadline"], Ts(1000));
  w.now = At(400);
  auto r = w.Reconcile();
  ASSERT_EQ(r.actions.size(), 1u) << r.Describe();
  EXPECT_EQ(r.Find<fc::RequeueAfter>()->after, milliseconds(600000));
}

TEST(Waiting, DeadlineUnderFailPolicyFailsTheRun) {
  World w = WaitingWorld(1000);
  w.now = At(1000);
  auto r = w.Step();
  ASSERT_NE(r.Find<fc::ExpireWait>(), nullptr) << r.Describe();
  EXPECT_EQ(w.phase(), "Waiting");
  // The adapter re-reconciles (RequeueAfter) and reads the database.
  auto r2 = w.Step();
  EXPECT_EQ(w.phase(), "Failed") << r2.Describe();
  EXPECT_TRUE(HasEvent(r2, "Warning", "Failed"));
  EXPECT_EQ((*w.condition("Succeeded"))["reason"], "WaitTimedOut");
  EXPECT_EQ(Count<fc::CreateJob>(w.Reconcile()), 0u);
}

TEST(Waiting, DeadlineUnderDefaultPolicyResumes) {
  World w = WaitingWorld(1000, flowrun::OnTimeout::kUseDefault);
  w.now = At(1001);
  auto r = w.Reconcile();
  ASSERT_NE(r.Find<fc::ExpireWait>(), nullptr) << r.Describe();
  EXPECT_EQ(r.Find<fc::RequeueAfter>()->after, milliseconds(1000));
  w.Apply(r);
  auto r2 = w.Step();
  ASSERT_NE(r2.Find<fc::CreateJob>(), nullptr) << r2.Describe();
  EXPECT_EQ(w.phase(), "Resuming");
  EXPECT_TRUE(HasEvent(r2, "Normal", "WaitTimedOut")) << r2.Describe();
}

TEST(Waiting, ValidAnswerBeatsAPassedDeadline) {
  World w = WaitingWorld(1000);
  w.now = At(1500);
  Answer(w, "proceed", true);
  auto r = w.Step();
  EXPECT_EQ(Count<fc::ExpireWait>(r), 0u) << r.Describe();
  EXPECT_EQ(Count<fc::RecordAnswer>(r), 1u);
}

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

// ---------------------------------------------------------------------------
// Malformed input

TEST(Malformed, FlowRunWithoutUidIsAnError) {
  World w;
  w.flowrun["metadata"].erase("uid");
  auto r = fc::Reconcile({w.flowrun, w.jobs, w.pods, w.run, w.now, w.config});
  EXPECT_TRUE(r.actions.empty());
  EXPECT_EQ(r.error.code(), flowrun::StatusCode::kInvalidArgument) << r.error;
  EXPECT_NE(r.error.message().find("metadata.uid"), std::string::npos) << r.error;
  EXPECT_EQ(fc::Reconcile({json("x"), {}, {}, {}, w.now, w.config}).error.code(), flowrun::StatusCode::kInvalidArgument);
}

TEST(Malformed, InvalidSpecNeverStartsAJobAndSaysWhy) {
  World w;
  w.flowrun["spec"]["template"].erase("image");
  w.flowrun["spec"]["retry"]["maxAttempts"] = "three";
  w.flowrun["spec"]["parameters"] = json::array({1, 2});
  auto r = w.Step();
  EXPECT_EQ(Count<fc::CreateJob>(r), 0u) << r.Describe();
  std::string msg = w.status()["message"];
  EXPECT_NE(msg.find("spec.template.image: required"), std::string::npos) << msg;
  EXPECT_NE(msg.find("spec.retry.maxAttempts: must be an integer, got \"three\""), std::string::npos) << msg;
  EXPECT_NE(msg.find("spec.parameters: must be a JSON object"), std::string::npos) << msg;
  EXPECT_TRUE(HasEvent(r, "Warning", "InvalidSpec"));
  EXPECT_EQ(w.phase(), "Pending");
  auto built = fc::BuildJob(w.flowrun, 1, w.config);
  EXPECT_FALSE(built.ok());
  // Cancel still works.
  w.flowrun["spec"]["cancel"] = true;
  w.Step();
  EXPECT_EQ(w.phase(), "Cancelled");
}

TEST(Malformed, GarbageStatusIsRewritten) {
  World w;
  w.status() = {{"phase", 3}, {"attempts", "many"}, {"conditions", {1, 2}}, {"answers", {{"x", 1}}}};
  auto r = w.Step();
  ASSERT_NE(r.Find<fc::CreateJob>(), nullptr) << r.Describe();
  EXPECT_EQ(w.phase(), "Pending");
  EXPECT_EQ(w.status()["answers"]["x"], 1);
}

TEST(Malformed, ForeignJobsAndMalformedPodsAreIgnored) {
  World w = RunningWorld();
  w.jobs.push_back({{"metadata", {{"name", "something-else"}}}});
  w.pods.push_back("garbage");
  w.pods.push_back({{"metadata", 7}});
  auto r = w.Reconcile();
  EXPECT_TRUE(r.error.ok()) << r.error;
  EXPECT_TRUE(r.actions.empty()) << r.Describe();
}

// ---------------------------------------------------------------------------
// A whole run, checking idempotency at every step (World::Step does).

TEST(Lifecycle, FromCreationToDeletion) {
  World w;
  w.flowrun["metadata"].erase("finalizers");
  w.flowrun["spec"]["ttlSecondsAfterFinished"] = 3600;
  std::vector<std::string> phases;
  auto step = [&](int t) {
    w.now = At(t);
    w.Step();
    phases.push_back(w.phase());
  };
  step(0);  // finalizer, Job a1
  PodRunning(w.pod(1), 3);
  w.run = MakeRun("running", 1);
  step(3);
  w.Finish(1, "", 137, 20, "OOMKilled");
  step(20);  // backoff
  step(30);  // a2
  PodRunning(w.pod(2), 31);
  step(31);
  w.Finish(2, Message("waiting", 2), 0, 40);
  w.run->status = flowrun::RunStatus::kWaiting;
  w.run->open_wait = MakeWait("proceed");
  step(40);
  Answer(w, "proceed", true);
  step(50);  // a3
  PodRunning(w.pod(3), 51);
  w.run->status = flowrun::RunStatus::kRunning;
  step(51);
  w.Finish(3, Message("succeeded", 3), 0, 60);
  w.run->status = flowrun::RunStatus::kSucceeded;
  step(60);
  step(3660);  // TTL: DeleteFlowRun
  step(3661);  // finalizer
  EXPECT_EQ(phases, (std::vector<std::string>{"Pending", "Running", "Pending", "Pending", "Running", "Waiting",
                                              "Resuming", "Running", "Succeeded", "Succeeded", "Succeeded"}));
  EXPECT_TRUE(w.flowrun_deleted);
  EXPECT_FALSE(w.run.has_value()) << "rows deleted with the FlowRun";
  ASSERT_EQ(w.status()["attempts"].size(), 3u);
  EXPECT_EQ(w.status()["attempts"][0]["outcome"], "oom_killed");
  EXPECT_EQ(w.status()["attempts"][1]["outcome"], "waiting");
  EXPECT_EQ(w.status()["attempts"][2]["outcome"], "succeeded");
}

TEST(Status, LastTransitionTimeChangesOnlyWhenTheStatusFlips) {
  World w = RunningWorld();
  std::string t0 = (*w.condition("Completed"))["lastTransitionTime"];
  w.now = At(100);
  w.Finish(1, Message("waiting", 1), 0, 100);
  w.Step();  // Running -> Waiting: Completed stays False
  EXPECT_EQ((*w.condition("Completed"))["lastTransitionTime"], t0);
  EXPECT_EQ((*w.condition("Completed"))["reason"], "WaitingForAnswer");
}

TEST(Status, PatchTouchesOnlyChangedOwnedFields) {
  World w = RunningWorld();
  w.status()["somebodyElses"] = "keep";
  w.flowrun["spec"]["budgetUSD"] = 3.0;  // only the database changes
  w.run->budget_usd = 3.0;
  EXPECT_TRUE(w.Reconcile().actions.empty()) << w.Reconcile().Describe();
  w.run->spent.cost_usd = 0.5;
  auto r = w.Reconcile();
  ASSERT_EQ(r.actions.size(), 1u) << r.Describe();
  // usd and its display (the COST column) change together.
  EXPECT_EQ(r.Find<fc::PatchStatus>()->patch, json({{"status", {{"cost", {{"usd", 0.5}, {"display", "$0.50"}}}}}}));
}

// status.cost.display is what `kubectl get flowruns` shows; usd stays exact.
TEST(Status, CostDisplayIsShortAndUsdExact) {
  EXPECT_EQ(fc::FormatUsdForDisplay(1.9050000000000002e-05), "$0.000019");
  EXPECT_EQ(fc::FormatUsdForDisplay(0.0123), "$0.012");
  EXPECT_EQ(fc::FormatUsdForDisplay(0.12), "$0.12");
  EXPECT_EQ(fc::FormatUsdForDisplay(0.5), "$0.50");
  EXPECT_EQ(fc::FormatUsdForDisplay(0.999), "$1.00");
  EXPECT_EQ(fc::FormatUsdForDisplay(12.345), "$12.35");
  EXPECT_EQ(fc::FormatUsdForDisplay(999999999999.99), "$999999999999.99");
  EXPECT_EQ(fc::FormatUsdForDisplay(4611686018427387904.0), "$4.61e+18");
  EXPECT_EQ(fc::FormatUsdForDisplay(0), "$0");
  EXPECT_EQ(fc::FormatUsdForDisplay(1e-9), "<$0.000001");
  EXPECT_EQ(fc::FormatUsdForDisplay(-1), "");
  EXPECT_EQ(fc::FormatUsdForDisplay(std::nan("")), "");
  for (double v : {1e-7, 1e-6, 3.3e-6, 0.0999, 0.1, 1.0, 99.999, 1e11, 9.99e11, 1e12, 1e300})
    EXPECT_LE(fc::FormatUsdForDisplay(v).size(), 16u) << v;  // the CRD's maxLength

  World w = RunningWorld();
  w.run->spent.cost_usd = 1.9050000000000002e-05;
  w.Step();
  EXPECT_EQ(w.status()["cost"]["usd"], 1.9050000000000002e-05);
  EXPECT_EQ(w.status()["cost"]["display"], "$0.000019");
  // Derived every time: a stale or foreign display is rewritten, a steady one patches nothing.
  w.status()["cost"]["display"] = "$999";
  auto r = w.Reconcile();
  ASSERT_NE(r.Find<fc::PatchStatus>(), nullptr) << r.Describe();
  EXPECT_EQ(r.Find<fc::PatchStatus>()->patch, json({{"status", {{"cost", {{"display", "$0.000019"}}}}}}));
  w.status()["cost"]["display"] = "$0.000019";
  EXPECT_TRUE(w.Reconcile().actions.empty()) << w.Reconcile().Describe();
  // No usd (a status from elsewhere): no display.
  fc::FlowRunStatus st;
  st.cost = {{"llmCalls", 1}, {"display", "$5"}};
  EXPECT_FALSE(st.ToJson()["cost"].contains("display"));
}

TEST(Status, LongQuestionAndMessagesAreCut) {
  World w = RunningWorld();
  w.now = At(100);
  w.Finish(1, Message("waiting", 1, [](auto& o) { o.wait->question = std::string(3000, 'q'); }), 0, 100);
  w.Step();
  EXPECT_LE(w.status()["wait"]["question"].get<std::string>().size(), 2048u);
  EXPECT_LE(w.status()["message"].get<std::string>().size(), 1024u);
  for (const auto& c : w.status()["conditions"]) EXPECT_LE(c["message"].get<std::string>().size(), 512u);
  World v = RunningWorld();
  v.now = At(50);
  v.Finish(1, std::string(4000, 'e'), 1, 50);
  v.Step();
  EXPECT_LE((*v.attempt_record(1))["message"].get<std::string>().size(), 256u);
}

// ---------------------------------------------------------------------------
// BuildJob

std::map<std::string, json> EnvByName(const json& job) {
  std::map<std::string, json> m;
  for (const auto& e : job["spec"]["template"]["spec"]["containers"][0]["env"]) m[e["name"]] = e;
  return m;
}

TEST(BuildJob, EnvironmentContract) {
  World w;
  w.flowrun["spec"]["budgetUSD"] = 1.5;
  w.flowrun["spec"]["waitTimeoutSeconds"] = 86400;
  w.flowrun["spec"]["onWaitTimeout"] = "default";
  w.flowrun["spec"]["database"] = {{"secretRef", {{"name", "flowrun-db"}}}};
  w.flowrun["spec"]["template"]["env"] = {{{"name", "FLOWRUN_LLM_MODEL"}, {"value", "gpt-4o-mini"}},
                                          {{"name", "FLOWRUN_ATTEMPT"}, {"value", "99"}}};
  w.config.price_table_path = "/etc/flowrun/prices.yaml";
  w.config.openai_base_url_secret = fc::SecretKeyRef{"llm", "base-url"};
  auto job = fc::BuildJob(w.flowrun, 2, w.config);
  ASSERT_TRUE(job.ok()) << job.status();
  auto env = EnvByName(*job);
  auto literal = [&](const std::string& n) { return env.at(n).at("value").get<std::string>(); };
  EXPECT_EQ(literal("FLOWRUN_RUN_UID"), kUid);
  EXPECT_EQ(literal("FLOWRUN_RUN_NAME"), "research-1");
  EXPECT_EQ(literal("FLOWRUN_RUN_NAMESPACE"), "team-a");
  EXPECT_EQ(literal("FLOWRUN_FLOW"), "research");
  EXPECT_EQ(literal("FLOWRUN_ATTEMPT"), "2") << "the template cannot override the contract";
  EXPECT_EQ(literal("FLOWRUN_PARAMETERS"), R"({"topic":"durable execution"})");
  EXPECT_EQ(literal("FLOWRUN_BUDGET_USD"), "1.5");
  EXPECT_EQ(literal("FLOWRUN_WAIT_TIMEOUT_SECONDS"), "86400");
  EXPECT_EQ(literal("FLOWRUN_WAIT_ON_TIMEOUT"), "default");
  EXPECT_EQ(literal("FLOWRUN_TERMINATION_MESSAGE_PATH"), "/dev/termination-log");
  EXPECT_EQ(literal("FLOWRUN_PRICE_TABLE"), "/etc/flowrun/prices.yaml");
  EXPECT_EQ(literal("FLOWRUN_LLM_MODEL"), "gpt-4o-mini");
  const json& db = env.at("FLOWRUN_DATABASE_URL");
  EXPECT_FALSE(db.contains("value")) << "never a literal secret";
  EXPECT_EQ(db["valueFrom"]["secretKeyRef"], json({{"name", "flowrun-db"}, {"key", "url"}}));
  EXPECT_EQ(env.at("OPENAI_BASE_URL")["valueFrom"]["secretKeyRef"]["name"], "llm");
  size_t attempts = 0;
  for (const auto& e : (*job)["spec"]["template"]["spec"]["containers"][0]["env"])
    attempts += e["name"] == "FLOWRUN_ATTEMPT";
  EXPECT_EQ(attempts, 1u);
  // The runtime reads what the controller writes.
  std::map<std::string, std::string> vars;
  for (const auto& [k, v] : env)
    if (v.contains("value")) vars[k] = v["value"];
  vars["FLOWRUN_DATABASE_URL"] = "host=db";
  auto parsed = flowrun::ReadRunEnvironment([&](const std::string& k) -> std::optional<std::string> {
    auto it = vars.find(k);
    return it == vars.end() ? std::nullopt : std::optional<std::string>(it->second);
  });
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->run.uid, kUid);
  EXPECT_EQ(parsed->attempt, 2);
  EXPECT_EQ(parsed->initial_budget_usd, 1.5);
  EXPECT_EQ(parsed->parameters["topic"], "durable execution");
  EXPECT_EQ(parsed->default_on_timeout, flowrun::OnTimeout::kUseDefault);
}

TEST(BuildJob, DefaultsFromTheControllerConfig) {
  World w;
  auto job = fc::BuildJob(w.flowrun, 1, w.config);
  ASSERT_TRUE(job.ok());
  auto env = EnvByName(*job);
  EXPECT_EQ(env.at("FLOWRUN_DATABASE_URL")["valueFrom"]["secretKeyRef"],
            json({{"name", "flowrun-database"}, {"key", "url"}}));
  EXPECT_EQ(env.count("FLOWRUN_BUDGET_USD"), 0u);
  EXPECT_EQ(env.count("FLOWRUN_WAIT_TIMEOUT_SECONDS"), 0u);
  EXPECT_EQ(env.at("FLOWRUN_WAIT_ON_TIMEOUT")["value"], "fail");
  EXPECT_EQ((*job)["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"], "IfNotPresent");
  w.config.default_wait_timeout_seconds = 600;
  EXPECT_EQ(EnvByName(*fc::BuildJob(w.flowrun, 1, w.config)).at("FLOWRUN_WAIT_TIMEOUT_SECONDS")["value"], "600");
}

TEST(BuildJob, JobShapeLabelsAndOwner) {
  World w;
  w.flowrun["spec"]["attemptDeadlineSeconds"] = 1800;
  w.flowrun["spec"]["template"]["command"] = {"/usr/local/bin/research-agent"};
  w.flowrun["spec"]["template"]["resources"] = {{"limits", {{"memory", "512Mi"}}}};
  w.flowrun["spec"]["template"]["nodeSelector"] = {{"pool", "agents"}};
  w.flowrun["spec"]["template"]["imagePullSecrets"] = {{{"name", "regcred"}}};
  json job = *fc::BuildJob(w.flowrun, 3, w.config);
  EXPECT_EQ(job["metadata"]["name"], "research-1-a3");
  EXPECT_EQ(job["metadata"]["namespace"], "team-a");
  json labels = {{"flowrun.dev/run", "research-1"},
                 {"flowrun.dev/run-uid", kUid},
                 {"flowrun.dev/attempt", "3"},
                 {"flowrun.dev/flow", "research"},
                 {"app.kubernetes.io/managed-by", "flowrun-controller"}};
  EXPECT_EQ(job["metadata"]["labels"], labels);
  EXPECT_EQ(job["spec"]["template"]["metadata"]["labels"], labels);
  const json& owner = job["metadata"]["ownerReferences"][0];
  EXPECT_EQ(owner, json({{"apiVersion", "flowrun.dev/v1alpha1"}, {"kind", "FlowRun"}, {"name", "research-1"},
                         {"uid", kUid}, {"controller", true}, {"blockOwnerDeletion", true}}));
  EXPECT_EQ(job["spec"]["backoffLimit"], 0);
  EXPECT_EQ(job["spec"]["podReplacementPolicy"], "Failed");
  EXPECT_EQ(job["spec"]["activeDeadlineSeconds"], 1800);
  const json& pod = job["spec"]["template"]["spec"];
  EXPECT_EQ(pod["restartPolicy"], "Never");
  EXPECT_EQ(pod["nodeSelector"]["pool"], "agents");
  EXPECT_EQ(pod["imagePullSecrets"][0]["name"], "regcred");
  const json& c = pod["containers"][0];
  EXPECT_EQ(c["name"], "agent");
  EXPECT_EQ(c["image"], "flowrun/research-agent:0.1.0");
  EXPECT_EQ(c["command"][0], "/usr/local/bin/research-agent");
  EXPECT_EQ(c["resources"]["limits"]["memory"], "512Mi");
  EXPECT_EQ(c["terminationMessagePath"], "/dev/termination-log");
  EXPECT_EQ(c["terminationMessagePolicy"], "FallbackToLogsOnError");
  // Deterministic.
  EXPECT_EQ(job, *fc::BuildJob(w.flowrun, 3, w.config));
}

// Pod Security Standards "restricted" (v1.30): the checks that apply to a pod
// without volumes other than configMap, host namespaces, ports or probes.
void ExpectRestricted(const json& pod) {
  for (const char* host : {"hostNetwork", "hostPID", "hostIPC"}) EXPECT_FALSE(pod.value(host, false)) << host;
  const json& psc = pod.value("securityContext", json::object());
  for (const auto& c : pod["containers"]) {
    const json& sc = c.at("securityContext");
    EXPECT_EQ(sc.at("allowPrivilegeEscalation"), false);
    EXPECT_FALSE(sc.value("privileged", false));
    EXPECT_EQ(sc.at("capabilities").at("drop"), json::array({"ALL"}));
    EXPECT_FALSE(sc.at("capabilities").contains("add"));
    bool non_root = sc.value("runAsNonRoot", psc.value("runAsNonRoot", false));
    EXPECT_TRUE(non_root);
    EXPECT_NE(sc.value("runAsUser", psc.value("runAsUser", 1)), 0);
    std::string seccomp = sc.contains("seccompProfile") ? sc["seccompProfile"]["type"].get<std::string>()
                                                        : psc.value("seccompProfile", json::object()).value("type", "");
    EXPECT_TRUE(seccomp == "RuntimeDefault" || seccomp == "Localhost") << seccomp;
  }
  if (pod.contains("volumes"))
    for (const auto& v : pod["volumes"]) EXPECT_TRUE(v.contains("configMap")) << v;
}

TEST(BuildJob, PassesPodSecurityRestricted) {
  World w;
  json job = *fc::BuildJob(w.flowrun, 1, w.config);
  const json& pod = job["spec"]["template"]["spec"];
  ExpectRestricted(pod);
  EXPECT_EQ(pod["automountServiceAccountToken"], false);
  EXPECT_FALSE(pod.contains("serviceAccountName"));
  EXPECT_EQ(pod["enableServiceLinks"], false);

  w.flowrun["spec"]["template"]["serviceAccountName"] = "agent-sa";
  w.config.run_as_user = 65532;
  w.config.price_table_path = "/etc/flowrun/prices.yaml";
  w.config.price_table_config_map = "flowrun-prices";
  json job2 = *fc::BuildJob(w.flowrun, 1, w.config);
  const json& pod2 = job2["spec"]["template"]["spec"];
  ExpectRestricted(pod2);
  EXPECT_EQ(pod2["serviceAccountName"], "agent-sa");
  EXPECT_FALSE(pod2.contains("automountServiceAccountToken"));
  EXPECT_EQ(pod2["securityContext"]["runAsUser"], 65532);
  EXPECT_EQ(pod2["containers"][0]["volumeMounts"][0]["mountPath"], "/etc/flowrun");
  EXPECT_EQ(pod2["volumes"][0]["configMap"]["items"][0]["key"], "prices.yaml");
}

// ---------------------------------------------------------------------------
// Names

bool ValidLabelValue(const std::string& v) {
  if (v.empty()) return true;
  if (v.size() > 63 || !std::isalnum(static_cast<unsigned char>(v.front())) ||
      !std::isalnum(static_cast<unsigned char>(v.back())))
    return false;
  for (char c : v)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') return false;
  return true;
}

TEST(Names, JobNamesStayWithin63Characters) {
  EXPECT_EQ(fc::JobName("research-1", 1), "research-1-a1");
  std::string n58(58, 'r');
  EXPECT_EQ(fc::JobName(n58, 9), n58 + "-a9");  // exactly 61
  EXPECT_EQ(fc::JobName(std::string(60, 'r'), 1), std::string(60, 'r') + "-a1");  // exactly 63
  for (size_t len : {61u, 62u, 63u, 64u, 100u, 253u}) {
    for (int attempt : {1, 9, 10, 100, 99999}) {
      std::string base = std::string(len - 1, 'b') + "x";
      std::string name = fc::JobName(base, attempt);
      EXPECT_LE(name.size(), 63u) << len << " " << attempt;
      EXPECT_TRUE(ValidLabelValue(name)) << name;
      EXPECT_EQ(name.substr(name.size() - std::to_string(attempt).size() - 2), "-a" + std::to_string(attempt));
      EXPECT_EQ(name, fc::JobName(base, attempt)) << "deterministic";
    }
  }
  // Long names that share a prefix get different Jobs.
  std::string a = std::string(80, 'p') + "-alpha", b = std::string(80, 'p') + "-beta";
  EXPECT_NE(fc::JobName(a, 1), fc::JobName(b, 1));
  // A cut at a '.' or '-' does not leave it dangling.
  std::string dotted = std::string(49, 'd') + ".-" + std::string(30, 'e');
  EXPECT_TRUE(ValidLabelValue(fc::JobName(dotted, 1))) << fc::JobName(dotted, 1);
}

TEST(Names, LongFlowRunNamesWork) {
  World w;
  std::string name(200, 'n');
  w.flowrun["metadata"]["name"] = name;
  json job = *fc::BuildJob(w.flowrun, 1, w.config);
  EXPECT_LE(job["metadata"]["name"].get<std::string>().size(), 63u);
  for (auto& [k, v] : job["metadata"]["labels"].items()) EXPECT_TRUE(ValidLabelValue(v)) << k << "=" << v;
  EXPECT_EQ(EnvByName(job).at("FLOWRUN_RUN_NAME")["value"], name);
}

TEST(Names, LabelValues) {
  EXPECT_EQ(fc::LabelValue("research"), "research");
  EXPECT_TRUE(ValidLabelValue(fc::LabelValue("-bad value!")));
  EXPECT_TRUE(ValidLabelValue(fc::LabelValue(std::string(100, 'x'))));
  EXPECT_TRUE(ValidLabelValue(fc::LabelValue("!!!")));
}

// ---------------------------------------------------------------------------
// Helpers

TEST(Helpers, TimeParsesKubernetesFormats) {
  EXPECT_EQ(fc::ParseTime("2026-11-26T10:00:00Z"), kT0);
  EXPECT_EQ(fc::ParseTime("2026-11-26T10:00:01.500Z"), kT0 + milliseconds(1500));
  EXPECT_EQ(fc::ParseTime("2026-11-26T12:00:00+02:00"), kT0);
  EXPECT_FALSE(fc::ParseTime("2026-11-26 garbage").has_value());
  EXPECT_FALSE(fc::ParseTime("").has_value());
  EXPECT_FALSE(fc::ParseTime("2026-11-26T10:00:00").has_value());
  EXPECT_EQ(fc::FormatTime(kT0 + milliseconds(1999)), "2026-11-26T10:00:01Z");
}

TEST(Helpers, MergePatchRoundTrip) {
  json from = {{"a", 1}, {"b", {{"c", 2}, {"d", 3}}}, {"e", {1, 2}}};
  json to = {{"a", 1}, {"b", {{"c", 5}}}, {"e", {1}}, {"f", "new"}};
  json patch = fc::MergePatchDiff(from, to);
  EXPECT_EQ(patch, json({{"b", {{"c", 5}, {"d", nullptr}}}, {"e", {1}}, {"f", "new"}}));
  json applied = from;
  fc::ApplyMergePatch(applied, patch);
  EXPECT_EQ(applied, to);
  EXPECT_TRUE(fc::MergePatchDiff(to, to).empty());
}

TEST(Helpers, TruncateKeepsUtf8Whole) {
  std::string s = "ab\xC3\xA9\xC3\xA9";  // "abéé"
  std::string t = fc::TruncateUtf8(s, 5);
  EXPECT_EQ(t, "ab...");
  EXPECT_EQ(fc::TruncateUtf8("short", 10), "short");
}

}  // namespace
