#include "attempt_outcome.h"

#include <map>
#include <set>

namespace flowrun::controller {

using nlohmann::json;

bool Retryable(const AttemptStatus& a) {
  static const std::set<std::string> kNot = {"running",      "succeeded",  "waiting",  "budget_exceeded",
                                             "config_error", "divergence", "cancelled"};
  return !kNot.count(a.outcome) && a.reason != "WaitTimedOut";
}

bool CountsAsFailure(const AttemptStatus& a) { return Retryable(a) && a.outcome != "terminated"; }

std::string ObservedOutcome(const std::string& reason) {
  static const std::map<std::string, std::string> k = {
      {"DeadlineExceeded", "deadline_exceeded"}, {"OOMKilled", "oom_killed"},
      {"Evicted", "evicted"},                     {"NodeLost", "node_lost"},
      {"Preempted", "preempted"},                 {"NodeShutdown", "node_shutdown"},
      {"Killed", "killed"},                       {"Terminated", "terminated"},
      {"ImagePullBackOff", "image_pull_failed"},  {"ErrImagePull", "image_pull_failed"},
      {"InvalidImageName", "image_pull_failed"},  {"ErrImageNeverPull", "image_pull_failed"},
      {"CreateContainerConfigError", "container_create_failed"},
      {"CreateContainerError", "container_create_failed"},
      {"PodDeleted", "pod_deleted"},              {"JobDeleted", "job_deleted"},
      {"NoOutcome", "no_outcome"},                {"Fenced", "fenced"},
      {"Superseded", "superseded"}};
  auto it = k.find(reason);
  if (it != k.end()) return it->second;
  return reason == "Error" || reason == "ContainerCannotRun" || reason == "StartError" ? "error" : "unknown";
}

Conclusion Observed(const std::string& reason, const std::string& message, std::optional<TimePoint> end) {
  return Conclusion{ObservedOutcome(reason), reason, message, end, {}, {}};
}

// How an attempt ended, from the agent's typed outcome: the one place both
// channels (termination message, database) are turned into a decision.
// nullopt for kFenced: a newer execution owns the run.
std::optional<Conclusion> FromOutcome(const Outcome& o, std::optional<TimePoint> end) {
  Conclusion c;
  c.end = end;
  c.outcome = std::string(OutcomeKindName(o.kind));
  c.message = o.error;
  switch (o.kind) {
    case OutcomeKind::kSucceeded:
      c.reason = "Succeeded";
      c.result = o.result;
      break;
    case OutcomeKind::kWaiting:
      c.reason = "WaitingForAnswer";
      c.wait = o.wait;
      break;
    case OutcomeKind::kBudgetExceeded:
      c.reason = "BudgetExceeded";
      c.message = "the run spent " + FormatUsdInMessage(o.run_spent_usd) +
                  (o.budget_usd ? " of its " + FormatUsdInMessage(*o.budget_usd) + " budget" : " and reached its budget");
      break;
    case OutcomeKind::kConfigError: c.reason = "ConfigError"; break;
    case OutcomeKind::kDivergence: c.reason = "Divergence"; break;
    case OutcomeKind::kDatabaseUnavailable: c.reason = "DatabaseUnavailable"; break;
    case OutcomeKind::kCancelled: c.reason = "Cancelled"; break;
    case OutcomeKind::kFenced: return std::nullopt;
    case OutcomeKind::kTerminated: c.reason = "Terminated"; break;
    case OutcomeKind::kFailed:
      c.reason = o.reason == FailureReason::kWaitTimedOut ? "WaitTimedOut" : "FlowFailed";
      break;
  }
  return c;
}

// What the database recorded for attempt n (the termination message was
// lost or unreadable).
std::optional<Conclusion> FromRunState(const std::optional<RunState>& run, int n) {
  if (!run) return std::nullopt;
  const AttemptRecord* best = nullptr;
  for (const auto& a : run->attempts)
    if (a.attempt == n && a.finished_at && (!best || a.epoch > best->epoch)) best = &a;
  if (!best) return std::nullopt;
  auto o = OutcomeFromRunState(*run, *best);
  if (!o) return std::nullopt;
  auto c = FromOutcome(*o, best->finished_at);
  if (c && c->message.empty()) c->message = "outcome read from the database (the pod reported none)";
  return c;
}

bool PodLive(const PodView& p) {
  if (p.phase == "Succeeded" || p.phase == "Failed") return false;
  return !(p.agent && p.agent->terminated);
}

// Classifies a finished Job (or one whose pod terminated while the Job's
// status lags). nullopt: still active.
std::optional<Conclusion> ClassifyFinished(const JobView& job, const std::vector<const PodView*>& pods,
                                           const std::optional<RunState>& run,
                                           std::optional<int64_t> attempt_deadline_seconds, int n) {
  bool any_terminated = false, any_live = false;
  for (const PodView* p : pods) {
    if (PodLive(*p)) any_live = true;
    else any_terminated = true;
  }
  if (!job.Finished() && (!any_terminated || any_live)) return std::nullopt;

  const JobCondition* failed = job.TrueCondition("Failed");
  if (!failed) failed = job.TrueCondition("FailureTarget");
  std::optional<TimePoint> job_end = job.completion_time;
  if (!job_end && failed) job_end = failed->last_transition_time;

  // 1. The agent's own outcome (termination message), newest pod first.
  std::optional<Conclusion> decoded;
  bool fenced = false;
  for (const PodView* p : pods) {
    if (!p->agent || !p->agent->terminated || p->agent->terminated_message.empty()) continue;
    std::optional<TimePoint> end = p->agent->finished_at ? p->agent->finished_at : job_end;
    auto o = DecodeTerminationMessage(p->agent->terminated_message);
    if (!o.ok()) {
      if (o.status().code() != StatusCode::kUnimplemented) continue;  // not an outcome: Kubernetes' view below
      decoded = Conclusion{"failed", "UnknownOutcome", o.status().message(), end, {}, {}};  // a newer agent
      break;
    }
    if (o->kind == OutcomeKind::kFenced) {
      fenced = true;
      continue;
    }
    decoded = FromOutcome(*o, end);
    if (decoded) break;
  }
  bool deadline = failed && failed->reason == "DeadlineExceeded";
  if (decoded && (decoded->outcome == "succeeded" || decoded->outcome == "waiting" ||
                  decoded->outcome == "budget_exceeded"))
    return decoded;
  if (deadline)
    return Observed("DeadlineExceeded",
                      "attempt " + std::to_string(n) + " ran longer than spec.attemptDeadlineSeconds" +
                          (attempt_deadline_seconds
                               ? " (" + std::to_string(*attempt_deadline_seconds) + "s)"
                               : std::string()) +
                          (failed->message.empty() ? "" : ": " + failed->message),
                    job_end);
  // A SIGTERM the agent reported ("terminated") whose cause Kubernetes names
  // (eviction, node loss, preemption, node shutdown): that cause, below.
  if (decoded && decoded->outcome != "terminated") return decoded;
  // 2. The database knows how the attempt ended.
  if (!decoded)
    if (auto db = FromRunState(run, n)) return db;
  // 3. What Kubernetes saw.
  for (const PodView* p : pods) {
    std::optional<TimePoint> end = p->agent && p->agent->finished_at ? p->agent->finished_at : job_end;
    std::string pod_msg = p->message.empty() ? "" : ": " + p->message;
    const std::string& d = p->disruption_reason;
    if (p->reason == "Evicted" || d == "EvictionByEvictionAPI" || d == "TerminationByKubelet")
      return Observed("Evicted", "pod " + p->meta.name + " was evicted" + pod_msg, end);
    if (p->reason == "NodeLost" || d == "DeletionByTaintManager" || d == "DeletionByPodGC")
      return Observed("NodeLost", "the node of pod " + p->meta.name + " was lost" + pod_msg, end);
    if (d == "PreemptionByScheduler")
      return Observed("Preempted", "pod " + p->meta.name + " was preempted" + pod_msg, end);
    if (p->reason == "Shutdown" || p->reason == "Terminated" || p->reason == "NodeShutdown")
      return Observed("NodeShutdown", "the node of pod " + p->meta.name + " shut down" + pod_msg, end);
    if (decoded) continue;  // terminated: only a disruption above refines it
    if (!p->agent || !p->agent->terminated) continue;
    const ContainerState& s = *p->agent;
    std::string logs = s.terminated_message.empty() ? "" : "; last output: " + s.terminated_message;
    std::string code = "exit code " + std::to_string(s.exit_code);
    if (s.terminated_reason == "OOMKilled")
      return Observed("OOMKilled", "the agent ran out of memory (" + code + ")" + logs, end);
    switch (s.exit_code) {
      case kExitOk:
        break;
      case kExitConfigError:
        return Conclusion{"config_error", "ConfigError", code + " (configuration error)" + logs, end, {}, {}};
      case kExitDatabaseUnavailable:
        return Conclusion{"database_unavailable", "DatabaseUnavailable", code + " (database unavailable)" + logs,
                          end, {}, {}};
      case kExitFenced:
        fenced = true;
        continue;
      case kExitDivergence:
        return Conclusion{"divergence", "Divergence", code + " (divergence)" + logs, end, {}, {}};
      case 137:
        return Observed("Killed", code + " (SIGKILL)" + logs, end);
      case 143:
        return Observed("Terminated", code + " (SIGTERM)" + logs, end);
      default:
        return Observed(s.terminated_reason.empty() ? "Error" : s.terminated_reason, code + logs, end);
    }
    if (s.exit_code == 0)
      return Observed("NoOutcome",
                      "the agent exited 0 without reporting an outcome (is it built on flowrun::run_flow?)" + logs,
                      end);
  }
  if (decoded) return decoded;  // terminated, no disruption named
  if (fenced)
    return Observed("Fenced", "a newer execution of this run took over attempt " + std::to_string(n), job_end);
  if (pods.empty())
    return Observed("PodDeleted",
                    "the pod of attempt " + std::to_string(n) + " was deleted" +
                        (failed && !failed->message.empty() ? ": " + failed->message : ""),
                    job_end);
  return Observed(failed && !failed->reason.empty() ? failed->reason : "Unknown",
                  failed && !failed->message.empty() ? failed->message : "the Job ended without an outcome", job_end);
}

}  // namespace flowrun::controller
