// The reconcile core (see reconcile.h and docs/reconcile.md).
#include "flowrun/controller/reconcile.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "attempt_outcome.h"
#include "cost_status.h"
#include "flowrun/controller/replay.h"
#include "flowrun/outcome.h"
#include "flowrun/schema_validator.h"
#include "waits.h"

namespace flowrun::controller {

using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;

namespace {

constexpr char kCondCompleted[] = "Completed";
constexpr char kCondSucceeded[] = "Succeeded";
constexpr char kCondAnswer[] = "AnswerAccepted";
// Annotations share 256 KiB per object; a bigger answer is not annotated.
constexpr size_t kMaxAnswerAnnotationBytes = 64 * 1024;

// The status fields the controller writes; everything else (status.answers,
// fields added by others) is never touched.
const std::vector<std::string>& OwnedStatusFields() {
  static const std::vector<std::string> k = {"phase",   "attempt", "currentJob", "attempts",   "wait",
                                             "checkpoints", "cost", "result", "message",   "conditions",
                                             "observedGeneration", "replay"};
  return k;
}


std::string Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

milliseconds Until(TimePoint from, TimePoint to) {
  auto d = std::chrono::duration_cast<milliseconds>(to - from);
  return d < milliseconds(0) ? milliseconds(0) : d;
}

class Reconciler {
 public:
  Reconciler(const ReconcileInput& in, FlowRunView fr) : in_(in), cfg_(in.config), fr_(std::move(fr)) {
    st_ = fr_.status;
    if (in.jobs.is_array())
      for (const auto& j : in.jobs) {
        JobView v = ParseJob(j);
        if (v.attempt > 0 && !v.meta.name.empty()) jobs_.push_back(std::move(v));
      }
    if (in.pods.is_array())
      for (const auto& p : in.pods) pods_.push_back(ParsePod(p));
  }

  ReconcileResult Run() {
    ReconcileResult out;
    if (fr_.meta.deletion_timestamp) {
      Deletion(out);
      return out;
    }
    if (!fr_.meta.HasFinalizer(kFinalizer)) out.actions.push_back(AddFinalizer{});
    // A replay names its source in a label (kubectl get -l flowrun.dev/replay-of=...).
    if (fr_.spec.replay && !fr_.spec.replay->run.empty() && !fr_.meta.labels.count(kLabelReplayOf))
      out.actions.push_back(SetLabel{kLabelReplayOf, LabelValue(fr_.spec.replay->run)});
    CheckRecordedAnswers();  // first: a wait's own verdict below (accepted, invalid) replaces it
    if (IsTerminalPhase(st_.phase)) Terminal();
    else if (fr_.spec.cancel) Cancel();
    else Lifecycle();
    FinishStatus();
    if (IsTerminalPhase(st_.phase)) Ttl();

    for (auto& a : effects_) out.actions.push_back(std::move(a));
    json patch = json::object();
    json desired = st_.ToJson();
    json current = fr_.raw.contains("status") && fr_.raw["status"].is_object() ? fr_.raw["status"] : json::object();
    for (const auto& key : OwnedStatusFields()) {
      bool has_from = current.contains(key), has_to = desired.contains(key);
      if (!has_from && !has_to) continue;
      if (!has_to) {
        patch[key] = nullptr;
        continue;
      }
      if (!has_from) {
        patch[key] = desired[key];
        continue;
      }
      if (current[key] == desired[key]) continue;
      if (current[key].is_object() && desired[key].is_object()) patch[key] = MergePatchDiff(current[key], desired[key]);
      else patch[key] = desired[key];
    }
    if (!patch.empty()) out.actions.push_back(PatchStatus{{{"status", patch}}});
    for (auto& e : events_) out.actions.push_back(std::move(e));
    if (delete_flowrun_) out.actions.push_back(DeleteFlowRun{});
    if (requeue_ && !delete_flowrun_) out.actions.push_back(RequeueAfter{*requeue_});
    return out;
  }

 private:
  // ---- helpers -------------------------------------------------------------
  void Requeue(milliseconds d) {
    if (d < milliseconds(0)) d = milliseconds(0);
    if (!requeue_ || d < *requeue_) requeue_ = d;
  }
  void Emit(const std::string& type, const std::string& reason, const std::string& message) {
    events_.push_back(Event{type, reason, TruncateUtf8(message, cfg_.max_message_bytes)});
  }
  std::string Cut(const std::string& s) const { return TruncateUtf8(s, cfg_.max_message_bytes); }

  const JobView* FindJob(int attempt) const {
    const JobView* best = nullptr;
    for (const auto& j : jobs_)
      if (j.attempt == attempt && (!best || j.meta.name == JobName(fr_.meta.name, attempt))) best = &j;
    return best;
  }

