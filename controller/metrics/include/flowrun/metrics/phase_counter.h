// PhaseCounter: FlowRuns by (namespace, flow, phase), kept from the FlowRun
// informer's events, exported as the gauge flowrun_runs. It counts what the
// informer's cache holds, so it matches `kubectl get flowruns` once synced.
//
// Idempotent per object: it remembers each object's last (flow, phase) by
// namespace/name, so a repeated add or an update after a relist never counts
// twice. An object without status.phase counts as phase "Pending" (accepted,
// no attempt yet: docs/flowrun-api.md). Thread safe; Observe/Forget are O(1).
#pragma once

#include <map>
#include <mutex>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>
#include <prometheus/metric_family.h>

namespace flowrun::metrics {

class PhaseCounter {
 public:
  // An added or updated FlowRun.
  void Observe(const nlohmann::json& flowrun);
  // A deleted FlowRun.
  void Forget(const nlohmann::json& flowrun);

  // Current count; 0 when none.
  int64_t Count(const std::string& ns, const std::string& flow, const std::string& phase) const;
  // flowrun_runs{namespace,flow,phase}; a combination that dropped to 0 stays
  // exported as 0 (a gauge series should not vanish while the process lives).
  prometheus::MetricFamily Family() const;

 private:
  using Labels = std::tuple<std::string, std::string, std::string>;  // namespace, flow, phase
  void Move(const std::string& key, const Labels* to);

  mutable std::mutex mu_;
  std::unordered_map<std::string, Labels> objects_;  // namespace/name -> its labels
  std::map<Labels, int64_t> counts_;
};

}  // namespace flowrun::metrics
