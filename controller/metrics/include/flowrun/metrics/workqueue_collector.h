// WorkQueueCollector: client-go's workqueue metrics for one WorkQueue, read
// from WorkQueue::Stats() at scrape time (label name = the queue's name):
//   workqueue_depth, workqueue_adds_total, workqueue_retries_total,
//   workqueue_queue_duration_seconds, workqueue_work_duration_seconds,
//   workqueue_unfinished_work_seconds, workqueue_longest_running_processor_seconds.
// Pure conversion WorkQueueFamilies() plus a Collectable holding a non-owning
// pointer: the queue must outlive the collector's registration (unregister or
// stop the exposer first). Thread safe (Stats() locks the queue briefly).
#pragma once

#include <vector>

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include "flowrun/kube/workqueue.h"

namespace flowrun::metrics {

std::vector<prometheus::MetricFamily> WorkQueueFamilies(const kube::WorkQueueStats& stats);

class WorkQueueCollector final : public prometheus::Collectable {
 public:
  explicit WorkQueueCollector(kube::WorkQueue* queue) : queue_(queue) {}
  std::vector<prometheus::MetricFamily> Collect() const override { return WorkQueueFamilies(queue_->Stats()); }

 private:
  kube::WorkQueue* queue_;
};

}  // namespace flowrun::metrics