  std::vector<const PodView*> PodsOf(const JobView& job) const {
    std::vector<const PodView*> out;
    for (const auto& p : pods_) {
      bool match = (!job.meta.uid.empty() && p.job_uid == job.meta.uid) ||
                   (!p.job_name.empty() && p.job_name == job.meta.name);
      if (!match && p.job_name.empty() && p.job_uid.empty()) {
        auto it = p.meta.labels.find(kLabelAttempt);
        match = it != p.meta.labels.end() && it->second == std::to_string(job.attempt);
      }
      if (match) out.push_back(&p);
    }
    // Newest first.
    std::sort(out.begin(), out.end(), [](const PodView* a, const PodView* b) {
      return a->meta.creation_timestamp.value_or(TimePoint{}) > b->meta.creation_timestamp.value_or(TimePoint{});
    });
    return out;
  }

  // The phase while attempt n's pod has not started: Resuming after a wait or
  // a budget stop, Pending for a first attempt or a retry.
  std::string StartingPhase(int n) const {
    for (const auto& a : st_.attempts)
      if (a.attempt == n - 1) return a.outcome == "waiting" || a.outcome == "budget_exceeded" ? kResuming : kPending;
    return kPending;
  }

  // The newest attempt anyone knows of. The database counts too: right after
  // this controller created a Job and patched the status, both caches can lag
  // behind an agent that already started (seen under load: a reconcile 0.1 s
  // later saw neither, but the database's attempt 1, and created attempt 2
  // beside the running attempt 1, fencing it and repeating its in-flight
  // call). An attempt only the database knows is observed like a Job the
  // informer has not shown yet (Observe).
  int CurrentAttempt() const {
    int n = st_.attempt;
    for (const auto& j : jobs_) n = std::max(n, j.attempt);
    if (in_.run) n = std::max(n, in_.run->attempt);
    return n;
  }
  int NextAttempt() const { return CurrentAttempt() + 1; }

  // When the database saw attempt n start (its newest execution), if it did.
  std::optional<TimePoint> DatabaseStart(int n) const {
    std::optional<TimePoint> start;
    const flowrun::AttemptRecord* best = nullptr;
    if (in_.run)
      for (const auto& a : in_.run->attempts)
        if (a.attempt == n && (!best || a.epoch > best->epoch)) best = &a;
    if (best) start = best->started_at;
    return start;
  }

  size_t RecordIndex(int attempt) {
    for (size_t i = 0; i < st_.attempts.size(); ++i)
      if (st_.attempts[i].attempt == attempt) return i;
    AttemptStatus rec;
    rec.attempt = attempt;
    const JobView* job = FindJob(attempt);
    rec.job = job ? job->meta.name : JobName(fr_.meta.name, attempt);
    // Without a Job in the cache, the database's start of the attempt (an
    // attempt only it knows of), else now (a Job about to be created).
    std::optional<TimePoint> db_start = job ? std::nullopt : DatabaseStart(attempt);
    rec.start_time = FormatTime(job && job->meta.creation_timestamp ? *job->meta.creation_timestamp
                                : db_start                          ? *db_start
                                                                    : in_.now);
    rec.outcome = "running";
    st_.attempts.push_back(rec);
    std::sort(st_.attempts.begin(), st_.attempts.end(),
              [](const AttemptStatus& a, const AttemptStatus& b) { return a.attempt < b.attempt; });
    return RecordIndex(attempt);
  }

  // Moves to `phase`. Events mark transitions only, so re-reconciling the
  // same state emits nothing.
  void Transition(const std::string& phase, const std::string& reason, const std::string& message,
                  const std::string& event_type = "", const std::string& event_reason = "") {
    if (st_.phase != phase && !event_type.empty()) Emit(event_type, event_reason.empty() ? reason : event_reason, message);
    st_.phase = phase;
    phase_reason_ = reason;
    st_.message = Cut(message);
    if (phase != kWaiting) st_.wait.reset();
  }

  // Sets AnswerAccepted; a Warning/Normal event when it changes.
  void SetAnswerCondition(const std::string& status, const std::string& reason, const std::string& message) {
    const Condition* c = st_.FindCondition(kCondAnswer);
    bool changed = !c || c->status != status || c->reason != reason ||
                   c->message != TruncateUtf8(message, cfg_.max_condition_message_bytes);
    SetCondition(kCondAnswer, status, reason, message);
    if (changed) Emit(status == "True" ? "Normal" : "Warning", reason, message);
  }

  void SetCondition(const std::string& type, const std::string& status, const std::string& reason,
                    const std::string& message) {
    for (auto& c : st_.conditions) {
      if (c.type != type) continue;
      if (c.status != status) c.last_transition_time = FormatTime(in_.now);
      c.status = status;
      c.reason = reason;
      c.message = TruncateUtf8(message, cfg_.max_condition_message_bytes);
      c.observed_generation = fr_.meta.generation;
      return;
    }
    st_.conditions.push_back({type, status, reason, TruncateUtf8(message, cfg_.max_condition_message_bytes),
                              FormatTime(in_.now), fr_.meta.generation});
  }

