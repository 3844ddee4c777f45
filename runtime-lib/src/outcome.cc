#include "flowrun/outcome.h"

#include <cstdio>

#include "flowrun/json_fields.h"
#include "flowrun/rfc3339.h"
#include "flowrun/utf8.h"

namespace flowrun {

using nlohmann::json;

int ExitCodeFor(const Outcome& o) {
  switch (o.kind) {
    case OutcomeKind::kSucceeded:
    case OutcomeKind::kWaiting:
    case OutcomeKind::kBudgetExceeded: return kExitOk;
    case OutcomeKind::kConfigError: return kExitConfigError;
    case OutcomeKind::kDatabaseUnavailable: return kExitDatabaseUnavailable;
    case OutcomeKind::kFenced: return kExitFenced;
    case OutcomeKind::kDivergence: return kExitDivergence;
    case OutcomeKind::kTerminated: return kExitTerminated;
    case OutcomeKind::kFailed:
    case OutcomeKind::kCancelled: return kExitFlowFailed;
  }
  return kExitFlowFailed;
}

namespace {

// The wire shape, written once: the encoder and the decoder below are its
// only readers and writers.
constexpr int kWireVersion = 1;

json UsageJson(const Usage& u) {
  json j = {{"usd", u.cost_usd}, {"calls", u.llm_calls}, {"in", u.input_tokens}, {"out", u.output_tokens}};
  if (u.cached_tokens) j["cached"] = u.cached_tokens;
  if (u.unknown_cost_calls) j["unpriced"] = u.unknown_cost_calls;
  return j;
}

json WaitJson(const OpenWait& w) {
  json j = {{"name", w.name},         {"occurrence", w.occurrence},
            {"question", w.question}, {"schema", w.schema},
            {"askedAt", FormatTime(w.asked_at)},
            {"onTimeout", std::string(OnTimeoutName(w.on_timeout))}};
  if (w.deadline) j["deadline"] = FormatTime(*w.deadline);
  return j;
}

// Optional fields: absent or mistyped reads as absent (flowrun/json_fields.h).
const json* Field(const json& j, const char* key) {
  const json& f = JsonField(j, key);
  return f.is_null() ? nullptr : &f;
}

Usage UsageFrom(const json* j) {
  Usage u;
  if (!j || !j->is_object()) return u;
  u.cost_usd = JsonNumber(*j, "usd");
  u.llm_calls = JsonInt(*j, "calls");
  u.input_tokens = JsonInt(*j, "in");
  u.output_tokens = JsonInt(*j, "out");
  u.cached_tokens = JsonInt(*j, "cached");
  u.unknown_cost_calls = JsonInt(*j, "unpriced");
  return u;
}

StatusOr<OpenWait> WaitFrom(const json& j) {
  if (!j.is_object()) return InvalidArgument("the outcome's wait is not an object");
  OpenWait w;
  w.name = JsonString(j, "name");
  if (w.name.empty()) return InvalidArgument("the outcome's wait has no name");
  w.occurrence = static_cast<int>(JsonInt(j, "occurrence", 1));
  w.question = JsonString(j, "question");
  if (const json* s = Field(j, "schema")) w.schema = *s;  // absent when cut to fit: PostgreSQL has it
  if (auto t = ParseTime(JsonString(j, "askedAt"))) w.asked_at = *t;
  w.deadline = ParseTime(JsonString(j, "deadline"));
  w.on_timeout = ParseOnTimeout(JsonString(j, "onTimeout")).value_or(OnTimeout::kFail);
  return w;
}

}  // namespace

std::string EncodeTerminationMessage(const Outcome& o, size_t limit) {
  const std::string kind(OutcomeKindName(o.kind));
  json j = {{"v", kWireVersion}, {"outcome", kind}, {"attempt", o.attempt}};
  if (o.reason != FailureReason::kNone) j["reason"] = std::string(FailureReasonName(o.reason));
  if (!o.error.empty()) j["error"] = o.error;
  if (o.wait) j["wait"] = WaitJson(*o.wait);
  if (o.budget_usd) j["budgetUSD"] = *o.budget_usd;
  j["spent"] = UsageJson(o.spent);
  j["runSpentUSD"] = o.run_spent_usd;
  j["saved"] = UsageJson(o.saved);
  j["checkpoints"] = {{"live", o.live_checkpoints}, {"cached", o.cached_checkpoints}};
  if (o.copied_checkpoints) j["checkpoints"]["copied"] = o.copied_checkpoints;
  if (o.result) j["result"] = *o.result;

  auto dump = [&] { return j.dump(-1, ' ', false, json::error_handler_t::replace); };
  std::string s = dump();
  if (s.size() <= limit) return s;
  j["truncated"] = true;
  j.erase("result");
  if ((s = dump()).size() <= limit) return s;
  if (j.contains("wait")) j["wait"].erase("schema");
  if ((s = dump()).size() <= limit) return s;
  // Shrink the free-text fields until it fits.
  for (size_t keep = 1024; keep >= 16; keep /= 2) {
    if (j.contains("wait")) j["wait"]["question"] = TruncateUtf8(o.wait->question, keep);
    if (!o.error.empty()) j["error"] = TruncateUtf8(o.error, keep);
    if ((s = dump()).size() <= limit) return s;
  }
  // Last resort: the typed words only. Always fits.
  json last = {{"v", kWireVersion}, {"outcome", kind}, {"attempt", o.attempt}, {"truncated", true}};
  if (o.reason != FailureReason::kNone) last["reason"] = std::string(FailureReasonName(o.reason));
  if (o.wait) last["wait"] = {{"name", TruncateUtf8(o.wait->name, 256)}, {"occurrence", o.wait->occurrence}};
  return last.dump(-1, ' ', false, json::error_handler_t::replace);
}

StatusOr<Outcome> DecodeTerminationMessage(const std::string& text) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("outcome") || !j["outcome"].is_string())
    return InvalidArgument("termination message is not a flowrun outcome");
  const std::string word = j["outcome"].get<std::string>();
  auto kind = ParseOutcomeKind(word);
  if (!kind) return Unimplemented("the agent reported an unknown outcome \"" + TruncateUtf8(word, 64) + "\"");
  Outcome o;
  o.kind = *kind;
  o.reason = ParseFailureReason(JsonString(j, "reason")).value_or(FailureReason::kNone);
  // An agent that failed always has a cause, even from a build without reasons.
  if (o.kind == OutcomeKind::kFailed && o.reason == FailureReason::kNone) o.reason = FailureReason::kFlowFailed;
  o.attempt = static_cast<int>(JsonInt(j, "attempt"));
  o.error = JsonString(j, "error");
  if (const json* w = Field(j, "wait")) {
    auto wait = WaitFrom(*w);
    if (!wait.ok()) return wait.status();
    o.wait = std::move(*wait);
  }
  if (const json* b = Field(j, "budgetUSD"); b && b->is_number()) o.budget_usd = b->get<double>();
  o.spent = UsageFrom(Field(j, "spent"));
  o.run_spent_usd = JsonNumber(j, "runSpentUSD");
  o.saved = UsageFrom(Field(j, "saved"));
  if (const json* c = Field(j, "checkpoints"); c && c->is_object()) {
    o.live_checkpoints = JsonInt(*c, "live");
    o.cached_checkpoints = JsonInt(*c, "cached");
    o.copied_checkpoints = JsonInt(*c, "copied");
  }
  if (const json* r = Field(j, "result")) o.result = *r;
  if (const json* t = Field(j, "truncated"); t && t->is_boolean()) o.truncated = t->get<bool>();
  return o;
}

