#include "flowrun/outcome.h"

#include <cstdio>
#include <fstream>

namespace flowrun {

int ExitCodeFor(const Outcome& o) {
  if (o.outcome == "succeeded" || o.outcome == "waiting" || o.outcome == "budget_exceeded") return kExitOk;
  if (o.outcome == "config_error") return kExitConfigError;
  if (o.outcome == "database_unavailable") return kExitDatabaseUnavailable;
  if (o.outcome == "fenced") return kExitFenced;
  if (o.outcome == "divergence") return kExitDivergence;
  return kExitFlowFailed;
}

namespace {

std::string Iso8601(TimePoint t) {
  std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

nlohmann::json UsageJson(const Usage& u) {
  nlohmann::json j = {{"usd", u.cost_usd}, {"calls", u.llm_calls},
                      {"in", u.input_tokens}, {"out", u.output_tokens}};
  if (u.cached_tokens) j["cached"] = u.cached_tokens;
  if (u.unknown_cost_calls) j["unpriced"] = u.unknown_cost_calls;
  return j;
}

// Cuts a UTF-8 string to at most `n` bytes without splitting a code point.
std::string Truncate(const std::string& s, size_t n) {
  if (s.size() <= n) return s;
  size_t cut = n;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
  return s.substr(0, cut) + "...";
}

}  // namespace

std::string EncodeTerminationMessage(const Outcome& o, size_t limit) {
  nlohmann::json j = {{"v", 1}, {"outcome", o.outcome}, {"attempt", o.attempt}};
  if (!o.error.empty()) j["error"] = o.error;
  if (o.wait) {
    nlohmann::json w = {{"name", o.wait->name}, {"occurrence", o.wait->occurrence},
                        {"question", o.wait->question}, {"schema", o.wait->schema},
                        {"askedAt", Iso8601(o.wait->asked_at)},
                        {"onTimeout", std::string(OnTimeoutName(o.wait->on_timeout))}};
    if (o.wait->deadline) w["deadline"] = Iso8601(*o.wait->deadline);
    j["wait"] = std::move(w);
  }
  if (o.budget_usd) j["budgetUSD"] = *o.budget_usd;
  j["spent"] = UsageJson(o.spent);
  j["runSpentUSD"] = o.run_spent_usd;
  j["saved"] = UsageJson(o.saved);
  j["checkpoints"] = {{"live", o.live_checkpoints}, {"cached", o.cached_checkpoints}};
  if (o.result) j["result"] = *o.result;

  auto dump = [&] { return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace); };
  std::string s = dump();
  if (s.size() <= limit) return s;
  j["truncated"] = true;
  j.erase("result");
  if ((s = dump()).size() <= limit) return s;
  if (j.contains("wait")) j["wait"].erase("schema");
  if ((s = dump()).size() <= limit) return s;
  // Shrink the free-text fields until it fits.
  for (size_t keep = 1024; keep >= 16; keep /= 2) {
    if (j.contains("wait")) j["wait"]["question"] = Truncate(o.wait->question, keep);
    if (!o.error.empty()) j["error"] = Truncate(o.error, keep);
    if ((s = dump()).size() <= limit) return s;
  }
  // Last resort: outcome only. Always fits.
  return nlohmann::json({{"v", 1}, {"outcome", o.outcome}, {"attempt", o.attempt}, {"truncated", true}}).dump();
}

StatusOr<nlohmann::json> DecodeTerminationMessage(const std::string& text) {
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("outcome") || !j["outcome"].is_string())
    return InvalidArgument("termination message is not a flowrun outcome");
  return j;
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