  std::string SpecErrors() const {
    std::string all;
    for (const auto& e : fr_.spec_errors) all += (all.empty() ? "" : "; ") + e;
    return all;
  }

  // Refuses to start an attempt with a malformed spec: the run stays where it
  // is until the spec is fixed (a spec change triggers a new reconcile).
  void InvalidSpec() {
    std::string msg = Cut("invalid spec: " + SpecErrors());
    if (st_.message != msg) Emit("Warning", "InvalidSpec", msg);
    if (st_.phase.empty()) st_.phase = kPending;
    phase_reason_ = "InvalidSpec";
    st_.message = msg;
  }

  // ---- deletion, cancel, terminal --------------------------------------------
  void Deletion(ReconcileResult& out) {
    if (!fr_.meta.HasFinalizer(kFinalizer)) return;
    for (const auto& j : jobs_)
      if (!j.meta.deletion_timestamp) out.actions.push_back(DeleteJob{j.meta.name});
    if (cfg_.retention == Retention::kDelete) {
      out.actions.push_back(DeleteRunRows{});
    } else if (!IsTerminalPhase(st_.phase) && in_.run && !IsTerminal(in_.run->status)) {
      out.actions.push_back(CancelRun{"the FlowRun was deleted"});
    }
    out.actions.push_back(RemoveFinalizer{});
  }

  void Cancel() {
    effects_.push_back(CancelRun{"cancelled: spec.cancel is true"});
    for (const auto& j : jobs_)
      if (!j.Finished() && !j.meta.deletion_timestamp) effects_.push_back(DeleteJob{j.meta.name});
    int n = CurrentAttempt();
    if (n > 0) {
      AttemptStatus& rec = st_.attempts[RecordIndex(n)];
      if (!rec.concluded()) {
        rec.end_time = FormatTime(in_.now);
        rec.outcome = "cancelled";
        rec.reason = "Cancelled";
        rec.message = "cancelled by spec.cancel";
      }
      st_.current_job.clear();
    }
    Transition(kCancelled, "Cancelled", "cancelled by spec.cancel", "Normal");
  }

  void Terminal() {
    // Nothing may keep running for a finished run.
    for (const auto& j : jobs_) {
      if (j.Finished() || j.meta.deletion_timestamp) continue;
      auto pods = PodsOf(j);
      bool live = pods.empty() ? j.active > 0 : std::any_of(pods.begin(), pods.end(), [](const PodView* p) {
        return PodLive(*p) && !p->meta.deletion_timestamp;
      });
      if (live) effects_.push_back(DeleteJob{j.meta.name});
    }
  }

  void Ttl() {
    if (!fr_.spec.ttl_seconds_after_finished) return;
    const Condition* c = st_.FindCondition(kCondCompleted);
    TimePoint finished = in_.now;
    if (c && c->status == "True")
      if (auto t = ParseTime(c->last_transition_time)) finished = *t;
    TimePoint due = finished + seconds(*fr_.spec.ttl_seconds_after_finished);
    if (in_.now >= due) delete_flowrun_ = true;
    else Requeue(Until(in_.now, due));
  }

  // Answers are write-once: the first one recorded stands. The Jobs of
  // attempts resumed by an answer carry it (kAnnotationAnswer); an answer in
  // status.answers that differs from it (a later or concurrent patch) is not
  // applied and is reported, until status.answers agrees again.
  void CheckRecordedAnswers() {
    std::string conflicts;
    for (const auto& j : jobs_) {
      auto it = j.meta.annotations.find(kAnnotationAnswer);
      if (it == j.meta.annotations.end()) continue;
      json rec = json::parse(it->second, nullptr, false);
      if (!rec.is_object() || !rec.contains("wait") || !rec["wait"].is_string() || !rec.contains("answer")) continue;
      const std::string key = rec["wait"].get<std::string>();
      if (!fr_.answers.contains(key) || fr_.answers[key] == rec["answer"]) continue;
      conflicts += std::string(conflicts.empty() ? "" : "; ") + "'" + key + "' was answered " +
                   Shown(rec["answer"]) + " (used by attempt " + std::to_string(j.attempt) +
                   "), status.answers now has " + Shown(fr_.answers[key]);
    }
    const Condition* c = st_.FindCondition(kCondAnswer);
    if (!conflicts.empty())
      SetAnswerCondition("False", "AnswerAlreadyRecorded",
                         "answers are write-once and the first recorded answer stands: " + conflicts +
                             ", which is ignored");
    else if (c && c->reason == "AnswerAlreadyRecorded")
      SetAnswerCondition("True", "Accepted", "status.answers agrees with the recorded answers again");
  }

