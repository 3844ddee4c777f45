#include "flowrun/plugin/status_screen.h"

#include <algorithm>
#include <cstdlib>
#include <sstream>

#include "flowrun/json_fields.h"
#include "flowrun/plugin/answer_input.h"
#include "flowrun/plugin/answer_write.h"
#include "flowrun/plugin/table.h"
#include "flowrun/rfc3339.h"

namespace flowrun::plugin {

using nlohmann::json;

namespace {

std::string EventTime(const json& e) {
  for (const char* k : {"lastTimestamp", "eventTime", "firstTimestamp"}) {
    std::string t = JsonString(e, k);
    if (!t.empty()) return t;
  }
  return JsonString(e, "metadata", "creationTimestamp");
}

std::vector<json> RecentEvents(const std::vector<json>& events, size_t max) {
  std::vector<json> v = events;
  std::stable_sort(v.begin(), v.end(), [](const json& a, const json& b) {
    auto ta = ParseTime(EventTime(a)), tb = ParseTime(EventTime(b));
    return ta.value_or(TimePoint{}) < tb.value_or(TimePoint{});
  });
  if (v.size() > max) v.erase(v.begin(), v.end() - static_cast<std::ptrdiff_t>(max));
  return v;
}

std::string Occ(const json& name, const json& occ) {
  if (!name.is_string()) return "(outside checkpoints)";
  std::string s = name.get<std::string>();
  if (occ.is_number_integer() && occ.get<int64_t>() > 1) s += "#" + std::to_string(occ.get<int64_t>());
  return s;
}

std::string Duration(const std::string& start, const std::string& end, TimePoint now) {
  auto s = ParseTime(start);
  if (!s) return "";
  auto e = end.empty() ? std::optional<TimePoint>(now) : ParseTime(end);
  if (!e) return "";
  std::string d = FormatAge(std::chrono::duration_cast<std::chrono::seconds>(*e - *s));
  return end.empty() ? d + " (running)" : d;
}

// An example command that answers the wait, shaped by its schema.
std::string AnswerExample(const std::string& run, const OpenWait& w) {
  std::string cmd = "kubectl flowrun answer " + run + " " + w.name + " ";
  const json& s = w.schema;
  if (IsObjectSchema(s) && s.contains("properties") && s["properties"].is_object()) {
    std::string words;
    for (auto it = s["properties"].begin(); it != s["properties"].end(); ++it) {
      std::string t = JsonString(*it, "type");
      std::string v = t == "boolean" ? "true" : t == "integer" || t == "number" ? "1" : "…";
      words += (words.empty() ? "" : " ") + it.key() + "=" + v;
    }
    return cmd + words;
  }
  std::string t = JsonString(s, "type");
  if (t == "boolean") return cmd + "true";
  if (s.is_object() && s.contains("enum") && s["enum"].is_array() && !s["enum"].empty())
    return cmd + (s["enum"][0].is_string() ? s["enum"][0].get<std::string>() : s["enum"][0].dump());
  return cmd + "<value>        (or -i to be asked)";
}

// The replay's lineage: the read API's summary.replay when there is one,
// else status.replay (the controller's), else spec.replay (not prepared yet).
std::string ReplayLine(const StatusInput& in) {
  const json& fr = in.flowrun;
  const json& from = JsonField(JsonField(JsonField(fr, "spec"), "replay"), "from");
  json r = JsonField(in.summary, "replay");
  if (!r.is_object()) r = JsonField(JsonField(fr, "status"), "replay");
  if (!r.is_object()) {
    if (!from.is_object()) return "";
    return JsonString(from, "run") + " from " + JsonString(from, "checkpoint") + " (not prepared yet)";
  }
  const json& cut = JsonField(r, "cut");
  std::string cut_label = JsonString(cut, "checkpoint");
  if (JsonInt(cut, "occurrence") > 1) cut_label += "#" + std::to_string(JsonInt(cut, "occurrence"));
  json inherited = JsonField(r, "inheritedUSD");
  if (inherited.is_null()) inherited = JsonField(r, "inheritedUsd");
  const json& reached = JsonField(r, "cutReached");
  return JsonString(r, "sourceName") + " from " + cut_label + ": " + std::to_string(JsonInt(r, "copiedCheckpoints")) +
         " checkpoint(s) copied, inherited " + FormatUsd(inherited.is_null() ? json(0) : inherited) +
         (reached.is_boolean() && reached.get<bool>() ? ", cut reached" : ", cut not reached yet");
}

}  // namespace

std::string MostExpensiveCall(const StatusInput& in) {
  json call = JsonField(in.summary, "mostExpensiveCall");
  if (!call.is_object()) {
    const json& top = JsonField(JsonField(JsonField(in.flowrun, "status"), "cost"), "topCalls");
    if (top.is_array() && !top.empty()) call = top[0];
  }
  if (!call.is_object()) return "";
  std::string s = JsonString(call, "model") + " in " + Occ(JsonField(call, "checkpoint"), JsonField(call, "occurrence")) +
                  ": " + FormatUsd(JsonField(call, "usd"));
  if (call.contains("inputTokens"))
    s += " (" + std::to_string(JsonInt(call, "inputTokens")) + " tokens in, " +
         std::to_string(JsonInt(call, "outputTokens")) + " out)";
  return s;
}

json StatusDocument(const StatusInput& in, size_t max_events) {
  return {{"flowrun", in.flowrun}, {"events", RecentEvents(in.events, max_events)}, {"summary", in.summary}};
}

std::string RenderStatus(const StatusInput& in, TimePoint now, bool wide, size_t max_events) {
  const json& fr = in.flowrun;
  const json& st = JsonField(fr, "status");
  const json& spec = JsonField(fr, "spec");
  const json& cost = JsonField(st, "cost");
  const std::string name = JsonString(fr, "metadata", "name");
  std::ostringstream o;
  auto field = [&](const std::string& k, const std::string& v) {
    o << k << ":" << std::string(k.size() < 12 ? 12 - k.size() : 1, ' ') << v << "\n";
  };
  field("Name", name);
  field("Namespace", JsonString(fr, "metadata", "namespace"));
  field("Flow", JsonString(spec, "flow").empty() ? "default" : JsonString(spec, "flow"));
  std::string phase = JsonString(st, "phase");
  std::string message = JsonString(st, "message");
  field("Phase", (phase.empty() ? "(not reconciled yet)" : phase) + (message.empty() ? "" : " — " + message));
  field("Age", AgeOf(JsonString(fr, "metadata", "creationTimestamp"), now));
  if (JsonField(spec, "cancel").is_boolean() && spec["cancel"].get<bool>()) field("Cancel", "requested (spec.cancel)");
  if (std::string lineage = ReplayLine(in); !lineage.empty()) field("Replay of", lineage);

  // Money: the summary's exact decimal text when there is one, else status.cost.
  const json& totals = JsonField(in.summary, "totals");
  json spent = totals.is_object() ? JsonField(totals, "spentUSD") : JsonField(cost, "usd");
  json saved = totals.is_object() ? JsonField(totals, "savedUSD") : JsonField(cost, "savedUSD");
  json budget = JsonField(spec, "budgetUSD");
  std::string money = "spent " + FormatUsd(spent.is_null() ? json(0) : spent);
  if (!ExactUsd(spent).empty()) money += " (" + ExactUsd(spent) + ")";
  json inherited = totals.is_object() ? JsonField(totals, "inheritedUSD") : JsonField(cost, "inheritedUsd");
  if (!inherited.is_null() && std::strtod(ExactUsd(inherited).c_str(), nullptr) != 0)
    money += ", inherited " + FormatUsd(inherited) + " (copied from the source, not spent)";
  money += ", saved by the cache " + FormatUsd(saved.is_null() ? json(0) : saved);
  money += ", budget " + (budget.is_null() ? std::string("none") : FormatUsd(budget));
  if (budget.is_number() && budget.get<double>() > 0 && (spent.is_number() || spent.is_string())) {
    double sp = spent.is_number() ? spent.get<double>() : std::strtod(spent.get<std::string>().c_str(), nullptr);
    char pct[32];
    std::snprintf(pct, sizeof pct, " (%.0f%% used)", 100.0 * sp / budget.get<double>());
    money += pct;
  }
  field("Cost", money);
  field("LLM calls", std::to_string(JsonInt(cost, "llmCalls")) + " (tokens: " +
                         std::to_string(JsonInt(cost, "inputTokens")) + " in, " +
                         std::to_string(JsonInt(cost, "outputTokens")) + " out, " +
                         std::to_string(JsonInt(cost, "cachedTokens")) + " cached)");
  const json& cps = JsonField(st, "checkpoints");
  if (cps.is_object())
    field("Checkpoints", std::to_string(JsonInt(cps, "completed")) + " completed (" +
                             std::to_string(JsonInt(cps, "live")) + " run live, " +
                             std::to_string(JsonInt(cps, "cached")) + " from the cache)");
  std::string top = MostExpensiveCall(in);
  field("Top call", top.empty() ? (in.summary_note.empty() ? "none recorded" : "unknown (" + in.summary_note + ")") : top);

  auto w = OpenWaitOf(fr, "");
  const json& wait = JsonField(st, "wait");
  if (phase == "Waiting" && wait.is_object()) {
    o << "\nOpen wait:   " << JsonString(wait, "name") << "\n";
    o << "  Question:  " << JsonString(wait, "question") << "\n";
    o << "  Answer:    " << DescribeSchema(JsonField(wait, "schema")) << "\n";
    o << "  Asked:     " << AgeOf(JsonString(wait, "askedAt"), now) << " ago; deadline "
      << DeadlineOf(JsonString(wait, "deadline"), now);
    if (!JsonString(wait, "onTimeout").empty()) o << " (then: " << JsonString(wait, "onTimeout") << ")";
    o << "\n  Who:       " << WhoMayAnswer(fr) << "\n";
    if (w.ok()) o << "  Answer it: " << AnswerExample(name, *w) << "\n";
    else o << "  Note:      " << w.status().message() << "\n";
  }
  if (!JsonString(st, "result").empty()) o << "\nResult:      " << OneLine(JsonString(st, "result"), wide ? 4096 : 200) << "\n";

  const json& attempts = JsonField(st, "attempts");
  if (attempts.is_array() && !attempts.empty()) {
    o << "\nAttempts:\n";
    Table t({{"attempt"}, {"job"}, {"outcome"}, {"reason"}, {"started"}, {"took"}, {"message"}});
    for (const auto& a : attempts)
      t.AddRow({std::to_string(JsonInt(a, "attempt")), JsonString(a, "job"), JsonString(a, "outcome"),
                JsonString(a, "reason"), AgeOf(JsonString(a, "startTime"), now) + " ago",
                Duration(JsonString(a, "startTime"), JsonString(a, "endTime"), now),
                OneLine(JsonString(a, "message"), wide ? 256 : 60)});
    std::istringstream lines(t.Render(wide));
    for (std::string l; std::getline(lines, l);) o << "  " << l << "\n";
  }
  const json& conds = JsonField(st, "conditions");
  if (conds.is_array() && !conds.empty()) {
    o << "\nConditions:\n";
    Table t({{"type"}, {"status"}, {"reason"}, {"age"}, {"message"}});
    for (const auto& c : conds)
      t.AddRow({JsonString(c, "type"), JsonString(c, "status"), JsonString(c, "reason"),
                AgeOf(JsonString(c, "lastTransitionTime"), now), OneLine(JsonString(c, "message"), wide ? 512 : 80)});
    std::istringstream lines(t.Render(wide));
    for (std::string l; std::getline(lines, l);) o << "  " << l << "\n";
  }
  auto events = RecentEvents(in.events, max_events);
  o << "\nEvents:" << (events.empty() ? "      none\n" : "\n");
  if (!events.empty()) {
    Table t({{"age"}, {"type"}, {"reason"}, {"message"}});
    for (const auto& e : events) {
      std::string count = JsonInt(e, "count") > 1 ? " (x" + std::to_string(JsonInt(e, "count")) + ")" : "";
      t.AddRow({AgeOf(EventTime(e), now), JsonString(e, "type"), JsonString(e, "reason"),
                OneLine(JsonString(e, "message"), wide ? 1024 : 90) + count});
    }
    std::istringstream lines(t.Render(wide));
    for (std::string l; std::getline(lines, l);) o << "  " << l << "\n";
  }
  return o.str();
}

}  // namespace flowrun::plugin
