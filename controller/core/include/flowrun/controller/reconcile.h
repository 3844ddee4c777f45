// The FlowRun reconcile core: a pure function from what the controller
// observed (the FlowRun, its Jobs and Pods, the run's state in PostgreSQL,
// the time) to an ordered list of actions for adapters to execute. No I/O,
// no clock, no memory between calls: everything is derived from the inputs,
// so calling it twice with the same inputs gives the same actions, and
// applying its actions then calling it again gives no new ones.
//
// docs/reconcile.md has the decision table.
//
// Executing a result (the adapters' contract):
//   * Run the actions in order. When one fails, stop and requeue the FlowRun
//     with backoff; the next reconcile decides again from fresh inputs.
//     (Side effects come first, the status patch that records them after,
//     and Events last, so a failure never records what did not happen.)
//   * CreateJob: POST the Job; 409 AlreadyExists is success when the existing
//     Job is controlled by this FlowRun (a stale cache), otherwise a Warning.
//   * DeleteJob: DELETE with propagationPolicy Background; 404 is success.
//   * PatchStatus: merge-patch the /status subresource (content type
//     application/merge-patch+json). It never contains status.answers.
//   * AddFinalizer / RemoveFinalizer: patch metadata.finalizers.
//   * RecordAnswer: RunAdmin::RecordAnswer(uid, wait, answer,
//     {allow_early=false, answered_by}). AlreadyExists (answered meanwhile;
//     the first answer wins): stop with an error, so the CreateJob after it
//     (whose Job names the answer it resumes with) does not run; the next
//     reconcile sees the answered wait in the database and resumes with it.
//     InvalidArgument (the database's schema disagrees): Warning Event, stop.
//   * SetBudget / ExpireWait / CancelRun / DeleteRunRows: the RunAdmin calls
//     of the same names (DeleteRunRows = DeleteRun) for metadata.uid.
//   * DeleteFlowRun: DELETE the FlowRun (its finalizer then cleans up).
//   * Event: record asynchronously (never blocks, never fails the result).
//   * RequeueAfter: at most one, always last: reconcile again after it
//     (0 = right away, e.g. to read the database after ExpireWait).
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "flowrun/controller/config.h"
#include "flowrun/controller/types.h"
#include "flowrun/store_types.h"

namespace flowrun::controller {

struct ReconcileInput {
  nlohmann::json flowrun;                          // the FlowRun as the API returns it
  nlohmann::json jobs = nlohmann::json::array();   // its Jobs (filtered by owner uid)
  nlohmann::json pods = nlohmann::json::array();   // their Pods
  std::optional<RunState> run;                     // RunAdmin::GetRun; absent before the first attempt
  TimePoint now;
  ControllerConfig config;
};

struct CreateJob {
  std::string name;
  int attempt = 0;
  nlohmann::json job;
};
struct DeleteJob {
  std::string name;
  std::string propagation_policy = "Background";
};
struct PatchStatus {
  nlohmann::json patch;  // {"status": {...}}: a JSON merge patch (RFC 7386)
};
struct AddFinalizer {
  std::string finalizer = kFinalizer;
};
struct RemoveFinalizer {
  std::string finalizer = kFinalizer;
};
struct RecordAnswer {
  std::string wait;  // the wait's name in the database (without "#<n>")
  nlohmann::json answer;
  std::string answered_by;
};
struct SetBudget {
  std::optional<double> usd;  // nullopt: no budget
};
struct ExpireWait {
  TimePoint now;
};
struct CancelRun {
  std::string reason;
};
struct DeleteRunRows {};
struct DeleteFlowRun {};
struct Event {
  std::string type;  // Normal | Warning
  std::string reason;
  std::string message;
};
struct RequeueAfter {
  std::chrono::milliseconds after{0};
};

using Action = std::variant<CreateJob, DeleteJob, PatchStatus, AddFinalizer, RemoveFinalizer, RecordAnswer,
                            SetBudget, ExpireWait, CancelRun, DeleteRunRows, DeleteFlowRun, Event, RequeueAfter>;

// "CreateJob(run-a2)", "Event(Warning InvalidAnswer: ...)": for logs and test failures.
std::string Describe(const Action& action);

struct ReconcileResult {
  std::vector<Action> actions;
  // Not OK when no decision could be made; `actions` is then empty.
  //   kInvalidArgument: the FlowRun itself is unusable (not an object, no name
  //     or uid). Permanent: retrying the same object fails again, so the loop
  //     reports it and waits for the object to change.
  //   kInternal: the core threw (a bug, or a JSON shape the parsers let
  //     through). Unexpected: the loop reports it and retries with backoff.
  // A malformed spec is not an error here: it is decided like any other
  // state (condition SpecValid=False, phase Failed).
  Status error;

  template <typename T>
  std::vector<const T*> All() const {
    std::vector<const T*> out;
    for (const auto& a : actions)
      if (const T* t = std::get_if<T>(&a)) out.push_back(t);
    return out;
  }
  template <typename T>
  const T* Find() const {
    for (const auto& a : actions)
      if (const T* t = std::get_if<T>(&a)) return t;
    return nullptr;
  }
  std::string Describe() const;  // one action per line
};

ReconcileResult Reconcile(const ReconcileInput& in);

// The Job of attempt `attempt`: deterministic name, labels, ownerReference,
// the agent container with the runtime's environment contract, a pod spec
// that passes Pod Security "restricted". Errors: the FlowRun is malformed
// (see FlowRunView::spec_errors).
StatusOr<nlohmann::json> BuildJob(const nlohmann::json& flowrun, int attempt, const ControllerConfig& config);
nlohmann::json BuildJob(const FlowRunView& flowrun, int attempt, const ControllerConfig& config);

// "<flowrun>-a<N>"; when that exceeds 63 characters the FlowRun's name is cut
// and an 8-hex-digit hash of the full name inserted, so names stay unique,
// deterministic and valid as a label value.
std::string JobName(const std::string& flowrun_name, int attempt);
// A valid label value (<= 63 characters, alphanumeric at both ends) for any
// string: itself when valid, else cleaned, cut and hashed.
std::string LabelValue(const std::string& s);

// RFC 7386 merge patch that turns `from` into `to` (objects recurse; a key
// missing from `to` becomes null; anything else is replaced whole). Empty
// object when they are equal.
nlohmann::json MergePatchDiff(const nlohmann::json& from, const nlohmann::json& to);
// Applies an RFC 7386 merge patch (what the API server does).
void ApplyMergePatch(nlohmann::json& target, const nlohmann::json& patch);

}  // namespace flowrun::controller