std::optional<Outcome> OutcomeFromRunState(const RunState& run, const AttemptRecord& rec) {
  if (!rec.outcome || *rec.outcome == OutcomeKind::kFenced) return std::nullopt;
  Outcome o;
  o.kind = *rec.outcome;
  o.reason = rec.reason;
  if (o.kind == OutcomeKind::kFailed && o.reason == FailureReason::kNone) o.reason = FailureReason::kFlowFailed;
  o.attempt = rec.attempt;
  o.error = rec.error;
  if (o.kind == OutcomeKind::kWaiting) o.wait = run.open_wait;
  o.budget_usd = run.budget_usd;
  o.run_spent_usd = run.spent.cost_usd;
  o.saved = rec.saved;
  o.live_checkpoints = rec.live_checkpoints;
  o.cached_checkpoints = rec.cached_checkpoints;
  if (o.kind == OutcomeKind::kSucceeded) o.result = run.result;
  return o;
}

Status WriteTerminationMessage(const std::string& path, const Outcome& outcome) {
  std::string text = EncodeTerminationMessage(outcome);
  std::FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) return Unavailable("cannot open termination-message file " + path);
  size_t n = std::fwrite(text.data(), 1, text.size(), f);
  bool ok = n == text.size() && std::fflush(f) == 0;
  ok = (std::fclose(f) == 0) && ok;
  if (!ok) return Unavailable("cannot write termination-message file " + path);
  return Status::Ok();
}

}  // namespace flowrun
