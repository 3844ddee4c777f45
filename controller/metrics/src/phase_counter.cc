#include "flowrun/metrics/phase_counter.h"

namespace flowrun::metrics {

namespace {

std::string KeyOf(const nlohmann::json& o) {
  const nlohmann::json& md = o.value("metadata", nlohmann::json::object());
  return md.value("namespace", "") + "/" + md.value("name", "");
}

}  // namespace

void PhaseCounter::Observe(const nlohmann::json& fr) {
  const nlohmann::json& md = fr.value("metadata", nlohmann::json::object());
  const nlohmann::json& spec = fr.value("spec", nlohmann::json::object());
  const nlohmann::json& st = fr.value("status", nlohmann::json::object());
  std::string phase = st.value("phase", "");
  if (phase.empty()) phase = "Pending";
  // spec.flow is defaulted to "default" by the CRD; the same default here
  // keeps a hand-made object without it in the same series.
  std::string flow = spec.value("flow", "");
  if (flow.empty()) flow = "default";
  Labels l{md.value("namespace", ""), flow, phase};
  Move(KeyOf(fr), &l);
}

void PhaseCounter::Forget(const nlohmann::json& fr) { Move(KeyOf(fr), nullptr); }

void PhaseCounter::Move(const std::string& key, const Labels* to) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = objects_.find(key);
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
