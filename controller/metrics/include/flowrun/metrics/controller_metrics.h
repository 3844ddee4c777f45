// ControllerMetrics: the controller's own health metrics, named like
// controller-runtime and client-go so existing dashboards work:
//   controller_runtime_reconcile_total{controller,result}      result: success|error|requeue|requeue_after
//   controller_runtime_reconcile_errors_total{controller}
//   controller_runtime_terminal_reconcile_errors_total{controller}  errors not retried until the object changes
//   controller_runtime_reconcile_time_seconds{controller}      histogram
//   controller_runtime_max_concurrent_reconciles{controller}, controller_runtime_active_workers{controller}
//   rest_client_request_duration_seconds{verb}                 histogram (HTTP method, or WATCH)
//   rest_client_requests_total{code,method}                    code "<error>" when no response
//   leader_election_master_status{name}                        1 while leading
//   flowrun_db_query_duration_seconds{operation}               histogram
//   flowrun_build_info{version}                                always 1
// plus, at scrape time, the workqueue_* metrics of every attached WorkQueue
// (workqueue_collector.h). Owns its prometheus::Registry; Registry() is what
// MetricsServer exposes. Thread safe (prometheus-cpp metrics are atomic);
// the Observe* methods are cheap enough for hot paths (no allocation once a
// label combination exists).
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "flowrun/kube/request_observer.h"

namespace flowrun::metrics {

enum class ReconcileResult { kSuccess, kError, kRequeue, kRequeueAfter };

class ControllerMetrics final : public kube::RequestObserver {
 public:
  // `controller`: the controller label ("flowrun"); `version`: build info.
  ControllerMetrics(std::string controller, std::string version, int max_concurrent_reconciles);

  std::shared_ptr<prometheus::Registry> registry() const { return registry_; }

  void ObserveReconcile(ReconcileResult result, std::chrono::nanoseconds took);
  // A reconcile error that is not retried (also counted by ObserveReconcile
  // as result="error").
  void ObserveTerminalError();
  void WorkerActive(int delta) { active_workers_->Increment(delta); }
  void SetLeader(const std::string& lease_name, bool leading);
  void ObserveDbQuery(const std::string& operation, std::chrono::nanoseconds took);
  void ObserveRequest(std::string_view verb, int code, std::chrono::nanoseconds latency) noexcept override;

 private:
  prometheus::Histogram& HistogramFor(prometheus::Family<prometheus::Histogram>& f, const prometheus::Labels& l,
                                      const prometheus::Histogram::BucketBoundaries& b);

  std::shared_ptr<prometheus::Registry> registry_;
  std::string controller_;
  prometheus::Counter* reconcile_[4];
  prometheus::Counter* reconcile_errors_;
  prometheus::Counter* terminal_errors_;
  prometheus::Histogram* reconcile_time_;
  prometheus::Gauge* active_workers_;
  prometheus::Family<prometheus::Histogram>* rest_latency_;
  prometheus::Family<prometheus::Counter>* rest_requests_;
  prometheus::Family<prometheus::Gauge>* leader_;
  prometheus::Family<prometheus::Histogram>* db_latency_;
  // Family::Add takes the family's lock and hashes the labels; caching the
  // returned references keeps the common path to one map lookup here.
  std::mutex cache_mu_;
  std::unordered_map<std::string, prometheus::Histogram*> hist_cache_;
  std::unordered_map<std::string, prometheus::Counter*> counter_cache_;
};

}  // namespace flowrun::metrics
