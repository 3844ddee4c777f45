#include "flowrun/plugin/replay_plan.h"

#include <algorithm>
#include <cstdlib>

#include "flowrun/json_fields.h"
#include "flowrun/plugin/format.h"
#include "flowrun/plugin/table.h"

namespace flowrun::plugin {

using nlohmann::json;

namespace {

double Usd(const json& c) {
  const json& u = JsonField(c, "usd");
  if (u.is_string()) return std::strtod(u.get<std::string>().c_str(), nullptr);
  return u.is_number() ? u.get<double>() : 0;
}

int64_t Occurrence(const json& c) { return std::max<int64_t>(JsonInt(c, "occurrence"), 1); }

std::string Label(const json& c) {
  std::string s = JsonString(c, "name");
  if (Occurrence(c) > 1) s += "#" + std::to_string(Occurrence(c));
  return s;
}

}  // namespace

json PlanReplay(const json& list, const std::string& source, const std::string& cut, int occurrence) {
  if (occurrence < 1) occurrence = 1;
  const json& items = JsonField(list, "items");
  std::vector<json> rows;
  if (items.is_array()) rows.assign(items.begin(), items.end());
  std::string cut_start;
  bool found = false;
  for (const auto& c : rows)
    if (JsonString(c, "name") == cut && Occurrence(c) == occurrence) {
      found = true;
      cut_start = JsonString(c, "startedAt");
    }
  std::vector<json> reused, live;
  for (const auto& c : rows) {
    const bool is_cut = JsonString(c, "name") == cut && Occurrence(c) == occurrence;
    const std::string fin = JsonString(c, "finishedAt");
    // RFC 3339 UTC with fixed microseconds (the API's format) sorts as text.
    const bool before = !is_cut && JsonString(c, "status") == "completed" &&
                        (!found || cut_start.empty() || (!fin.empty() && fin <= cut_start));
    (before ? reused : live).push_back(c);
  }
  std::stable_sort(reused.begin(), reused.end(), [](const json& a, const json& b) {
    std::string fa = JsonString(a, "finishedAt"), fb = JsonString(b, "finishedAt");
    if (fa.empty() != fb.empty()) return !fa.empty();
    return fa < fb;
  });
  json r = json::array(), l = json::array();
  double inherited = 0, live_usd = 0;
  for (const auto& c : reused) {
    inherited += Usd(c);
    r.push_back({{"name", JsonString(c, "name")}, {"occurrence", Occurrence(c)}, {"kind", JsonString(c, "kind")},
                 {"usd", JsonField(c, "usd")}, {"finishedAt", JsonString(c, "finishedAt")},
                 {"copied", JsonField(c, "copied").is_boolean() && c["copied"].get<bool>()}});
  }
  for (const auto& c : live) {
    live_usd += Usd(c);
    l.push_back({{"name", JsonString(c, "name")}, {"occurrence", Occurrence(c)}, {"kind", JsonString(c, "kind")},
                 {"status", JsonString(c, "status")}, {"usd", JsonField(c, "usd")}});
  }
  return {{"source", source},
          {"cut", {{"checkpoint", cut}, {"occurrence", occurrence}}},
          {"cutFound", found},
          {"estimate", true},
          {"reused", r},
          {"inheritedUSD", ExactUsd(json(inherited)).empty() ? "0" : ExactUsd(json(inherited))},
          {"live", l},
          {"sourceLiveUSD", ExactUsd(json(live_usd)).empty() ? "0" : ExactUsd(json(live_usd))},
          {"truncated", !JsonString(JsonField(list, "metadata"), "continue").empty()}};
}

std::string RenderReplayPlan(const json& plan, bool wide) {
  const json& cut = JsonField(plan, "cut");
  std::string cut_label = JsonString(cut, "checkpoint");
  if (JsonInt(cut, "occurrence") > 1) cut_label += "#" + std::to_string(JsonInt(cut, "occurrence"));
  std::string out = "Replay of " + JsonString(plan, "source") + " from checkpoint " + cut_label +
                    " (an estimate: the new code decides what it asks for before the cut)\n";
  if (!JsonField(plan, "cutFound").is_boolean() || !plan["cutFound"].get<bool>())
    out += "warning: " + JsonString(plan, "source") + " never asked for " + cut_label +
           ": the replay reuses every checkpoint the new code asks for until it asks for the cut, and reports "
           "CutNotReached if it never does\n";
  Table r({{"#"}, {"checkpoint"}, {"kind"}, {"inherited usd"}, {"finished", true}, {"exact usd", true}});
  size_t i = 0;
  for (const auto& c : JsonField(plan, "reused"))
    r.AddRow({std::to_string(++i), Label(c), JsonString(c, "kind"), FormatUsd(JsonField(c, "usd")),
              JsonString(c, "finishedAt"), ExactUsd(JsonField(c, "usd"))});
  out += "\nReused from the source (copied, no new cost): " + std::to_string(i) + " checkpoint" + (i == 1 ? "" : "s") +
         ", inherited " + FormatUsd(JsonField(plan, "inheritedUSD")) + "\n";
  out += r.rows() ? r.Render(wide) : std::string("  none\n");
  Table l({{"checkpoint"}, {"kind"}, {"source status"}, {"source usd"}});
  for (const auto& c : JsonField(plan, "live"))
    l.AddRow({Label(c), JsonString(c, "kind"), JsonString(c, "status"), FormatUsd(JsonField(c, "usd"))});
  out += "\nRuns live (from the cut on; the source spent " + FormatUsd(JsonField(plan, "sourceLiveUSD")) +
         " on these), plus any checkpoint the new code adds:\n";
  out += l.rows() ? l.Render(wide) : std::string("  none recorded in the source\n");
  if (JsonField(plan, "truncated").is_boolean() && plan["truncated"].get<bool>())
    out += "(the source has more checkpoints than were read)\n";
  return out;
}

}  // namespace flowrun::plugin
