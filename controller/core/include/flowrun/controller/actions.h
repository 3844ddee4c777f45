// The actions the reconcile core decides (Reconcile, reconcile.h) and the
// adapters execute, in order.
//
// Executing a result: the adapters' contract, the one copy of it.
// controller/adapters (ActionExecutor) implements it;
// tests/controller/adapters_test.cc checks it clause by clause.
//
//   * Run the actions in order. When one fails, stop and report the error;
//     the loop requeues the FlowRun with backoff and the next reconcile
//     decides again from fresh inputs. (Side effects come first, the status
//     patch that records them after, and Events last, so a failure never
//     records what did not happen.)
//   * CreateJob: POST the Job; 409 AlreadyExists is success when the existing
//     Job's controller ownerReference is this FlowRun (a stale cache),
//     otherwise a Warning Event (JobConflict) and an error.
//   * DeleteJob: DELETE with propagationPolicy Background (never orphan
//     pods); 404 is success.
//   * PatchStatus: merge-patch the /status subresource (content type
//     application/merge-patch+json). It never contains status.answers.
//   * AddFinalizer / RemoveFinalizer: merge-patch metadata.finalizers with the
//     FlowRun's resourceVersion as precondition (409: error, requeue). The
//     executor carries the resourceVersion each patch returns, so a finalizer
//     patch after a status patch in the same list is not stale.
//   * RecordAnswer: RunAdmin::RecordAnswer(uid, wait, answer,
//     {allow_early=false, answered_by}).
//       - AlreadyExists (answered meanwhile; the first answer wins) is an
//         ERROR, not success: execution stops, so the CreateJob after it
//         (whose Job names the answer it resumes with) does not run; the
//         requeued reconcile sees the answered wait in the database and
//         resumes with the database's answer.
//       - FailedPrecondition (the run is over, or no longer waiting for that
//         wait): an error; the requeued reconcile decides from the database.
//       - InvalidArgument (the database's schema disagrees with the one in
//         status): a Warning Event (InvalidAnswer) and stop, without an
//         error: the next event decides again.
//   * SetBudget / ExpireWait / CancelRun / DeleteRunRows: the RunAdmin calls
//     of the same names (DeleteRunRows = DeleteRun) for metadata.uid;
//     CancelRun of a run without rows is success.
//   * DeleteFlowRun: DELETE the FlowRun with a uid precondition (its
//     finalizer then cleans up); 404 is success.
//   * Event: record asynchronously (never blocks, never fails the result).
//   * SetLabel: merge-patch metadata.labels.<key> with the FlowRun's
//     resourceVersion as precondition (409: error, requeue), like the
//     finalizer patches.
//   * PrepareReplay (before the first Job of a replay; docs/replay.md): GET
//     the source FlowRun spec.replay.from.run in the FlowRun's namespace (404:
//     no source) and each spec.replay.outputFrom ConfigMap (404 or a missing
//     key: not found; other errors: stop with the error), then ResolveReplay
//     (replay.h) and RunAdmin::PrepareReplay with its request. A refusal
//     (ResolveReplay's, or RefusalOfPrepareError of the store's error) is
//     recorded with ReplayRefusalPatch on /status, a Warning Event with the
//     refusal's reason when the condition changed, and execution stops with
//     kFailedPrecondition (requeued with backoff: the source may appear
//     later). Any other error stops with that error. Idempotent: preparing
//     again after a crash copies nothing twice (RunAdmin's contract).
//   * RequeueAfter: at most one, always last: Forget the key's backoff, then
//     reconcile again after it (0 = right away, e.g. to read the database
//     after ExpireWait).
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <variant>

#include <nlohmann/json.hpp>

#include "flowrun/controller/types.h"
#include "flowrun/store_types.h"

namespace flowrun::controller {

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
struct SetLabel {
  std::string key, value;
};
// Prepare this FlowRun's replay (spec.replay); the adapter resolves the source.
struct PrepareReplay {};
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
                            SetBudget, ExpireWait, CancelRun, DeleteRunRows, DeleteFlowRun, Event, RequeueAfter,
                            SetLabel, PrepareReplay>;

// "CreateJob(run-a2)", "Event(Warning InvalidAnswer: ...)": for logs and test failures.
std::string Describe(const Action& action);

}  // namespace flowrun::controller
