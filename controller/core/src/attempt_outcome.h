// How one attempt ended: the classification the phase machine decides on.
// Internal to the core (reconcile.cc); tested through Reconcile and directly
// by tests/controller/core_attempt_end_test.cc.
//
// Three sources, in order of trust: the agent's typed Outcome (termination
// message), the database's record of the attempt (OutcomeFromRunState), and
// what Kubernetes saw (exit codes, OOMKilled, eviction, node loss, deletion).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "flowrun/controller/types.h"
#include "flowrun/outcome.h"

namespace flowrun::controller {

// How one attempt ended.
struct Conclusion {
  std::string outcome, reason, message;
  std::optional<TimePoint> end;
  std::optional<OpenWait> wait;  // the agent's open question (outcome waiting)
  std::optional<nlohmann::json> result;  // the flow's result (outcome succeeded)
};

// A failed attempt that another attempt may fix: everything but a wrong
// configuration, a divergence, a cancellation and a wait that timed out
// under the fail policy.
bool Retryable(const AttemptStatus& a);
// A retryable attempt that counts against retry.maxAttempts: all but
// "terminated" (SIGTERM, the pod deleted: nothing the flow did wrong), which
// is retried at once, without backoff, like Kubernetes' podFailurePolicy
// action Ignore for disruptions.
bool CountsAsFailure(const AttemptStatus& a);

// attempts[].outcome when the agent reported none: what the controller saw
// ("OOMKilled" -> "oom_killed"; "error" or "unknown" for other reasons).
std::string ObservedOutcome(const std::string& reason);
Conclusion Observed(const std::string& reason, const std::string& message, std::optional<TimePoint> end);

// The agent's typed outcome as a conclusion; nullopt for kFenced (a newer
// execution owns the run). Both channels end here: no decision reads text.
std::optional<Conclusion> FromOutcome(const Outcome& o, std::optional<TimePoint> end);
// The database's record of attempt n (its newest finished execution), when
// the termination message was lost or unreadable; nullopt when it has none.
std::optional<Conclusion> FromRunState(const std::optional<RunState>& run, int n);

// A pod whose agent container has not terminated.
bool PodLive(const PodView& p);

// Classifies a finished Job of attempt n (or one whose pod terminated while
// the Job's status lags); `pods` newest first. nullopt: still active.
std::optional<Conclusion> ClassifyFinished(const JobView& job, const std::vector<const PodView*>& pods,
                                           const std::optional<RunState>& run,
                                           std::optional<int64_t> attempt_deadline_seconds, int n);

}  // namespace flowrun::controller
