// Tables for the read API's documents (docs/read-api.md,
// query.flowrun.dev/v1alpha1): checkpoints, costs (by model, by checkpoint,
// by call), artifacts, and the diff of two runs. Input is the JSON the API
// answers; money stays the API's exact decimal text in -o json and is shown
// rounded for people here (FormatUsd).
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "flowrun/plugin/format.h"

namespace flowrun::plugin {

std::string RenderCheckpoints(const nlohmann::json& list, bool wide, TimePoint now);

enum class CostsBy { kAll, kModel, kCheckpoint, kCall };
// "" → kAll; "model", "checkpoint", "call"; nullopt for anything else.
std::optional<CostsBy> ParseCostsBy(const std::string& s);
// `costs` is a FlowRunCosts; `calls` a FlowRunCallList sorted by cost (may
// be null when not fetched). `top` limits the rows of each table (0: all).
std::string RenderCosts(const nlohmann::json& costs, const nlohmann::json& calls, CostsBy by, size_t top, bool wide);

std::string RenderArtifacts(const nlohmann::json& list, bool wide, TimePoint now);
// "1.8 KiB", "532 B", "3.2 MiB".
std::string FormatBytes(int64_t n);

// A FlowRunDiff: the spend of both runs and the delta, then a table per
// checkpoint (state, this/other status and USD, output equal?) and one per
// artifact. Unless `wide`, checkpoints in state "same" are counted, not listed.
std::string RenderDiff(const nlohmann::json& diff, bool wide);

}  // namespace flowrun::plugin
