// status.cost from the run's state in PostgreSQL: the totals, and the small
// bounded summaries plain kubectl reads (byModel, omittedModels, topCalls).
// Money is rounded to whole nano-dollars (StatusUsd / DecimalUsd, types.h).
#pragma once

#include <nlohmann/json.hpp>

#include "flowrun/store_types.h"

namespace flowrun::controller {

// The bounds of the summaries (the CRD's maxItems and maxLength).
inline constexpr size_t kStatusTopModels = kRunStateTopModels;
inline constexpr size_t kStatusTopCalls = kRunStateTopCalls;
inline constexpr size_t kStatusModelBytes = 128;
inline constexpr size_t kStatusCheckpointBytes = 253;

// status.cost for `run` (display is added by FlowRunStatus::ToJson). The
// summaries are ordered and bounded here whatever the store returned: byModel
// by spend descending (then model name), at most kStatusTopModels, the rest
// counted in omittedModels (absent when none is left out); topCalls most
// expensive first, at most kStatusTopCalls. Both absent when there are none.
nlohmann::json CostStatusOf(const RunState& run);

}  // namespace flowrun::controller
