// Adapters: execute a ReconcileResult against the Kubernetes API (KubeClient,
// EventRecorder) and the run store (RunAdmin), following the contract stated
// in flowrun/controller/reconcile.h:
//   * actions run in order; the first failure stops execution (the caller
//     requeues with backoff);
//   * CreateJob: 409 AlreadyExists is success when the existing Job is
//     controlled by this FlowRun, otherwise a Warning Event (and an error);
//   * DeleteJob / DeleteFlowRun: propagationPolicy Background, 404 is success;
//   * PatchStatus: merge patch of /status;
//   * Add/RemoveFinalizer: merge patch of metadata.finalizers carrying the
//     FlowRun's resourceVersion (409 Conflict: error, requeue);
//   * RecordAnswer: AlreadyExists (answered meanwhile) is an error, so the
//     Job that would carry another answer is not created and the requeued
//     reconcile resumes with the database's answer; InvalidArgument records a
//     Warning Event and stops (no error: the next reconcile decides again);
//   * Event: recorded asynchronously;
//   * RequeueAfter: reported back to the caller.
//
// Thread safety: an ActionExecutor is used by one worker at a time (its
// RunAdmin owns one connection); the KubeClient and EventRecorder are shared.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "flowrun/controller/reconcile.h"
#include "flowrun/kube/client.h"
#include "flowrun/kube/event_recorder.h"
#include "flowrun/run_admin.h"
#include "flowrun/status.h"

namespace flowrun::controller {

struct ExecuteOutcome {
  Status status;                                     // first failure, else OK
  std::optional<std::chrono::milliseconds> requeue_after;  // the RequeueAfter action, if reached
  int executed = 0;                                  // actions completed
};

// Log hook: (level, message, fields).
using AdapterLog = std::function<void(const std::string& level, const std::string& msg, const nlohmann::json& fields)>;

class ActionExecutor {
 public:
  ActionExecutor(kube::KubeClient* kube, kube::EventRecorder* events, AdapterLog log = nullptr)
      : kube_(kube), events_(events), log_(std::move(log)) {}

  // `flowrun`: the FlowRun the actions were computed from. `admin` may be
  // null only if the actions need no database (then DB actions fail).
  ExecuteOutcome Execute(const nlohmann::json& flowrun, const ReconcileResult& result, RunAdmin* admin);

 private:
  Status Run(nlohmann::json& flowrun, const Action& action, RunAdmin* admin, bool& stop,
             std::optional<std::chrono::milliseconds>& requeue);
  Status PatchFinalizers(nlohmann::json& flowrun, const std::string& finalizer, bool add);
  void Warn(const nlohmann::json& flowrun, const std::string& reason, const std::string& message);
  void Log(const std::string& level, const std::string& msg, const nlohmann::json& fields) const {
    if (log_) log_(level, msg, fields);
  }

  kube::KubeClient* kube_;
  kube::EventRecorder* events_;
  AdapterLog log_;
};

}  // namespace flowrun::controller
