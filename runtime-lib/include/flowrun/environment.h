// The environment contract between the controller (or a person running an
// agent locally) and the runtime library. docs/environment.md documents every
// variable; the controller sets exactly these.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "flowrun/status.h"

namespace flowrun {

// Who this run is. uid is the key of every row in PostgreSQL.
struct RunIdentity {
  std::string uid;        // FLOWRUN_RUN_UID (required)
  std::string name;       // FLOWRUN_RUN_NAME (default: uid)
  std::string namespace_; // FLOWRUN_RUN_NAMESPACE (default: "default")
  std::string flow;       // FLOWRUN_FLOW: groups runs for cost reporting (default: "default")
};

enum class DivergencePolicy { kFail, kRerun };
enum class OnTimeout { kFail, kUseDefault };

std::string_view OnTimeoutName(OnTimeout p);
std::optional<OnTimeout> ParseOnTimeout(std::string_view s);

struct RunEnvironment {
  RunIdentity run;
  int attempt = 1;                                   // FLOWRUN_ATTEMPT, >= 1
  nlohmann::json parameters = nlohmann::json::object();  // FLOWRUN_PARAMETERS, a JSON object
  // FLOWRUN_DATABASE_URL: a libpq connection string or URI. Empty means libpq
  // reads the standard PG* variables. Holds a secret: never log it.
  std::string database_url;
  std::string price_table_path;                      // FLOWRUN_PRICE_TABLE (optional)
  std::string termination_message_path = "/dev/termination-log";  // FLOWRUN_TERMINATION_MESSAGE_PATH
  std::optional<double> initial_budget_usd;          // FLOWRUN_BUDGET_USD
  size_t max_output_bytes = 4 << 20;                 // FLOWRUN_MAX_OUTPUT_BYTES
  DivergencePolicy on_divergence = DivergencePolicy::kFail;  // FLOWRUN_ON_DIVERGENCE=fail|rerun
  std::optional<std::chrono::seconds> default_wait_timeout;   // FLOWRUN_WAIT_TIMEOUT_SECONDS
  OnTimeout default_on_timeout = OnTimeout::kFail;   // FLOWRUN_WAIT_ON_TIMEOUT=fail|default
  int db_connect_attempts = 5;                       // FLOWRUN_DB_CONNECT_ATTEMPTS
  std::chrono::milliseconds db_retry_initial_backoff{200};  // FLOWRUN_DB_RETRY_BACKOFF_MS
  // OpenAI-compatible endpoint for Flow::llm(). The key is a secret: never logged.
  std::string llm_base_url = "https://api.openai.com/v1";  // OPENAI_BASE_URL
  std::string llm_api_key;                           // OPENAI_API_KEY
  std::string llm_model = "gpt-4o-mini";             // FLOWRUN_LLM_MODEL
};

// Reads the contract through `getenv` (injectable for tests). Returns
// InvalidArgument naming the variable for anything missing or malformed.
StatusOr<RunEnvironment> ReadRunEnvironment(
    const std::function<std::optional<std::string>(const std::string&)>& getenv);

// The same, from the process environment.
StatusOr<RunEnvironment> ReadRunEnvironmentFromProcess();

// Returns a libpq connection string with any password replaced by "***",
// for error messages and logs.
std::string RedactConnectionString(std::string_view conninfo);

}  // namespace flowrun
