// RunStore: what one execution of a run writes and reads. The Flow core talks
// only to this interface; PostgresRunStore (postgres.h) implements it.
//
// Fencing: Begin() increments the run's epoch and every later write is
// conditional on the epoch still being ours. A write after a newer execution
// began returns kAborted ("fenced") and changes nothing.
//
// Errors: kUnavailable when the database stays unreachable after the
// implementation's bounded reconnects; kAborted when fenced; kInvalidArgument /
// kResourceExhausted for bad input. A write whose commit outcome is unknown is
// settled by re-reading before the call returns, never retried blindly.
//
// Thread safety: one RunStore belongs to one execution; calls must not overlap
// (Execution serializes them with its mutex).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "flowrun/llm_usage.h"
#include "flowrun/status.h"
#include "flowrun/store_types.h"

namespace flowrun {

struct FinishRequest {
  // Any kind but kFenced (a fenced execution records nothing). The run's
  // status becomes RunStatusAfter(outcome); the attempt keeps the kind.
  OutcomeKind outcome = OutcomeKind::kSucceeded;
  FailureReason reason = FailureReason::kNone;
  std::optional<nlohmann::json> result;
  std::string error;
  std::string open_wait;  // name of the wait, when outcome == waiting
  int64_t live_checkpoints = 0;
  int64_t cached_checkpoints = 0;
  int64_t reexecuted_checkpoints = 0;
  Usage saved;
};

class RunStore {
 public:
  virtual ~RunStore() = default;

  // Takes the fence (epoch + 1), creates the run row if needed, records the
  // attempt and loads every completed checkpoint. Call once, first. For a
  // prepared replay (RunAdmin::PrepareReplay) it also loads the snapshot, the
  // cut and the overrides into ExecutionStart::replay; which of its own rows
  // were copied is marked (CachedCheckpoint::copied). A run that is no replay
  // pays no extra round trip for this.
  virtual StatusOr<ExecutionStart> Begin(const RunIdentity& run, int attempt,
                                         const nlohmann::json& parameters,
                                         std::optional<double> initial_budget_usd) = 0;

  // Marks a checkpoint as running. Returns true when an earlier execution of
  // the same checkpoint was interrupted (started, neither completed nor
  // failed): the body is about to run again.
  virtual StatusOr<bool> CheckpointStarted(const CheckpointKey& key, CheckpointKind kind,
                                           const std::string& fingerprint, int try_number) = 0;

  // Stores a completed checkpoint's output. One statement; idempotent.
  // `place`: where the execution asked for it and its name-independent inputs
  // digest (rename detection, checkpoint_renames.h); the default stores
  // neither. Overrides repeat the default (a default argument binds statically).
  virtual Status CheckpointCompleted(const CheckpointKey& key, CheckpointKind kind,
                                     const std::string& fingerprint, const std::string& output_json,
                                     TimePoint started, TimePoint finished, const Usage& usage,
                                     const CheckpointPlace& place = {}) = 0;

  // Replay: records `key` as served from the snapshot — in one statement, a
  // completed row with copied = true whose usage columns hold `inherited`
  // (the source's usage: never spent, never in the budget or the metrics'
  // spend, summed into ReplayInfo::inherited) and `output_json` (what was
  // served: the source's output or the override), and a copy of every
  // snapshot artifact saved inside that checkpoint, with its version.
  // Idempotent: a repeat writes the same row and no second artifact (a
  // version this run already holds with the same sha256 and content type is
  // kept). kAlreadyExists, and nothing written, when this run holds one of
  // those versions with other content (saved live before the copy): the
  // message names each clashing artifact and version. kFailedPrecondition
  // when the run is no prepared replay.
  virtual Status CheckpointCopied(const CheckpointKey& key, CheckpointKind kind, const std::string& fingerprint,
                                  const std::string& output_json, const Usage& inherited) = 0;

  // Replay: records that the execution asked for the cut (replays.cut_reached
  // = true). Idempotent; fenced like every write.
  virtual Status ReplayCutReached() = 0;

  // Records a failed try of a checkpoint body (the history keeps every try).
  virtual Status CheckpointFailed(const CheckpointKey& key, int try_number, bool final_try,
                                  const std::string& message) = 0;

  // Records one finished LLM call in one step, attributed to a checkpoint
  // (nullopt: outside any).
  virtual Status RecordLlmCall(const std::optional<CheckpointKey>& checkpoint,
                               const PricedLlmCall& call) = 0;

  // Records an LLM call as started, before its request is sent: model and
  // estimated input tokens, state "started", cost unknown. Returns its id
  // (unique within this execution). A call that is never completed (the
  // process died during the request) stays "started": counted in
  // Usage::unfinished_calls, never in the usage totals.
  virtual StatusOr<int64_t> LlmCallStarted(const std::optional<CheckpointKey>& checkpoint,
                                           const std::string& model, int64_t estimated_input_tokens) = 0;
  // Completes a started call with its tokens, latency and price. Idempotent.
  virtual Status LlmCallCompleted(int64_t call_id, const PricedLlmCall& call) = 0;
  // A started call that got no response (state "failed", with the error):
  // kept for inspection, outside the usage totals. Idempotent.
  virtual Status LlmCallFailed(int64_t call_id, const std::string& error) = 0;

  // The run's budget and its spend so far, re-read from the database (a
  // person may have raised the budget meanwhile).
  virtual StatusOr<std::pair<std::optional<double>, double>> ReadBudget() = 0;

  // Resolves a wait: returns its answer if one is recorded (including an early
  // answer, validated now against the schema), applies an expired deadline's
  // policy, or records the pending question and returns kPending. An answer
  // returned here is also stored as the wait's completed checkpoint.
  virtual StatusOr<WaitResolution> ResolveWait(const WaitRequest& request) = 0;

  // Saves a new version of a named artifact; returns the version (1, 2, ...).
  virtual StatusOr<int> SaveArtifact(const std::string& name, const std::string& content_type,
                                     const std::string& data,
                                     const std::optional<CheckpointKey>& checkpoint) = 0;

  // Ends the execution: the run's status, result or error, and this attempt's
  // counters.
  virtual Status Finish(const FinishRequest& request) = 0;

  // How many writes had an unknown outcome (a lost acknowledgement) and were
  // settled by re-reading. Visible so such events are never silent.
  virtual int64_t in_doubt_writes_settled() const = 0;
};

}  // namespace flowrun