  // An answer for messages: its JSON, shortened.
  static std::string Shown(const json& answer) { return TruncateUtf8(Dump(answer), 120); }

  // ---- the lifecycle ---------------------------------------------------------
  void Lifecycle() {
    SyncBudget();
    int n = CurrentAttempt();
    if (n == 0) {
      StartAttempt(NextAttempt(), "Created", "");
      return;
    }
    // A Job of an older attempt that still runs is stale: stop it.
    for (const auto& j : jobs_)
      if (j.attempt < n && !j.Finished() && !j.meta.deletion_timestamp) {
        auto pods = PodsOf(j);
        if (pods.empty() || std::any_of(pods.begin(), pods.end(), [](const PodView* p) { return PodLive(*p); }))
          effects_.push_back(DeleteJob{j.meta.name});
      }
    ConcludeSuperseded(n);
    size_t idx = RecordIndex(n);
    st_.attempt = n;
    if (!st_.attempts[idx].concluded()) {
      st_.current_job = st_.attempts[idx].job;
      if (!Observe(n, idx)) return;
    }
    AfterOutcome(idx);
  }

  // An older attempt still "running" in the status while a newer one exists:
  // the reconcile that concluded it created the next attempt's Job, then its
  // status patch failed (a 409 on a stale copy) — the requeued reconcile sees
  // the newer Job and would never look at the older attempt again. Conclude
  // it now from what is still visible (its Job and pods, the database), else
  // as superseded; never leave it running.
  void ConcludeSuperseded(int current) {
    for (size_t i = 0; i < st_.attempts.size(); ++i) {
      const AttemptStatus& rec = st_.attempts[i];
      if (rec.attempt >= current || rec.concluded()) continue;
      std::optional<Conclusion> c;
      if (const JobView* job = FindJob(rec.attempt))
        c = ClassifyFinished(*job, PodsOf(*job), in_.run, fr_.spec.attempt_deadline_seconds, rec.attempt);
      if (!c)
        c = Observed("Superseded", "attempt " + std::to_string(rec.attempt) + " ended without a recorded outcome; attempt " +
                                       std::to_string(current) + " replaced it",
                     in_.now);
      Conclude(i, *c);
    }
  }

  void SyncBudget() {
    if (!in_.run || !fr_.spec_errors.empty()) return;
    if (in_.run->budget_usd != fr_.spec.budget_usd) effects_.push_back(SetBudget{fr_.spec.budget_usd});
  }

  // `answer`: {"wait", "answer"} when an answer resumes the run: put on the
  // Job (kAnnotationAnswer) so later reconciles know what was recorded.
  void StartAttempt(int n, const std::string& reason, const std::string& why, const json* answer = nullptr) {
    if (!fr_.spec_errors.empty()) {
      InvalidSpec();
      return;
    }
    std::string name = JobName(fr_.meta.name, n);
    bool create = !FindJob(n);
    // A replay is prepared (the source snapshotted, overrides and answers
    // recorded) before its first Job: the action comes first, so no Job is
    // created unless it succeeded, and the status patch after it records it.
    if (create && n == 1 && fr_.spec.replay && !(in_.run && in_.run->replay)) {
      effects_.push_back(PrepareReplay{});
      SetReplayCondition("True", kReasonPrepared, PreparedMessage(), "Normal", "ReplayPrepared");
    }
    if (create) {
      json job = BuildJob(fr_, n, cfg_);
      // An answer too big for an annotation is recorded all the same; only a
      // later change of it goes unreported.
      if (answer && Dump(*answer).size() <= kMaxAnswerAnnotationBytes)
        job["metadata"]["annotations"][kAnnotationAnswer] = Dump(*answer);
      effects_.push_back(CreateJob{name, n, std::move(job)});
    }
    st_.attempt = n;
    st_.current_job = name;
    size_t idx = RecordIndex(n);
    st_.attempts[idx].job = name;
    st_.attempts[idx].start_time = FormatTime(in_.now);
    if (create)
      Emit("Normal", reason,
           (why.empty() ? "" : why + "; ") + "created Job " + name + " for attempt " + std::to_string(n));
    // The same words as observing the Job before its pod runs, so the next
    // reconcile has nothing to change.
    Transition(StartingPhase(n), StartingPhase(n) == kPending ? "Starting" : "Resuming",
               "attempt " + std::to_string(n) + " (Job " + name + "): waiting for its pod");
  }

