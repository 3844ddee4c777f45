// `kubectl flowrun list`: FlowRuns as rows — every run (name, phase, attempt,
// cost, what it waits for), or with `waiting_only` the inbox of open
// questions (question, when asked, deadline, who may answer). Rows are JSON
// (what -o json prints) and render to a table; the inbox is sorted by
// deadline (soonest first; none last), then by when the question was asked.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "flowrun/plugin/format.h"

namespace flowrun::plugin {

struct ListOptions {
  bool waiting_only = false;
  bool all_namespaces = false;  // adds the NAMESPACE column
  bool wide = false;
};

// One row per FlowRun (only Waiting ones with waiting_only), as JSON:
// {namespace, name, phase, attempt, cost, costUSD, flow, budgetUSD, job,
//  replayOf (label flowrun.dev/replay-of, "" for no replay; a REPLAY-OF column with -o wide),
//  wait: {name, question, askedAt, deadline, schema} | null, whoMayAnswer}.
nlohmann::json ListRows(const std::vector<nlohmann::json>& flowruns, const ListOptions& o);
std::string RenderList(const nlohmann::json& rows, const ListOptions& o, TimePoint now);
// One line for a watch event of `-w` (the row without headers), "" when the
// run is filtered out.
std::string RenderListRow(const nlohmann::json& flowrun, const ListOptions& o, TimePoint now);

}  // namespace flowrun::plugin
