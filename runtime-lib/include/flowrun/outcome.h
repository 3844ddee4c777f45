// The outcome of one execution: what the process tells Kubernetes through its
// termination-message file (compact JSON, at most 4 KiB as Kubernetes
// allows), and its exit code. The controller reads both.
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "flowrun/status.h"
#include "flowrun/store_types.h"

namespace flowrun {

// Exit codes of an agent process. Waiting and budget suspension exit 0 so the
// Job completes and the pod releases its compute.
enum ExitCode : int {
  kExitOk = 0,            // succeeded, waiting, budget_exceeded
  kExitFlowFailed = 1,    // a checkpoint failed finally, the flow threw, or a wait timed out (fail policy)
  kExitConfigError = 2,   // missing or malformed environment, price table, connection string
  kExitDatabaseUnavailable = 3,  // PostgreSQL unreachable after bounded retries
  kExitFenced = 4,        // a newer execution of the same run took over; nothing was written
  kExitDivergence = 5,    // a resumed run no longer matches its recorded checkpoints
};

struct Outcome {
  // succeeded | failed | waiting | budget_exceeded | fenced | divergence | config_error | database_unavailable
  std::string outcome;
  int attempt = 0;
  std::string error;            // human-readable, for failures
  std::optional<OpenWait> wait; // for waiting
  std::optional<double> budget_usd;
  Usage spent;                  // this execution's LLM spend
  double run_spent_usd = 0;     // the whole run's spend so far, all attempts
  Usage saved;                  // what this execution's cache hits avoided
  int64_t live_checkpoints = 0;
  int64_t cached_checkpoints = 0;
  std::optional<nlohmann::json> result;  // included only if it fits
};

int ExitCodeFor(const Outcome& outcome);

// Compact JSON of at most `limit` bytes. When it would not fit, drops the
// result, then the wait's schema, then truncates the question and error, and
// sets "truncated": true — the full data is in PostgreSQL.
std::string EncodeTerminationMessage(const Outcome& outcome, size_t limit = 4096);

// Parses a termination message (the controller's side).
StatusOr<nlohmann::json> DecodeTerminationMessage(const std::string& text);

// Writes the message to `path` (created or truncated). A failure is returned,
// not thrown: the process still exits with the right code.
Status WriteTerminationMessage(const std::string& path, const Outcome& outcome);

}  // namespace flowrun
