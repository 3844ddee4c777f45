#include "flowrun/environment.h"

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <regex>

namespace flowrun {

std::string_view OnTimeoutName(OnTimeout p) { return p == OnTimeout::kFail ? "fail" : "default"; }

std::optional<OnTimeout> ParseOnTimeout(std::string_view s) {
  if (s == "fail") return OnTimeout::kFail;
  if (s == "default") return OnTimeout::kUseDefault;
  return std::nullopt;
}

namespace {

Status Bad(const std::string& var, const std::string& why) {
  return InvalidArgument("environment variable " + var + " " + why);
}

StatusOr<long long> ParseInt(const std::string& var, const std::string& text, long long min,
                             long long max = INT_MAX) {
  errno = 0;
  char* end = nullptr;
  long long v = std::strtoll(text.c_str(), &end, 10);
  if (errno != 0 || end == text.c_str() || *end != '\0') return Bad(var, "is not an integer: '" + text + "'");
  if (v < min) return Bad(var, "must be >= " + std::to_string(min) + ", got " + text);
  if (v > max) return Bad(var, "must be <= " + std::to_string(max) + ", got " + text);
  return v;
}

}  // namespace

StatusOr<RunEnvironment> ReadRunEnvironment(
    const std::function<std::optional<std::string>(const std::string&)>& getenv) {
  RunEnvironment env;
  auto get = [&](const char* name) -> std::optional<std::string> {
    auto v = getenv(name);
    if (v && v->empty()) return std::nullopt;
    return v;
  };

  auto uid = get("FLOWRUN_RUN_UID");
  if (!uid) return Bad("FLOWRUN_RUN_UID", "is required (the run's identity; the controller sets it)");
  if (uid->size() > 128) return Bad("FLOWRUN_RUN_UID", "is longer than 128 characters");
  env.run.uid = *uid;
  env.run.name = get("FLOWRUN_RUN_NAME").value_or(*uid);
  env.run.namespace_ = get("FLOWRUN_RUN_NAMESPACE").value_or("default");
  env.run.flow = get("FLOWRUN_FLOW").value_or("default");

  if (auto a = get("FLOWRUN_ATTEMPT")) {
    FLOWRUN_ASSIGN_OR_RETURN(long long attempt, ParseInt("FLOWRUN_ATTEMPT", *a, 1));
    env.attempt = static_cast<int>(attempt);
  }
  if (auto p = get("FLOWRUN_PARAMETERS")) {
    auto parsed = nlohmann::json::parse(*p, nullptr, /*allow_exceptions=*/false);
    if (parsed.is_discarded()) return Bad("FLOWRUN_PARAMETERS", "is not valid JSON");
    if (!parsed.is_object()) return Bad("FLOWRUN_PARAMETERS", "must be a JSON object");
    env.parameters = std::move(parsed);
  }
  env.database_url = get("FLOWRUN_DATABASE_URL").value_or("");
  env.price_table_path = get("FLOWRUN_PRICE_TABLE").value_or("");
  if (auto t = get("FLOWRUN_TERMINATION_MESSAGE_PATH")) env.termination_message_path = *t;
  if (auto b = get("FLOWRUN_BUDGET_USD")) {
    char* end = nullptr;
    errno = 0;
    double v = std::strtod(b->c_str(), &end);
    if (errno != 0 || end == b->c_str() || *end != '\0' || !(v >= 0))
      return Bad("FLOWRUN_BUDGET_USD", "must be a non-negative number, got '" + *b + "'");
    env.initial_budget_usd = v;
  }
  if (auto m = get("FLOWRUN_MAX_OUTPUT_BYTES")) {
    FLOWRUN_ASSIGN_OR_RETURN(long long v, ParseInt("FLOWRUN_MAX_OUTPUT_BYTES", *m, 1, LLONG_MAX));
    env.max_output_bytes = static_cast<size_t>(v);
  }
  if (auto d = get("FLOWRUN_ON_DIVERGENCE")) {
    if (*d == "fail") env.on_divergence = DivergencePolicy::kFail;
    else if (*d == "rerun") env.on_divergence = DivergencePolicy::kRerun;
    else return Bad("FLOWRUN_ON_DIVERGENCE", "must be 'fail' or 'rerun', got '" + *d + "'");
  }
  if (auto t = get("FLOWRUN_WAIT_TIMEOUT_SECONDS")) {
    FLOWRUN_ASSIGN_OR_RETURN(long long v, ParseInt("FLOWRUN_WAIT_TIMEOUT_SECONDS", *t, 1));
    env.default_wait_timeout = std::chrono::seconds(v);
  }
  if (auto p = get("FLOWRUN_WAIT_ON_TIMEOUT")) {
    auto policy = ParseOnTimeout(*p);
    if (!policy) return Bad("FLOWRUN_WAIT_ON_TIMEOUT", "must be 'fail' or 'default', got '" + *p + "'");
    env.default_on_timeout = *policy;
  }
  if (auto n = get("FLOWRUN_DB_CONNECT_ATTEMPTS")) {
    FLOWRUN_ASSIGN_OR_RETURN(long long v, ParseInt("FLOWRUN_DB_CONNECT_ATTEMPTS", *n, 1));
    env.db_connect_attempts = static_cast<int>(v);
  }
  if (auto n = get("FLOWRUN_DB_RETRY_BACKOFF_MS")) {
    FLOWRUN_ASSIGN_OR_RETURN(long long v, ParseInt("FLOWRUN_DB_RETRY_BACKOFF_MS", *n, 0));
    env.db_retry_initial_backoff = std::chrono::milliseconds(v);
  }
  if (auto u = get("OPENAI_BASE_URL")) {
    if (u->rfind("http://", 0) != 0 && u->rfind("https://", 0) != 0)
      return Bad("OPENAI_BASE_URL", "must start with http:// or https://");
    env.llm_base_url = *u;
    while (!env.llm_base_url.empty() && env.llm_base_url.back() == '/') env.llm_base_url.pop_back();
  }
  env.llm_api_key = get("OPENAI_API_KEY").value_or("");
  if (auto m = get("FLOWRUN_LLM_MODEL")) env.llm_model = *m;
  return env;
}

StatusOr<RunEnvironment> ReadRunEnvironmentFromProcess() {
  return ReadRunEnvironment([](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    if (v == nullptr) return std::nullopt;
    return std::string(v);
  });
}

std::string RedactConnectionString(std::string_view conninfo) {
  std::string s(conninfo);
  if (s.find("://") != std::string::npos) {
    // URI: scheme://user:password@host...?password=... (query values end at '&').
    static const std::regex uri_password(R"(^(\w+://[^:/@]*:)[^@]*@)");
    s = std::regex_replace(s, uri_password, "$1***@");
    static const std::regex query_password(R"(([?&]password=)[^&]*)", std::regex::icase);
    return std::regex_replace(s, query_password, "$1***");
  }
  // Keyword form: password='quoted \' value' or password=value (ends at whitespace; '&' is data).
  static const std::regex kv_password(R"((password\s*=\s*)('([^'\\]|\\.)*'?|\S*))", std::regex::icase);
  return std::regex_replace(s, kv_password, "$1***");
}

}  // namespace flowrun