  // Observes the unconcluded attempt n. True when it concluded now.
  bool Observe(int n, size_t idx) {
    const JobView* job = FindJob(n);
    AttemptStatus& rec = st_.attempts[idx];
    if (!job) {
      auto start = ParseTime(rec.start_time);
      if (start && in_.now - *start < cfg_.job_missing_grace) {
        // Just created: the informer has not shown it yet.
        Requeue(Until(in_.now, *start + cfg_.job_missing_grace));
        if (st_.phase.empty()) st_.phase = StartingPhase(n);
        return false;
      }
      Conclude(idx, Observed("JobDeleted", "Job " + rec.job + " disappeared before its pod reported an outcome",
                             in_.now));
      return true;
    }
    auto pods = PodsOf(*job);
    if (auto c = ClassifyFinished(*job, pods, in_.run, fr_.spec.attempt_deadline_seconds, n)) {
      Conclude(idx, *c);
      return true;
    }
    if (job->meta.deletion_timestamp) {
      Conclude(idx, Observed("JobDeleted",
                             "Job " + job->meta.name + " was deleted while attempt " + std::to_string(n) + " ran",
                             in_.now));
      return true;
    }
    // Still active: fail fast on pods that cannot start.
    for (const PodView* p : pods) {
      if (p->meta.deletion_timestamp || !p->agent) continue;
      const std::string& why = p->agent->waiting_reason;
      static const std::set<std::string> kGraced = {"ImagePullBackOff", "ErrImagePull", "CreateContainerConfigError",
                                                    "CreateContainerError", "ErrImageNeverPull"};
      bool immediate = why == "InvalidImageName";
      if (!immediate && !kGraced.count(why)) continue;
      TimePoint since = p->meta.creation_timestamp.value_or(job->meta.creation_timestamp.value_or(in_.now));
      TimePoint due = immediate ? since : since + cfg_.pod_start_grace;
      if (in_.now >= due) {
        effects_.push_back(DeleteJob{job->meta.name});
        Conclude(idx, Observed(why, p->agent->waiting_message.empty() ? why : p->agent->waiting_message, in_.now));
        return true;
      }
      Requeue(Until(in_.now, due));
    }
    bool running = std::any_of(pods.begin(), pods.end(), [](const PodView* p) {
      return p->agent && p->agent->running && !p->meta.deletion_timestamp;
    });
    if (running) {
      Transition(kRunning, "Running", "attempt " + std::to_string(n) + " is running (Job " + job->meta.name + ")");
    } else {
      std::string detail = "waiting for its pod";
      for (const PodView* p : pods) {
        if (!p->unschedulable_message.empty()) detail = "pod unschedulable: " + p->unschedulable_message;
        else if (p->agent && !p->agent->waiting_reason.empty())
          detail = "pod waiting: " + p->agent->waiting_reason +
                   (p->agent->waiting_message.empty() ? "" : ": " + p->agent->waiting_message);
        break;
      }
      Transition(StartingPhase(n), StartingPhase(n) == kPending ? "Starting" : "Resuming",
                 "attempt " + std::to_string(n) + " (Job " + job->meta.name + "): " + detail);
    }
    return false;
  }

  void Conclude(size_t idx, const Conclusion& c) {
    AttemptStatus& rec = st_.attempts[idx];
    rec.end_time = FormatTime(c.end.value_or(in_.now));
    rec.outcome = TruncateUtf8(c.outcome, 32);
    rec.reason = TruncateUtf8(c.reason, 128);
    rec.message = TruncateUtf8(c.message, cfg_.max_attempt_message_bytes);
    st_.current_job.clear();
    if (c.result) result_ = c.result;
    if (c.outcome == "waiting") {
      st_.wait.reset();
      if (c.wait) st_.wait = WaitStatusOf(*c.wait, cfg_);
      // The wait's key: how a later reconcile knows that answer was consumed.
      rec.message = st_.wait ? st_.wait->name : "";
    }
    bool failure = c.outcome != "succeeded" && c.outcome != "waiting" && c.outcome != "budget_exceeded";
    if (c.outcome == "terminated")
      Emit("Normal", "AttemptTerminated",
           "attempt " + std::to_string(rec.attempt) + " was stopped by SIGTERM (" + c.reason +
               "); the next attempt resumes from its checkpoints");
    else if (failure)
      Emit("Warning", "AttemptFailed",
           "attempt " + std::to_string(rec.attempt) + " failed (" + c.reason + ")" +
               (c.message.empty() ? "" : ": " + c.message));
  }

  void AfterOutcome(size_t idx) {
    const AttemptStatus rec = st_.attempts[idx];
    const std::string n = std::to_string(rec.attempt);
    if (rec.outcome == "succeeded") {
      Transition(kSucceeded, "Succeeded", "attempt " + n + " succeeded", "Normal");
    } else if (rec.outcome == "waiting") {
      Waiting(rec);
    } else if (rec.outcome == "budget_exceeded") {
      Budget(rec);
    } else if (rec.outcome == "cancelled") {
      Transition(kCancelled, "Cancelled", "the run was cancelled" + (rec.message.empty() ? "" : ": " + rec.message),
                 "Normal");
    } else if (Retryable(rec)) {
      Retry(idx);
    } else {
      Transition(kFailed, rec.reason, "attempt " + n + " failed (" + rec.reason + ")" +
                                          (rec.message.empty() ? "" : ": " + rec.message) + "; not retried",
                 "Warning", "Failed");
    }
  }

