#include "flowrun/metrics/controller_metrics.h"

namespace flowrun::metrics {

namespace {

// controller-runtime's reconcile_time buckets.
const prometheus::Histogram::BucketBoundaries kReconcileBuckets = {
    0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0,
    1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5, 6, 7, 8, 9, 10, 15, 20, 25, 30, 40, 50, 60};
// client-go's rest_client_request_duration_seconds buckets.
const prometheus::Histogram::BucketBoundaries kRestBuckets = {0.005, 0.025, 0.1, 0.25, 0.5, 1.0, 2.0,
                                                              4.0,   8.0,   15.0, 30.0, 60.0};
const prometheus::Histogram::BucketBoundaries kDbBuckets = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                            0.1,    0.25,  0.5,    1,     2.5,  5,     10};

double Seconds(std::chrono::nanoseconds d) { return std::chrono::duration<double>(d).count(); }

}  // namespace

ControllerMetrics::ControllerMetrics(std::string controller, std::string version, int max_concurrent_reconciles)
    : registry_(std::make_shared<prometheus::Registry>()), controller_(std::move(controller)) {
  auto& total = prometheus::BuildCounter()
                    .Name("controller_runtime_reconcile_total")
                    .Help("Total number of reconciliations per controller")
                    .Register(*registry_);
  const char* results[4] = {"success", "error", "requeue", "requeue_after"};
  for (int i = 0; i < 4; ++i) reconcile_[i] = &total.Add({{"controller", controller_}, {"result", results[i]}});
  reconcile_errors_ = &prometheus::BuildCounter()
                           .Name("controller_runtime_reconcile_errors_total")
                           .Help("Total number of reconciliation errors per controller")
                           .Register(*registry_)
                           .Add({{"controller", controller_}});
  terminal_errors_ = &prometheus::BuildCounter()
                          .Name("controller_runtime_terminal_reconcile_errors_total")
                          .Help("Total number of terminal reconciliation errors per controller")
                          .Register(*registry_)
                          .Add({{"controller", controller_}});
  reconcile_time_ = &prometheus::BuildHistogram()
                         .Name("controller_runtime_reconcile_time_seconds")
                         .Help("Length of time per reconciliation per controller")
                         .Register(*registry_)
                         .Add({{"controller", controller_}}, kReconcileBuckets);
  prometheus::BuildGauge()
      .Name("controller_runtime_max_concurrent_reconciles")
      .Help("Maximum number of concurrent reconciles per controller")
      .Register(*registry_)
      .Add({{"controller", controller_}})
      .Set(max_concurrent_reconciles);
  active_workers_ = &prometheus::BuildGauge()
                         .Name("controller_runtime_active_workers")
                         .Help("Number of currently used workers per controller")
                         .Register(*registry_)
                         .Add({{"controller", controller_}});
  rest_latency_ = &prometheus::BuildHistogram()
                       .Name("rest_client_request_duration_seconds")
                       .Help("Request latency in seconds. Broken down by verb (HTTP method, or WATCH).")
                       .Register(*registry_);
  rest_requests_ = &prometheus::BuildCounter()
                        .Name("rest_client_requests_total")
                        .Help("Number of HTTP requests, partitioned by status code and method.")
                        .Register(*registry_);
  leader_ = &prometheus::BuildGauge()
                 .Name("leader_election_master_status")
                 .Help("Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, 1 "
                       "indicates master. 'name' is the string used to identify the lease.")
                 .Register(*registry_);
  db_latency_ = &prometheus::BuildHistogram()
                     .Name("flowrun_db_query_duration_seconds")
                     .Help("PostgreSQL round trips of the controller, by operation")
                     .Register(*registry_);
  prometheus::BuildGauge()
      .Name("flowrun_build_info")
      .Help("flowrun-controller build; always 1")
      .Register(*registry_)
      .Add({{"version", version}})
      .Set(1);
}

void ControllerMetrics::ObserveReconcile(ReconcileResult result, std::chrono::nanoseconds took) {
  reconcile_[static_cast<int>(result)]->Increment();
  if (result == ReconcileResult::kError) reconcile_errors_->Increment();
  reconcile_time_->Observe(Seconds(took));
}

void ControllerMetrics::ObserveTerminalError() { terminal_errors_->Increment(); }

void ControllerMetrics::SetLeader(const std::string& lease_name, bool leading) {
  leader_->Add({{"name", lease_name}}).Set(leading ? 1 : 0);
}

prometheus::Histogram& ControllerMetrics::HistogramFor(prometheus::Family<prometheus::Histogram>& f,
                                                       const prometheus::Labels& l,
                                                       const prometheus::Histogram::BucketBoundaries& b) {
  std::string key = f.GetName();
  for (const auto& [k, v] : l) key += "\x1f" + v;
  std::lock_guard<std::mutex> lock(cache_mu_);
  auto it = hist_cache_.find(key);
  if (it != hist_cache_.end()) return *it->second;
  prometheus::Histogram* h = &f.Add(l, b);
  hist_cache_.emplace(std::move(key), h);
  return *h;
}

void ControllerMetrics::ObserveDbQuery(const std::string& operation, std::chrono::nanoseconds took) {
  HistogramFor(*db_latency_, {{"operation", operation}}, kDbBuckets).Observe(Seconds(took));
}

void ControllerMetrics::ObserveRequest(std::string_view verb, int code, std::chrono::nanoseconds latency) noexcept {
  try {
    std::string v(verb);
    HistogramFor(*rest_latency_, {{"verb", v}}, kRestBuckets).Observe(Seconds(latency));
    std::string c = code > 0 ? std::to_string(code) : "<error>";
    std::string key = c + "\x1f" + v;
    prometheus::Counter* counter;
    {
      std::lock_guard<std::mutex> lock(cache_mu_);
      auto it = counter_cache_.find(key);
      if (it == counter_cache_.end()) {
        // The method is the request's own verb: "WATCH" is a GET on the wire.
        it = counter_cache_.emplace(key, &rest_requests_->Add({{"code", c}, {"method", v == "WATCH" ? "GET" : v}}))
                 .first;
      }
      counter = it->second;
    }
    counter->Increment();
  } catch (...) {
    // Metrics must never break a request; prometheus-cpp throws only on
    // invalid label names, which are constants here.
  }
}

}  // namespace flowrun::metrics
