// FunctionCollector: a prometheus::Collectable that calls a function at
// scrape time (e.g. PhaseCounter::Family). The function must be thread safe
// and outlive nothing it captures: the caller keeps captured objects alive
// while the collector is registered.
#pragma once

#include <functional>
#include <utility>
#include <vector>

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

namespace flowrun::metrics {

class FunctionCollector final : public prometheus::Collectable {
 public:
  using Fn = std::function<std::vector<prometheus::MetricFamily>()>;
  explicit FunctionCollector(Fn fn) : fn_(std::move(fn)) {}
  std::vector<prometheus::MetricFamily> Collect() const override { return fn_(); }

 private:
  Fn fn_;
};

}  // namespace flowrun::metrics