  void Retry(size_t idx) {
    const AttemptStatus& rec = st_.attempts[idx];
    // Consecutive failures; a terminated attempt (SIGTERM: its pod was
    // deleted) is no failure of the flow, neither counted nor breaking the run.
    int failures = 0;
    for (size_t i = idx + 1; i-- > 0;) {
      if (!st_.attempts[i].concluded() || !Retryable(st_.attempts[i])) break;
      if (!CountsAsFailure(st_.attempts[i])) continue;
      ++failures;
    }
    std::string what = "attempt " + std::to_string(rec.attempt) +
                       (CountsAsFailure(rec) ? " failed (" : " was terminated (") + rec.reason + ")" +
                       (rec.message.empty() ? "" : ": " + rec.message);
    if (!CountsAsFailure(rec)) {  // resumed at once: no backoff after a termination
      StartAttempt(NextAttempt(), "Retrying", what);
      return;
    }
    if (failures >= fr_.spec.retry.max_attempts) {
      Transition(kFailed, rec.reason,
                 what + "; " + std::to_string(failures) + " consecutive attempts failed (retry.maxAttempts " +
                     std::to_string(fr_.spec.retry.max_attempts) + ")",
                 "Warning", "Failed");
      return;
    }
    int64_t delay = fr_.spec.retry.backoff_seconds;
    for (int i = 1; i < failures && delay < fr_.spec.retry.max_backoff_seconds; ++i) delay *= 2;
    delay = std::min(delay, fr_.spec.retry.max_backoff_seconds);
    TimePoint end = ParseTime(rec.end_time).value_or(in_.now);
    TimePoint due = end + seconds(delay);
    int next = NextAttempt();
    if (in_.now >= due) {
      StartAttempt(next, "Retrying", what);
      return;
    }
    Transition(kPending, "RetryBackoff", what + "; attempt " + std::to_string(next) + " starts at " + FormatTime(due));
    Requeue(Until(in_.now, due));
  }

