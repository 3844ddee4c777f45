#include "cost_status.h"

#include <algorithm>
#include <cmath>

#include "flowrun/controller/types.h"
#include "flowrun/utf8.h"

namespace flowrun::controller {

using nlohmann::json;

namespace {

json ByModel(const RunState& r, int64_t* omitted) {
  std::vector<const ModelUsage*> models;
  for (const ModelUsage& m : r.top_models) models.push_back(&m);
  std::stable_sort(models.begin(), models.end(), [](const ModelUsage* a, const ModelUsage* b) {
    if (a->usage.cost_usd != b->usage.cost_usd) return a->usage.cost_usd > b->usage.cost_usd;
    return a->model < b->model;
  });
  *omitted = std::max<int64_t>(0, r.other_models);
  if (models.size() > kStatusTopModels) {
    *omitted += static_cast<int64_t>(models.size() - kStatusTopModels);
    models.resize(kStatusTopModels);
  }
  json out = json::array();
  for (const ModelUsage* m : models)
    out.push_back({{"model", TruncateUtf8(m->model, kStatusModelBytes)},
                   {"usd", DecimalUsd(m->usage.cost_usd)},
                   {"llmCalls", m->usage.llm_calls},
                   {"inputTokens", m->usage.input_tokens},
                   {"outputTokens", m->usage.output_tokens}});
  return out;
}

json TopCalls(const RunState& r) {
  std::vector<const CallCost*> calls;
  for (const CallCost& c : r.top_calls) calls.push_back(&c);
  // Stable: calls of equal cost keep the store's order (oldest first).
  std::stable_sort(calls.begin(), calls.end(),
                   [](const CallCost* a, const CallCost* b) { return a->cost_usd > b->cost_usd; });
  if (calls.size() > kStatusTopCalls) calls.resize(kStatusTopCalls);
  json out = json::array();
  for (const CallCost* c : calls) {
    json j = json::object();
    if (c->checkpoint) {
      j["checkpoint"] = TruncateUtf8(c->checkpoint->name, kStatusCheckpointBytes);
      j["occurrence"] = c->checkpoint->occurrence;
    }
    j["model"] = TruncateUtf8(c->model, kStatusModelBytes);
    j["usd"] = DecimalUsd(c->cost_usd);
    j["inputTokens"] = c->input_tokens;
    j["outputTokens"] = c->output_tokens;
    j["latencyMs"] = std::isfinite(c->latency_ms) && c->latency_ms > 0 ? std::llround(c->latency_ms) : 0;
    j["attempt"] = c->attempt;
    out.push_back(std::move(j));
  }
  return out;
}

}  // namespace

json CostStatusOf(const RunState& r) {
  json cost = {{"usd", StatusUsd(r.spent.cost_usd)},
               {"inputTokens", r.spent.input_tokens},
               {"outputTokens", r.spent.output_tokens},
               {"cachedTokens", r.spent.cached_tokens},
               {"llmCalls", r.spent.llm_calls},
               // Started and never answered (the process died mid-call):
               // possibly billed, cost unknown, never silently absent.
               {"unfinishedCalls", r.spent.unfinished_calls},
               {"savedUSD", StatusUsd(r.saved.cost_usd)},
               {"savedTokens", r.saved.input_tokens + r.saved.output_tokens}};
  // A replay's reused checkpoints: what they cost the source, never in usd.
  if (r.replay) cost["inheritedUsd"] = DecimalUsd(r.replay->inherited.cost_usd);
  int64_t omitted = 0;
  if (json models = ByModel(r, &omitted); !models.empty()) cost["byModel"] = std::move(models);
  if (omitted > 0) cost["omittedModels"] = omitted;
  if (json calls = TopCalls(r); !calls.empty()) cost["topCalls"] = std::move(calls);
  return cost;
}

}  // namespace flowrun::controller
