#include "flowrun/metrics/workqueue_collector.h"

#include <limits>
#include <string>

namespace flowrun::metrics {

namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

MetricFamily Scalar(const char* name, const char* help, MetricType type, const std::string& queue, double v) {
  MetricFamily f{name, help, type, {}};
  ClientMetric m;
  m.label = {{"name", queue}};
  if (type == MetricType::Counter)
    m.counter.value = v;
  else
    m.gauge.value = v;
  f.metric.push_back(std::move(m));
  return f;
}

MetricFamily Histogram(const char* name, const char* help, const std::string& queue,
                       const kube::DurationHistogram& h) {
  MetricFamily f{name, help, MetricType::Histogram, {}};
  ClientMetric m;
  m.label = {{"name", queue}};
  m.histogram.sample_count = h.count;
  m.histogram.sample_sum = h.sum_seconds;
  for (size_t i = 0; i < h.kBounds.size(); ++i) m.histogram.bucket.push_back({h.bucket_counts[i], h.kBounds[i]});
  m.histogram.bucket.push_back({h.count, std::numeric_limits<double>::infinity()});
  f.metric.push_back(std::move(m));
  return f;
}

}  // namespace

std::vector<MetricFamily> WorkQueueFamilies(const kube::WorkQueueStats& s) {
  std::vector<MetricFamily> out;
  out.push_back(Scalar("workqueue_depth", "Current depth of workqueue", MetricType::Gauge, s.name,
                       static_cast<double>(s.depth)));
  out.push_back(Scalar("workqueue_adds_total", "Total number of adds handled by workqueue", MetricType::Counter,
                       s.name, static_cast<double>(s.adds_total)));
  out.push_back(Scalar("workqueue_retries_total", "Total number of retries handled by workqueue",
                       MetricType::Counter, s.name, static_cast<double>(s.retries_total)));
  out.push_back(Histogram("workqueue_queue_duration_seconds",
                          "How long in seconds an item stays in workqueue before being requested", s.name,
                          s.queue_duration));
  out.push_back(Histogram("workqueue_work_duration_seconds",
                          "How long in seconds processing an item from workqueue takes", s.name, s.work_duration));
  out.push_back(Scalar("workqueue_unfinished_work_seconds",
                       "How many seconds of work has been done that is in progress and hasn't been observed by "
                       "work_duration. Large values indicate stuck threads.",
                       MetricType::Gauge, s.name, s.unfinished_work_seconds));
  out.push_back(Scalar("workqueue_longest_running_processor_seconds",
                       "How many seconds has the longest running processor for workqueue been running.",
                       MetricType::Gauge, s.name, s.longest_running_processor_seconds));
  return out;
}

}  // namespace flowrun::metrics
