// Adapters: execute a ReconcileResult against the Kubernetes API (KubeClient,
// EventRecorder) and the run store (RunAdmin). The contract they implement,
// action by action, is written once, in flowrun/controller/actions.h.
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
  // PrepareReplay needs the controller's config (its default database) and
  // the time (the Replay condition's lastTransitionTime); without a clock the
  // system clock is read.
  ActionExecutor(kube::KubeClient* kube, kube::EventRecorder* events, ControllerConfig config,
                 std::function<TimePoint()> now, AdapterLog log = nullptr)
      : kube_(kube), events_(events), log_(std::move(log)), config_(std::move(config)), now_(std::move(now)) {}

  // `flowrun`: the FlowRun the actions were computed from. `admin` may be
  // null only if the actions need no database (then DB actions fail).
  ExecuteOutcome Execute(const nlohmann::json& flowrun, const ReconcileResult& result, RunAdmin* admin);

 private:
  Status Run(nlohmann::json& flowrun, const Action& action, RunAdmin* admin, bool& stop,
             std::optional<std::chrono::milliseconds>& requeue);
  Status PatchFinalizers(nlohmann::json& flowrun, const std::string& finalizer, bool add);
  Status PatchLabel(nlohmann::json& flowrun, const std::string& key, const std::string& value);
  Status Prepare(nlohmann::json& flowrun, RunAdmin* admin);
  void Warn(const nlohmann::json& flowrun, const std::string& reason, const std::string& message);
  void Log(const std::string& level, const std::string& msg, const nlohmann::json& fields) const {
    if (log_) log_(level, msg, fields);
  }

  kube::KubeClient* kube_;
  kube::EventRecorder* events_;
  AdapterLog log_;
  ControllerConfig config_;
  std::function<TimePoint()> now_;
};

}  // namespace flowrun::controller
