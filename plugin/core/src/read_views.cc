#include "flowrun/plugin/read_views.h"

#include <cstdio>
#include <cstdlib>

#include "flowrun/json_fields.h"
#include "flowrun/plugin/table.h"

namespace flowrun::plugin {

using nlohmann::json;

namespace {

std::string Num(const json& o, const char* k) { return std::to_string(JsonInt(o, k)); }

std::string CheckpointName(const json& name, const json& occ) {
  if (!name.is_string()) return "(outside checkpoints)";
  std::string s = name.get<std::string>();
  if (occ.is_number_integer() && occ.get<int64_t>() > 1) s += "#" + std::to_string(occ.get<int64_t>());
  return s;
}

std::string Cut(const std::string& s, size_t n) { return OneLine(s, n); }

const json& Items(const json& list) { return JsonField(list, "items"); }

std::string MoreNote(const json& list) {
  std::string c = JsonString(JsonField(list, "metadata"), "continue");
  return c.empty() ? "" : "(more rows exist: use --limit or --all)\n";
}

}  // namespace

std::string RenderCheckpoints(const json& list, bool wide, TimePoint now) {
  Table t({{"checkpoint"}, {"kind"}, {"status"}, {"origin"}, {"attempt"}, {"took"}, {"calls"}, {"tokens in/out"},
           {"usd"}, {"started", true}, {"cached tokens", true}, {"reexecutions", true}, {"error", true}});
  const json& items = Items(list);
  if (items.is_array())
    for (const auto& c : items)
      t.AddRow({CheckpointName(JsonField(c, "name"), JsonField(c, "occurrence")), JsonString(c, "kind"),
                JsonString(c, "status"), JsonString(c, "origin"), Num(c, "attempt"), FormatMillis(JsonField(c, "durationMs")),
                Num(c, "llmCalls"), Num(c, "inputTokens") + "/" + Num(c, "outputTokens"), FormatUsd(JsonField(c, "usd")),
                AgeOf(JsonString(c, "startedAt"), now), Num(c, "cachedTokens"), Num(c, "reexecutions"),
                Cut(JsonString(c, "error"), 120)});
  if (t.rows() == 0) return "no checkpoints recorded\n";
  return t.Render(wide) + MoreNote(list);
}

std::optional<CostsBy> ParseCostsBy(const std::string& s) {
  if (s.empty()) return CostsBy::kAll;
  if (s == "model") return CostsBy::kModel;
  if (s == "checkpoint") return CostsBy::kCheckpoint;
  if (s == "call" || s == "calls") return CostsBy::kCall;
  return std::nullopt;
}

std::string RenderCosts(const json& costs, const json& calls, CostsBy by, size_t top, bool wide) {
  std::string out;
  out += "Spent " + FormatUsd(JsonField(costs, "spentUSD")) + " (" + ExactUsd(JsonField(costs, "spentUSD")) +
         ") in " + Num(costs, "llmCalls") + " LLM calls";
  if (JsonInt(costs, "unpricedCalls") > 0) out += ", " + Num(costs, "unpricedCalls") + " without a price (not counted)";
  out += "; saved by the cache " + FormatUsd(JsonField(costs, "savedUSD"));
  json budget = JsonField(costs, "budgetUSD");
  out += "; budget " + (budget.is_null() ? std::string("none") : FormatUsd(budget)) + "\n";
  auto limit = [&](const json& a) {
    json v = a.is_array() ? a : json::array();
    if (top > 0 && v.size() > top) v.erase(v.begin() + static_cast<std::ptrdiff_t>(top), v.end());
    return v;
  };
  if (by == CostsBy::kAll || by == CostsBy::kModel) {
    Table t({{"model"}, {"calls"}, {"tokens in"}, {"tokens out"}, {"cached"}, {"usd"}, {"unpriced", true}, {"exact usd", true}});
    for (const auto& m : limit(JsonField(costs, "byModel")))
      t.AddRow({JsonString(m, "model"), Num(m, "llmCalls"), Num(m, "inputTokens"), Num(m, "outputTokens"),
                Num(m, "cachedTokens"), FormatUsd(JsonField(m, "usd")), Num(m, "unpricedCalls"), ExactUsd(JsonField(m, "usd"))});
    out += "\nBy model:\n" + (t.rows() ? t.Render(wide) : std::string("  none\n"));
  }
  if (by == CostsBy::kAll || by == CostsBy::kCheckpoint) {
    Table t({{"checkpoint"}, {"calls"}, {"tokens in"}, {"tokens out"}, {"cached"}, {"usd"}, {"unpriced", true},
             {"exact usd", true}});
    for (const auto& c : limit(JsonField(costs, "byCheckpoint")))
      t.AddRow({CheckpointName(JsonField(c, "checkpoint"), JsonField(c, "occurrence")), Num(c, "llmCalls"),
                Num(c, "inputTokens"), Num(c, "outputTokens"), Num(c, "cachedTokens"), FormatUsd(JsonField(c, "usd")),
                Num(c, "unpricedCalls"), ExactUsd(JsonField(c, "usd"))});
    out += "\nBy checkpoint:\n" + (t.rows() ? t.Render(wide) : std::string("  none\n"));
    if (JsonField(costs, "byCheckpointTruncated").is_boolean() && costs["byCheckpointTruncated"].get<bool>())
      out += "(more checkpoints exist: raise --top)\n";
  }
  if ((by == CostsBy::kAll || by == CostsBy::kCall) && calls.is_object()) {
    Table t({{"#"}, {"model"}, {"checkpoint"}, {"attempt"}, {"tokens in"}, {"tokens out"}, {"cached"}, {"usd"},
             {"latency"}, {"exact usd", true}, {"price", true}, {"at", true}});
    size_t i = 0;
    for (const auto& c : limit(Items(calls)))
      t.AddRow({std::to_string(++i), JsonString(c, "model"), CheckpointName(JsonField(c, "checkpoint"), JsonField(c, "occurrence")),
                Num(c, "attempt"), Num(c, "inputTokens"), Num(c, "outputTokens"), Num(c, "cachedTokens"),
                FormatUsd(JsonField(c, "usd")), FormatMillis(JsonField(c, "latencyMs")), ExactUsd(JsonField(c, "usd")),
                JsonString(c, "priceSource"), JsonString(c, "at")});
    out += std::string("\n") + (by == CostsBy::kCall ? "Calls, most expensive first:\n" : "Most expensive calls:\n") +
           (t.rows() ? t.Render(wide) : std::string("  none\n"));
  }
  return out;
}

std::string FormatBytes(int64_t n) {
  char buf[32];
  if (n < 1024) return std::to_string(n) + " B";
  if (n < 1024 * 1024) std::snprintf(buf, sizeof buf, "%.1f KiB", n / 1024.0);
  else if (n < 1024LL * 1024 * 1024) std::snprintf(buf, sizeof buf, "%.1f MiB", n / 1048576.0);
  else std::snprintf(buf, sizeof buf, "%.1f GiB", n / 1073741824.0);
  return buf;
}

std::string RenderArtifacts(const json& list, bool wide, TimePoint now) {
  Table t({{"name"}, {"version"}, {"content type"}, {"size"}, {"checkpoint"}, {"created"}, {"sha256", true}});
  const json& items = Items(list);
  if (items.is_array())
    for (const auto& a : items) {
      std::string sha = JsonString(a, "sha256");
      t.AddRow({JsonString(a, "name"), Num(a, "version"), JsonString(a, "contentType"), FormatBytes(JsonInt(a, "sizeBytes")),
                JsonString(a, "checkpoint"), AgeOf(JsonString(a, "createdAt"), now) + " ago", sha});
    }
  if (t.rows() == 0) return "no artifacts recorded\n";
  return t.Render(wide) + MoreNote(list);
}

std::string RenderDiff(const json& diff, bool wide) {
  std::string self = JsonString(diff, "metadata", "name");
  std::string other = JsonString(JsonField(diff, "other"), "name");
  const json& spent = JsonField(diff, "spentUSD");
  std::string out = self + " vs " + other + ": spent " + FormatUsd(JsonField(spent, "this")) + " vs " +
                    FormatUsd(JsonField(spent, "other")) + " (delta " + ExactUsd(JsonField(spent, "delta")) + ")\n";
  const json& inherited = JsonField(diff, "inheritedUSD");
  auto nonzero = [](const json& v) { return v.is_string() && std::strtod(v.get<std::string>().c_str(), nullptr) != 0; };
  if (nonzero(JsonField(inherited, "this")) || nonzero(JsonField(inherited, "other")))
    out += "inherited (copied from a source, not spent): " + FormatUsd(JsonField(inherited, "this")) + " vs " +
           FormatUsd(JsonField(inherited, "other")) + "\n";
  // A replay and its source: what was reused and what the recomputed part cost.
  const json& lineage = JsonField(diff, "lineage");
  const bool replay = lineage.is_object();
  if (replay) {
    const json& cut = JsonField(lineage, "cut");
    std::string cut_label = JsonString(cut, "checkpoint");
    if (JsonInt(cut, "occurrence") > 1) cut_label += "#" + std::to_string(JsonInt(cut, "occurrence"));
    const json& rc = JsonField(lineage, "recomputedUSD");
    out += JsonString(lineage, "replayName") + " replays " + JsonString(lineage, "sourceName") + " from " + cut_label +
           (JsonField(lineage, "cutReached").is_boolean() && lineage["cutReached"].get<bool>() ? ""
                                                                                                : " (cut not reached)") +
           ": reused " + Num(lineage, "reusedCheckpoints") + " checkpoint(s), inherited " +
           FormatUsd(JsonField(lineage, "inheritedUSD")) + "; recomputed " + Num(lineage, "recomputedCheckpoints") +
           ": " + FormatUsd(JsonField(rc, "replay")) + " now vs " + FormatUsd(JsonField(rc, "source")) +
           " in the source (delta " + ExactUsd(JsonField(rc, "delta")) + ")\n";
  }
  std::vector<Column> cols = {{"checkpoint"}, {"state"}};
  if (replay) cols.push_back({"reuse"});
  for (const char* h : {"this", "other", "output", "usd delta"}) cols.push_back({h});
  Table t(cols);
  size_t same = 0;
  auto side = [](const json& s) {
    if (!s.is_object()) return std::string("-");
    bool copied = JsonField(s, "copied").is_boolean() && s["copied"].get<bool>();
    return JsonString(s, "status") + " " + FormatUsd(JsonField(s, "usd")) + (copied ? " (copied)" : "");
  };
  const json& cps = JsonField(diff, "checkpoints");
  if (cps.is_array())
    for (const auto& c : cps) {
      std::string state = JsonString(c, "state");
      std::string reuse = JsonString(c, "reuse");
      // Unchanged rows are counted, not listed; a replay's reused and
      // recomputed ones are the point of the diff and always listed.
      if (state == "same" && !wide && reuse.empty()) {
        ++same;
        continue;
      }
      const json& eq = JsonField(c, "outputEqual");
      std::vector<std::string> cells = {CheckpointName(JsonField(c, "name"), JsonField(c, "occurrence")), state};
      if (replay) cells.push_back(reuse.empty() ? "-" : reuse);
      cells.push_back(side(JsonField(c, "this")));
      cells.push_back(side(JsonField(c, "other")));
      cells.push_back(eq.is_boolean() ? (eq.get<bool>() ? "equal" : "differs") : "-");
      cells.push_back(ExactUsd(JsonField(c, "usdDelta")).empty() ? "-" : ExactUsd(JsonField(c, "usdDelta")));
      t.AddRow(cells);
    }
  out += "\nCheckpoints:\n";
  out += t.rows() ? t.Render(wide) : std::string("  no differences\n");
  if (same > 0) out += "(" + std::to_string(same) + " checkpoint" + (same == 1 ? "" : "s") + " the same; -o wide lists them)\n";
  if (JsonField(diff, "truncated").is_boolean() && diff["truncated"].get<bool>()) out += "(more checkpoints exist)\n";
  Table a({{"artifact"}, {"state"}, {"this version"}, {"other version"}, {"this sha256", true}, {"other sha256", true}});
  const json& arts = JsonField(diff, "artifacts");
  if (arts.is_array())
    for (const auto& x : arts) {
      auto ver = [&](const char* k) { return JsonField(x, k).is_number() ? Num(x, k) : std::string("-"); };
      a.AddRow({JsonString(x, "name"), JsonString(x, "state"), ver("thisVersion"), ver("otherVersion"),
                JsonString(x, "thisSha256"), JsonString(x, "otherSha256")});
    }
  out += "\nArtifacts:\n";
  out += a.rows() ? a.Render(wide) : std::string("  none\n");
  return out;
}

}  // namespace flowrun::plugin
