// `kubectl flowrun replay --dry-run`: what a replay would reuse, estimated
// from the source's checkpoints (the read API's FlowRunCheckpointList).
//
// An estimate, said so in the output: the new execution decides the prefix
// (flowrun/replay.h). The plan assumes the new code asks for the same
// checkpoints in the same order as the source did: reused are the source's
// completed checkpoints that finished before the source first asked for the
// cut (by finishedAt against the cut's startedAt, in completion order); live
// are the cut and everything the source ran from it on. A source that never
// asked for the cut: every completed checkpoint is listed as reused, with a
// warning (the replay reuses until the new code asks for the cut, and
// reports CutNotReached if it never does).
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace flowrun::plugin {

// {source, cut: {checkpoint, occurrence}, cutFound, estimate: true,
//  reused: [{name, occurrence, kind, usd, finishedAt, copied}], inheritedUSD,
//  live: [{name, occurrence, kind, status, usd}], sourceLiveUSD,
//  truncated} — usd as the API's decimal text; sums as exact decimal text.
// `truncated`: the list had more pages than were read.
nlohmann::json PlanReplay(const nlohmann::json& source_checkpoints, const std::string& source, const std::string& cut,
                          int occurrence);

// The plan for people: the cut, the reused table with the inherited total,
// the live table, the estimate note.
std::string RenderReplayPlan(const nlohmann::json& plan, bool wide);

}  // namespace flowrun::plugin
