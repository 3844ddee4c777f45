// The FlowRun controller loop: informers on FlowRuns (cluster-wide or one
// namespace) and on the Jobs and Pods labelled flowrun.dev/run, a workqueue
// of FlowRun keys, and N workers that each read a FlowRun, its Jobs and Pods
// from the caches and the run from PostgreSQL, call the pure core
// (Reconcile) and execute its actions (ActionExecutor). Updates enqueue only
// when they matter (update_predicate.h); failures are retried by code
// (retry_policy.h). docs/controller.md.
//
// Dependencies are passed in (FlowRunControllerDeps); no globals.
// Ownership: every pointer in the deps is not owned and must outlive the
// controller. Thread safety: call StartInformers / StartWorkers / Shutdown
// from one thread; RequestStop, synced and queue from any.
#pragma once

#include <functional>
#include <memory>

#include "flowrun/clock.h"
#include "flowrun/controller/app/flags.h"
#include "flowrun/controller/app/log.h"
#include "flowrun/controller/config.h"
#include "flowrun/kube/client.h"
#include "flowrun/kube/workqueue.h"
#include "flowrun/metrics/controller_metrics.h"
#include "flowrun/metrics/phase_counter.h"
#include "flowrun/run_admin.h"
#include "flowrun/status.h"

namespace flowrun::controller::app {

struct FlowRunControllerDeps {
  kube::KubeClient* client = nullptr;
  // Opens a database session for one worker; called lazily, again after a
  // kUnavailable reconcile (the session is then discarded).
  std::function<StatusOr<std::unique_ptr<RunAdmin>>()> open_admin;
  // Every reading of the time and every delay of the loop: the core's `now`,
  // the workqueue's RequeueAfter and backoff, the informers' retry gaps, the
  // Event recorder. nullptr: DefaultClock().
  Clock* clock = nullptr;
  const Logger* log = nullptr;
  metrics::ControllerMetrics* metrics = nullptr;
  metrics::PhaseCounter* phases = nullptr;
};

class FlowRunController {
 public:
  FlowRunController(Flags flags, ControllerConfig config, FlowRunControllerDeps deps);
  ~FlowRunController();
  FlowRunController(const FlowRunController&) = delete;
  FlowRunController& operator=(const FlowRunController&) = delete;

  // Starts the informers and waits for their first lists (false: RequestStop
  // came first).
  bool StartInformers();
  // Starts Flags::workers workers.
  void StartWorkers();
  // Stops the informers (no new keys), drains the queue, joins the workers,
  // flushes the Events.
  void Shutdown();
  bool synced() const;
  kube::WorkQueue* queue();
  // Ends StartInformers' wait; Shutdown() does the rest.
  void RequestStop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace flowrun::controller::app
