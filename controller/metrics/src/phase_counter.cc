#include "flowrun/metrics/phase_counter.h"

#include "flowrun/json_fields.h"

namespace flowrun::metrics {

namespace {

std::string KeyOf(const nlohmann::json& o) {
  return JsonString(o, "metadata", "namespace") + "/" + JsonString(o, "metadata", "name");
}

}  // namespace

void PhaseCounter::Observe(const nlohmann::json& fr) {
  std::string phase = JsonString(fr, "status", "phase");
  if (phase.empty()) phase = "Pending";
  // spec.flow is defaulted to "default" by the CRD; the same default here
  // keeps a hand-made object without it in the same series.
  std::string flow = JsonString(fr, "spec", "flow");
  if (flow.empty()) flow = "default";
  Labels l{JsonString(fr, "metadata", "namespace"), std::move(flow), std::move(phase)};
  Move(KeyOf(fr), &l);
}

void PhaseCounter::Forget(const nlohmann::json& fr) { Move(KeyOf(fr), nullptr); }

void PhaseCounter::Move(const std::string& key, const Labels* to) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = objects_.find(key);
  // Most updates change other fields than flow and phase: nothing to move.
  if (it != objects_.end() && to && it->second == *to) return;
  if (it != objects_.end()) {
    --counts_[it->second];
    if (to) {
      it->second = *to;
    } else {
      objects_.erase(it);
    }
  } else if (to) {
    objects_.emplace(key, *to);
  }
  if (to) ++counts_[*to];
}

int64_t PhaseCounter::Count(const std::string& ns, const std::string& flow, const std::string& phase) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = counts_.find(Labels{ns, flow, phase});
  return it == counts_.end() ? 0 : it->second;
}

prometheus::MetricFamily PhaseCounter::Family() const {
  prometheus::MetricFamily f;
  f.name = "flowrun_runs";
  f.help = "FlowRuns by phase, as the controller's cache holds them (kubectl get flowruns)";
  f.type = prometheus::MetricType::Gauge;
  std::lock_guard<std::mutex> lock(mu_);
  f.metric.reserve(counts_.size());
  for (const auto& [l, n] : counts_) {
    prometheus::ClientMetric m;
    m.label = {{"namespace", std::get<0>(l)}, {"flow", std::get<1>(l)}, {"phase", std::get<2>(l)}};
    m.gauge.value = static_cast<double>(n);
    f.metric.push_back(std::move(m));
  }
  return f;
}

}  // namespace flowrun::metrics