  void Waiting(const AttemptStatus& rec) {
    const RunState* run = in_.run ? &*in_.run : nullptr;
    if (run && run->status == RunStatus::kFailed) {
      bool timed_out = run->failure_reason == FailureReason::kWaitTimedOut;
      Transition(kFailed, timed_out ? "WaitTimedOut" : "Failed", run->error.empty() ? "the run failed" : run->error,
                 "Warning", "Failed");
      return;
    }
    if (run && run->status == RunStatus::kCancelled) {
      Transition(kCancelled, "Cancelled", "the run was cancelled" + (run->error.empty() ? "" : ": " + run->error),
                 "Normal");
      return;
    }
    // Fill in what the termination message could not carry.
    if (run && run->open_wait) {
      const OpenWait& w = *run->open_wait;
      if (!st_.wait) {
        st_.wait = WaitStatusOf(w, cfg_);
      } else if (st_.wait->name == WaitKey(w)) {
        if (!st_.wait->schema && Dump(w.schema).size() <= cfg_.max_schema_bytes) st_.wait->schema = w.schema;
        if (st_.wait->deadline.empty() && w.deadline) st_.wait->deadline = FormatTime(*w.deadline);
      }
    }
    std::string n = std::to_string(rec.attempt);
    std::string key = st_.wait ? st_.wait->name : "";
    std::string asking = key.empty() ? "waiting for an answer"
                                     : "waiting for an answer to '" + key + "'" +
                                           (st_.wait->question.empty() ? "" : ": " + st_.wait->question);
    Transition(kWaiting, "WaitingForAnswer", asking, "Normal", "Waiting");

    // Answers of earlier waits (the keys earlier waiting attempts asked for) were consumed.
    auto consumed = [&](const std::string& k) {
      for (const auto& a : st_.attempts)
        if (a.attempt < rec.attempt && a.outcome == "waiting" && a.message == k) return true;
      return false;
    };
    bool answer_flagged = false;
    // The database already has the answer (recorded by an earlier reconcile
    // that failed before its status patch, by flowrunctl, or the deadline's
    // default): that one stands; status.answers is not recorded over it.
    const bool answered_in_db = run && run->status == RunStatus::kWaiting && !run->open_wait;
    if (!answered_in_db && !key.empty() && fr_.answers.contains(key) && !consumed(key)) {
      const json& answer = fr_.answers[key];
      json schema = json::object();
      if (st_.wait->schema) schema = *st_.wait->schema;
      else if (run && run->open_wait && WaitKey(*run->open_wait) == key) schema = run->open_wait->schema;
      Status valid = ValidateAgainstSchema(schema, answer);
      if (valid.ok()) {
        if (!fr_.spec_errors.empty()) {
          InvalidSpec();
          return;
        }
        std::string db_name = run && run->open_wait && WaitKey(*run->open_wait) == key ? run->open_wait->name
                                                                                     : DbWaitName(key);
        effects_.push_back(RecordAnswer{db_name, answer, AnsweredBy(fr_.meta.managed_fields, key)});
        SetAnswerCondition("True", "Accepted", "the answer to '" + key + "' was accepted: " + Shown(answer));
        const json recorded = {{"wait", key}, {"answer", answer}};
        StartAttempt(NextAttempt(), "Answered", "the answer to '" + key + "' was accepted", &recorded);
        return;
      }
      std::string why = "the answer to '" + key + "' does not match its schema: " + valid.message();
      SetAnswerCondition("False", "InvalidAnswer", why);
      st_.message = Cut(why + "; still waiting: patch a corrected answer");
      answer_flagged = true;
    }
    if (!answer_flagged && !answered_in_db) {
      std::vector<std::string> unknown;
      for (auto it = fr_.answers.begin(); it != fr_.answers.end(); ++it)
        if (it.key() != key && !consumed(it.key())) unknown.push_back(it.key());
      if (!unknown.empty()) {
        std::string list;
        for (const auto& u : unknown) list += (list.empty() ? "'" : ", '") + u + "'";
        SetAnswerCondition("False", "UnknownWait",
                           "status.answers has " + list + " but the open wait is " +
                               (key.empty() ? "unknown" : "'" + key + "'") +
                               "; kept for a later wait of that name");
      }
    }
    // Answered outside Kubernetes (flowrunctl), or the deadline's default
    // answer was recorded: the database has no open question any more.
    if (run && run->status == RunStatus::kWaiting && !run->open_wait) {
      bool expired = false;
      if (st_.wait && !st_.wait->deadline.empty())
        if (auto d = ParseTime(st_.wait->deadline)) expired = *d <= in_.now;
      StartAttempt(NextAttempt(), expired ? "WaitTimedOut" : "Answered",
                   expired ? "the wait '" + key + "' timed out and its default answer was used"
                           : "the wait '" + key + "' was answered in the database");
      return;
    }
    // Deadline: the database's (exact) when it has one, else the status'.
    std::optional<TimePoint> deadline;
    if (run && run->open_wait) deadline = run->open_wait->deadline;
    else if (st_.wait && !st_.wait->deadline.empty()) deadline = ParseTime(st_.wait->deadline);
    if (deadline) {
      if (*deadline <= in_.now) {
        effects_.push_back(ExpireWait{in_.now});
        st_.message = Cut("the wait '" + key + "' passed its deadline; applying its on-timeout policy (" +
                          (st_.wait && !st_.wait->on_timeout.empty() ? st_.wait->on_timeout : "fail") + ")");
        Requeue(seconds(1));
      } else {
        Requeue(Until(in_.now, *deadline));
      }
    }
  }

  void Budget(const AttemptStatus& rec) {
    const RunState* run = in_.run ? &*in_.run : nullptr;
    if (run && run->status == RunStatus::kCancelled) {
      Transition(kCancelled, "Cancelled", "the run was cancelled", "Normal");
      return;
    }
    double spent = run ? run->spent.cost_usd
                       : (st_.cost.is_object() && st_.cost.contains("usd") && st_.cost["usd"].is_number()
                              ? st_.cost["usd"].get<double>()
                              : 0.0);
    const auto& budget = fr_.spec.budget_usd;
    if (!budget || *budget > spent) {
      StartAttempt(NextAttempt(), "BudgetRaised",
                   budget ? "the budget is now " + FormatUsdInMessage(*budget) + " (spent " + FormatUsdInMessage(spent) + ")"
                          : "the budget was removed");
      return;
    }
    Transition(kBudgetExceeded, "BudgetExceeded",
               "attempt " + std::to_string(rec.attempt) + " stopped: the run spent " + FormatUsdInMessage(spent) + " of its " +
                   FormatUsdInMessage(*budget) + " budget; raise spec.budgetUSD to continue",
               "Warning");
  }

  // ---- replay --------------------------------------------------------------------
  std::string PreparedMessage() const {
    const ReplaySpec& r = *fr_.spec.replay;
    return "replays FlowRun " + r.run + " up to checkpoint '" + r.checkpoint + "'" +
           (r.occurrence > 1 ? " (occurrence " + std::to_string(r.occurrence) + ")" : "") +
           ": its completed checkpoints before the cut are reused, the rest runs live";
  }

  // Sets the Replay condition; an Event when it changes.
  void SetReplayCondition(const std::string& status, const std::string& reason, const std::string& message,
                          const std::string& event_type, const std::string& event_reason) {
    const Condition* c = st_.FindCondition(kCondReplay);
    bool changed = !c || c->status != status || c->reason != reason ||
                   c->message != TruncateUtf8(message, cfg_.max_condition_message_bytes);
    SetCondition(kCondReplay, status, reason, message);
    if (changed) Emit(event_type, event_reason, message);
  }

