// The outcome of one execution: what the process tells Kubernetes through its
// termination-message file (compact JSON, at most 4 KiB as Kubernetes
// allows), and its exit code. The controller reads both.
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "flowrun/run_states.h"
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
  // SIGTERM: the "terminated" outcome (termination_signal.h). 128 + SIGTERM, what a
  // shell reports for a process ended by SIGTERM, so tools that read only the
  // exit code see the same thing.
  kExitTerminated = 143,
};

// One execution's outcome: what the agent writes to the termination message
// and (through RunStore::Finish) to the database, and what the controller
// reads back from either channel (DecodeTerminationMessage,
// OutcomeFromRunState) before deciding anything.
struct Outcome {
  OutcomeKind kind = OutcomeKind::kFailed;
  FailureReason reason = FailureReason::kNone;  // why, for kFailed
  int attempt = 0;
  std::string error;            // human-readable, for failures: never decided on
  std::optional<OpenWait> wait; // for waiting
  std::optional<double> budget_usd;
  Usage spent;                  // this execution's LLM spend
  double run_spent_usd = 0;     // the whole run's spend so far, all attempts
  Usage saved;                  // what this execution's cache hits avoided
  int64_t live_checkpoints = 0;
  int64_t cached_checkpoints = 0;
  // Replay: served from the source's snapshot in this execution (neither live
  // nor cached; "copied" in the message, only when not 0). Not in the
  // database's attempt record: OutcomeFromRunState leaves it 0 (GetRun's
  // ReplayInfo::copied_checkpoints has the run's total).
  int64_t copied_checkpoints = 0;
  std::optional<nlohmann::json> result;  // included only if it fits
  // Decoded messages only: the encoder dropped or cut fields to fit its limit
  // (PostgreSQL has the full data).
  bool truncated = false;
};

int ExitCodeFor(const Outcome& outcome);

// Compact JSON of at most `limit` bytes. When it would not fit, drops the
// result, then the wait's schema, then truncates the question and error, and
// sets "truncated": true — the full data is in PostgreSQL.
std::string EncodeTerminationMessage(const Outcome& outcome, size_t limit = 4096);

// Parses a termination message (the controller's side) into the same type the
// agent encoded. Errors: kInvalidArgument when the text is not a flowrun
// outcome (not JSON, no "outcome" word, a wait without a name);
// kUnimplemented when "outcome" is a word this build does not know (a newer
// agent): the message says which. Unknown extra fields are ignored.
StatusOr<Outcome> DecodeTerminationMessage(const std::string& text);

// The database's record of attempt `record` of `run`, as an Outcome: the
// controller's second channel, used when the termination message was lost.
// nullopt while that attempt is still running (or was fenced).
std::optional<Outcome> OutcomeFromRunState(const RunState& run, const AttemptRecord& record);

// Writes the message to `path` (created or truncated). A failure is returned,
// not thrown: the process still exits with the right code.
Status WriteTerminationMessage(const std::string& path, const Outcome& outcome);

}  // namespace flowrun
