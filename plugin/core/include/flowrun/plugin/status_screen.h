// `kubectl flowrun status <run>`: one screen about a run — phase and why,
// attempts with outcomes and reasons, the open wait (question, schema, who
// may answer, the command that answers it), spent / saved / budget, the most
// expensive LLM call, conditions and the run's recent Events.
//
// Inputs are what the adapters fetched: the FlowRun, its Events (core v1,
// any order), and the read API's summary (null when the API is not
// installed or not permitted: `summary_note` then says why, and the screen
// uses status.cost alone).
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "flowrun/plugin/format.h"

namespace flowrun::plugin {

struct StatusInput {
  nlohmann::json flowrun;
  std::vector<nlohmann::json> events;
  nlohmann::json summary;    // FlowRunSummary or null
  std::string summary_note;  // why there is no summary ("" when there is one)
};

// The most expensive call as one line ("gpt-4o in analyze#1: $0.0051"), from
// the summary, else status.cost.topCalls[0]; "" when neither has one.
std::string MostExpensiveCall(const StatusInput& in);
// -o json|yaml: {flowrun, events (newest last, at most `max_events`), summary}.
nlohmann::json StatusDocument(const StatusInput& in, size_t max_events = 10);
std::string RenderStatus(const StatusInput& in, TimePoint now, bool wide, size_t max_events = 10);

}  // namespace flowrun::plugin