  // status.replay and the Replay condition from what the store holds.
  void ReplayStatus() {
    if (!fr_.spec.replay || !in_.run || !in_.run->replay) return;
    const ReplayInfo& info = *in_.run->replay;
    st_.replay = ReplayStatusOf(info, fr_.spec.replay->answers);
    if (IsTerminalPhase(st_.phase) && !info.cut_reached)
      SetReplayCondition("False", kReasonCutNotReached,
                         "the run ended without reaching the cut '" + info.cut.name + "'" +
                             (info.cut.occurrence > 1 ? " (occurrence " + std::to_string(info.cut.occurrence) + ")" : "") +
                             ": the new code never asked for that checkpoint, so nothing ran live from it",
                         "Warning", kReasonCutNotReached);
    else
      SetReplayCondition("True", kReasonPrepared, PreparedMessage(), "Normal", "ReplayPrepared");
  }

  // ---- status ------------------------------------------------------------------
  void FinishStatus() {
    // Totals from the database, once an execution has run (a row made by
    // SetBudget or CancelRun before any attempt holds nothing to show).
    if (in_.run && (in_.run->attempt > 0 || in_.run->spent.llm_calls > 0)) {
      const RunState& r = *in_.run;
      st_.cost = CostStatusOf(r);
      st_.checkpoints = {{"live", r.live_checkpoints},
                         {"cached", r.cached_checkpoints},
                         {"completed", r.checkpoints_completed}};
    }
    if (st_.phase == kSucceeded) {
      std::optional<json> value = in_.run && in_.run->result ? in_.run->result : result_;
      if (value) st_.result = TruncateUtf8(value->is_string() ? value->get<std::string>() : Dump(*value),
                                           cfg_.max_result_bytes);
    }
    if (st_.phase.empty()) st_.phase = kPending;
    st_.message = Cut(st_.message);
    ReplayStatus();

    // Completed / Succeeded follow the phase; their reason is the one this
    // reconcile set, else the one already recorded.
    bool terminal = IsTerminalPhase(st_.phase);
    std::string completed = terminal ? "True" : "False";
    std::string succeeded = st_.phase == kSucceeded ? "True" : terminal ? "False" : "Unknown";
    for (const auto& [type, status] : {std::pair<std::string, std::string>{kCondCompleted, completed},
                                       std::pair<std::string, std::string>{kCondSucceeded, succeeded}}) {
      const Condition* c = st_.FindCondition(type);
      std::string reason = phase_reason_;
      if (reason.empty()) reason = c && c->status == status && !c->reason.empty() ? c->reason : st_.phase;
      SetCondition(type, status, reason, st_.message);
    }
    // This pass decided: a ReconcileError the loop set after an earlier
    // failed pass (the core could not decide then) is over. Set False rather
    // than removed, so readers see when it ended; in this status patch, so
    // it never races the patch that carries the other conditions.
    if (const Condition* c = st_.FindCondition(kCondReconcileError); c && c->status != "False")
      SetCondition(kCondReconcileError, "False", kReasonReconciled, "the FlowRun is reconciled again");
    st_.observed_generation = fr_.meta.generation;
    if (st_.attempts.size() > cfg_.max_attempt_records)
      st_.attempts.erase(st_.attempts.begin(),
                         st_.attempts.begin() + static_cast<long>(st_.attempts.size() - cfg_.max_attempt_records));
  }

  const ReconcileInput& in_;
  const ControllerConfig& cfg_;
  FlowRunView fr_;
  FlowRunStatus st_;
  std::vector<JobView> jobs_;
  std::vector<PodView> pods_;
  std::vector<Action> effects_;
  std::vector<Event> events_;
  std::optional<milliseconds> requeue_;
  std::string phase_reason_;
  std::optional<json> result_;
  bool delete_flowrun_ = false;
};

}  // namespace

ReconcileResult Reconcile(const ReconcileInput& in) {
  auto fr = ParseFlowRun(in.flowrun);
  if (!fr.ok()) {
    ReconcileResult r;
    r.error = InvalidArgument(fr.status().message());
    return r;
  }
  try {
    return Reconciler(in, std::move(*fr)).Run();
  } catch (const std::exception& e) {  // a bug or a JSON shape the parsers let through
    ReconcileResult r;
    r.error = Internal(std::string("reconcile failed: ") + e.what());
    return r;
  }
}

std::string ReconcileResult::Describe() const {
  std::string s;
  if (!error.ok()) s += "error: " + error.ToString() + "\n";
  for (const auto& a : actions) s += controller::Describe(a) + "\n";
  return s;
}

}  // namespace flowrun::controller
