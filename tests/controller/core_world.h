// The World the reconcile core's tests observe: a FlowRun, its Jobs and Pods,
// the run's database state and the time, plus fake adapters that apply the
// core's actions (World::Step reconciles, applies, reconciles again and checks
// idempotence and the invariants). Shared by the core_*_test.cc files.
//
// Termination messages are made with the runtime's own encoder
// (flowrun::EncodeTerminationMessage), so the controller reads exactly what
// agents write.
#pragma once

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

namespace core_test {


const fc::TimePoint kT0 = *fc::ParseTime("2026-11-26T10:00:00Z");
inline fc::TimePoint At(int s) { return kT0 + seconds(s); }
inline std::string Ts(int s) { return fc::FormatTime(At(s)); }

constexpr char kName[] = "research-1";
constexpr char kUid[] = "6f1c2a7e-1b7d-4c55-9a1e-3f0c9d8b2a11";

inline json MakeFlowRun(const json& spec_patch = json::object()) {
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

inline std::string Job(int attempt) { return fc::JobName(kName, attempt); }

inline json MakeJob(int attempt, int created_at) {
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

inline void JobComplete(json& job, int at) {
  job["status"] = {{"succeeded", 1},
                   {"completionTime", Ts(at)},
                   {"conditions",
                    {{{"type", "SuccessCriteriaMet"}, {"status", "True"}, {"lastTransitionTime", Ts(at)}},
                     {{"type", "Complete"}, {"status", "True"}, {"lastTransitionTime", Ts(at)}}}}};
}

inline void JobFailed(json& job, const std::string& reason, const std::string& message, int at) {
  job["status"] = {{"failed", 1},
                   {"conditions",
                    {{{"type", "FailureTarget"}, {"status", "True"}, {"reason", reason}, {"message", message},
                      {"lastTransitionTime", Ts(at)}},
                     {{"type", "Failed"}, {"status", "True"}, {"reason", reason}, {"message", message},
                      {"lastTransitionTime", Ts(at)}}}}};
}

inline json MakePod(const json& job, int created_at, const std::string& suffix = "x7k2p") {
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

inline void PodWaiting(json& pod, const std::string& reason, const std::string& message = "") {
  pod["status"]["phase"] = "Pending";
  pod["status"]["containerStatuses"][0]["state"] = {{"waiting", {{"reason", reason}, {"message", message}}}};
}

inline void PodRunning(json& pod, int at) {
  pod["status"]["phase"] = "Running";
  pod["status"]["containerStatuses"][0]["state"] = {{"running", {{"startedAt", Ts(at)}}}};
}

inline void PodTerminated(json& pod, int exit_code, const std::string& reason, const std::string& message, int at) {
  pod["status"]["phase"] = exit_code == 0 ? "Succeeded" : "Failed";
  json t = {{"exitCode", exit_code}, {"reason", reason}, {"finishedAt", Ts(at)}};
  if (!message.empty()) t["message"] = message;
  pod["status"]["containerStatuses"][0]["state"] = {{"terminated", t}};
}

inline flowrun::OpenWait MakeWait(const std::string& name, int occurrence = 1, std::optional<int> deadline = {},
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
inline std::string Message(const std::string& outcome, int attempt,
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

inline flowrun::RunState MakeRun(const std::string& status, int attempt) {
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

inline bool Mutating(const fc::Action& a) { return !std::holds_alternative<fc::RequeueAfter>(a); }

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
  int prepares = 0;                              // PrepareReplay actions applied
  flowrun::ReplayInfo prepared;                   // what PrepareReplay stores

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
      if (std::holds_alternative<fc::RequeueAfter>(a)) {
        EXPECT_EQ(i, r.actions.size() - 1) << r.Describe();
      }
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
      } else if (auto* sl = std::get_if<fc::SetLabel>(&a)) {
        flowrun["metadata"]["labels"][sl->key] = sl->value;
      } else if (std::holds_alternative<fc::PrepareReplay>(a)) {
        ++prepares;
        if (!run) {  // the row PrepareReplay creates: nothing ran yet
          run = flowrun::RunState{};
          run->uid = kUid;
          run->name = kName;
        }
        run->replay = prepared;
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
    // And PrepareReplay: the store snapshots, the next reconcile shows what
    // it holds (status.replay); after that one, nothing changes.
    if (r.Find<fc::ExpireWait>() || r.Find<fc::DeleteFlowRun>()) return r;
    if (r.Find<fc::PrepareReplay>()) {
      fc::ReconcileResult shown = Reconcile();
      for (const auto& a : shown.actions)
        EXPECT_TRUE(!Mutating(a) || std::holds_alternative<fc::PatchStatus>(a))
            << "after PrepareReplay only the status may change:\n" << shown.Describe();
      Apply(shown);
    }
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
inline size_t Count(const fc::ReconcileResult& r) {
  return r.All<T>().size();
}

inline bool HasEvent(const fc::ReconcileResult& r, const std::string& type, const std::string& reason) {
  for (const auto* e : r.All<fc::Event>())
    if (e->type == type && e->reason == reason) return true;
  return false;
}

// Brings a world to "attempt 1 is running".
inline World RunningWorld() {
  World w;
  w.Step();  // CreateJob a1
  w.now = At(5);
  PodRunning(w.pod(1), 5);
  w.run = MakeRun("running", 1);
  w.Step();
  EXPECT_EQ(w.phase(), "Running");
  return w;
}

inline World WaitingWorld(std::optional<int> deadline = {}, flowrun::OnTimeout policy = flowrun::OnTimeout::kFail) {
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

inline void Answer(World& w, const std::string& key, const json& answer) {
  w.status()["answers"][key] = answer;
  w.flowrun["metadata"]["managedFields"] = {
      {{"manager", "kubectl-patch"}, {"operation", "Update"}, {"subresource", "status"},
       {"fieldsV1", {{"f:status", {{"f:answers", {{"f:" + key, json::object()}}}}}}}}};
}

}  // namespace core_test
