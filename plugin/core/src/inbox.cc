#include "flowrun/plugin/inbox.h"

#include <algorithm>

#include "flowrun/json_fields.h"
#include "flowrun/plugin/answer_write.h"
#include "flowrun/plugin/table.h"

namespace flowrun::plugin {

using nlohmann::json;

namespace {

json Row(const json& fr) {
  const json& st = JsonField(fr, "status");
  const json& spec = JsonField(fr, "spec");
  const json& cost = JsonField(st, "cost");
  json row = {{"namespace", JsonString(fr, "metadata", "namespace")},
              {"name", JsonString(fr, "metadata", "name")},
              {"phase", JsonString(st, "phase")},
              {"attempt", JsonInt(st, "attempt")},
              {"cost", JsonString(cost, "display")},
              {"costUSD", JsonField(cost, "usd")},
              {"flow", JsonString(spec, "flow")},
              {"budgetUSD", JsonField(spec, "budgetUSD")},
              {"job", JsonString(st, "currentJob")},
              {"createdAt", JsonString(fr, "metadata", "creationTimestamp")},
              {"replayOf", JsonString(JsonField(JsonField(fr, "metadata"), "labels"), "flowrun.dev/replay-of")},
              {"wait", nullptr},
              {"whoMayAnswer", WhoMayAnswer(fr)}};
  const json& w = JsonField(st, "wait");
  if (row["phase"] == "Waiting" && w.is_object())
    row["wait"] = {{"name", JsonString(w, "name")},       {"question", JsonString(w, "question")},
                   {"askedAt", JsonString(w, "askedAt")}, {"deadline", JsonString(w, "deadline")},
                   {"onTimeout", JsonString(w, "onTimeout")}, {"schema", JsonField(w, "schema")}};
  return row;
}

std::vector<Column> Columns(const ListOptions& o) {
  std::vector<Column> c;
  if (o.all_namespaces) c.push_back({"namespace"});
  if (o.waiting_only) {
    for (const char* h : {"name", "wait", "question", "asked", "deadline", "who may answer"}) c.push_back({h});
    c.push_back({"cost", true});
    c.push_back({"on timeout", true});
  } else {
    for (const char* h : {"name", "phase", "attempt", "cost", "waiting-for", "age"}) c.push_back({h});
    c.push_back({"flow", true});
    c.push_back({"budget", true});
    c.push_back({"job", true});
    c.push_back({"replay-of", true});
  }
  return c;
}

std::vector<std::string> Cells(const json& row, const ListOptions& o, TimePoint now) {
  std::vector<std::string> cells;
  if (o.all_namespaces) cells.push_back(row.value("namespace", ""));
  const json& w = row["wait"];
  auto cost = row.value("cost", "");
  if (cost.empty()) cost = "-";
  if (o.waiting_only) {
    cells.push_back(row.value("name", ""));
    cells.push_back(JsonString(w, "name"));
    cells.push_back(OneLine(JsonString(w, "question"), o.wide ? 200 : 60));
    cells.push_back(AgeOf(JsonString(w, "askedAt"), now));
    cells.push_back(DeadlineOf(JsonString(w, "deadline"), now));
    cells.push_back(OneLine(row.value("whoMayAnswer", ""), o.wide ? 200 : 50));
    cells.push_back(cost);
    cells.push_back(JsonString(w, "onTimeout"));
  } else {
    cells.push_back(row.value("name", ""));
    cells.push_back(row.value("phase", "").empty() ? "-" : row.value("phase", ""));
    cells.push_back(std::to_string(row.value("attempt", int64_t{0})));
    cells.push_back(cost);
    cells.push_back(w.is_object() ? JsonString(w, "name") : "");
    cells.push_back(AgeOf(row.value("createdAt", ""), now));
    cells.push_back(row.value("flow", ""));
    cells.push_back(row["budgetUSD"].is_null() ? "-" : FormatUsd(row["budgetUSD"]));
    cells.push_back(row.value("job", ""));
    cells.push_back(row.value("replayOf", ""));
  }
  return cells;
}

}  // namespace

json ListRows(const std::vector<json>& flowruns, const ListOptions& o) {
  json rows = json::array();
  for (const auto& fr : flowruns) {
    json r = Row(fr);
    if (o.waiting_only && r["wait"].is_null()) continue;
    rows.push_back(std::move(r));
  }
  std::vector<json> v(rows.begin(), rows.end());
  if (o.waiting_only) {
    std::stable_sort(v.begin(), v.end(), [](const json& a, const json& b) {
      std::string da = JsonString(a["wait"], "deadline"), db = JsonString(b["wait"], "deadline");
      if (da.empty() != db.empty()) return !da.empty();  // with a deadline first
      if (da != db) return da < db;                      // RFC 3339 UTC sorts as text
      return JsonString(a["wait"], "askedAt") < JsonString(b["wait"], "askedAt");
    });
  } else {
    std::stable_sort(v.begin(), v.end(), [](const json& a, const json& b) {
      return std::make_pair(a.value("namespace", ""), a.value("name", "")) <
             std::make_pair(b.value("namespace", ""), b.value("name", ""));
    });
  }
  return json(v);
}

std::string RenderList(const json& rows, const ListOptions& o, TimePoint now) {
  Table t(Columns(o));
  for (const auto& r : rows) t.AddRow(Cells(r, o, now));
  return t.Render(o.wide);
}

std::string RenderListRow(const json& fr, const ListOptions& o, TimePoint now) {
  json r = Row(fr);
  if (o.waiting_only && r["wait"].is_null()) return "";
  Table t(Columns(o));
  t.AddRow(Cells(r, o, now));
  std::string s = t.Render(o.wide);
  // Drop the header line: -w prints rows under the first listing's header.
  auto nl = s.find('\n');
  return nl == std::string::npos ? s : s.substr(nl + 1);
}

}  // namespace flowrun::plugin
