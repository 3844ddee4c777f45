// Value types shared by the executor's RunStore and the controller's RunAdmin.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "flowrun/environment.h"
#include "flowrun/run_states.h"

namespace flowrun {

using TimePoint = std::chrono::system_clock::time_point;

// A checkpoint's identity within a run: its name and which call of that name
// (1-based) in one execution of the flow.
struct CheckpointKey {
  std::string name;
  int occurrence = 1;
  auto operator<=>(const CheckpointKey&) const = default;
};

enum class CheckpointKind { kStep, kWait };
std::string_view CheckpointKindName(CheckpointKind k);

// LLM spend attributed to one checkpoint execution or one run.
struct Usage {
  int64_t llm_calls = 0;
  int64_t input_tokens = 0;
  int64_t output_tokens = 0;
  int64_t cached_tokens = 0;
  double cost_usd = 0;             // sum of the calls whose cost is known
  int64_t unknown_cost_calls = 0;  // calls priced "unknown" (not in cost_usd)
  // Calls recorded as started that never completed (the process died during
  // the request): billed by the provider, cost unknown. Not in llm_calls,
  // the token counts, cost_usd or unknown_cost_calls.
  int64_t unfinished_calls = 0;
  Usage& operator+=(const Usage& o);
};

// Where an execution asked for a checkpoint, and a digest of its inputs that
// leaves the name out (migration 6): what tells a renamed checkpoint from a
// new one (runtime-lib/src/checkpoint_renames.h). Unknown: 0 / empty.
struct CheckpointPlace {
  int position = 0;           // 1-based reservation order within its execution
  std::string inputs_digest;  // InputsDigest(inputs); empty: no inputs
};

// A completed checkpoint, as loaded at the start of an execution.
struct CachedCheckpoint {
  CheckpointKind kind = CheckpointKind::kStep;
  std::string fingerprint;
  nlohmann::json output;
  int attempt = 0;  // the attempt that computed it
  Usage usage;      // what computing it cost: what serving it from cache saves
  // Served from a replay's snapshot (flowrun/replay.h): `usage` is the
  // source's, inherited; serving this row again saves nothing this run paid.
  bool copied = false;
  CheckpointPlace place;  // unknown for rows older than migration 6 and for waits
};

// Replay (semantics and the request: flowrun/replay.h).
// Where a replay cuts: the first checkpoint that runs live.
struct ReplayCut {
  std::string name;     // a checkpoint's name (or its key= identity)
  int occurrence = 1;   // the n-th time the execution asks for that name
};

// What the execution of a prepared replay starts from, besides its own rows:
// the snapshot of the source's completed checkpoints, the cut and the output
// overrides (RunStore::Begin loads it; absent for a run that is no replay).
struct ReplaySnapshot {
  std::string source_run_uid;  // for messages
  ReplayCut cut;
  bool cut_reached = false;  // an earlier execution already recorded reaching the cut
  std::map<CheckpointKey, CachedCheckpoint> checkpoints;  // the source's, by identity
  // Checkpoint name -> the output served instead of the source's (every
  // occurrence of that name served from the snapshot).
  std::map<std::string, nlohmann::json> output_overrides;
};

// Everything an execution needs at start, read after taking the fence.
struct ExecutionStart {
  int64_t epoch = 0;  // the fencing token: every write of this execution is conditional on it
  std::map<CheckpointKey, CachedCheckpoint> completed;
  std::optional<double> budget_usd;
  double spent_usd = 0;
  std::optional<ReplaySnapshot> replay;  // when the run is a prepared replay
};

// What the executor reports when it asks for a wait's answer.
struct WaitRequest {
  CheckpointKey key;
  std::string fingerprint;
  std::string question;
  nlohmann::json schema = nlohmann::json::object();
  std::optional<std::chrono::seconds> timeout;
  OnTimeout on_timeout = OnTimeout::kFail;
  std::optional<nlohmann::json> default_answer;
};

struct WaitResolution {
  enum class Kind { kAnswered, kPending, kTimedOutFail };
  Kind kind = Kind::kPending;
  nlohmann::json answer;                 // kAnswered
  std::string answered_by;               // "human:<who>", "timeout-default", ...
  std::optional<TimePoint> deadline;     // kPending
  std::string rejected_early_answer;     // reasons, when an early answer failed validation
};

// The open question of a waiting run, as the controller shows it.
struct OpenWait {
  std::string name;
  int occurrence = 1;
  std::string question;
  nlohmann::json schema;
  TimePoint asked_at;
  std::optional<TimePoint> deadline;
  OnTimeout on_timeout = OnTimeout::kFail;
  std::optional<nlohmann::json> default_answer;
};

struct AttemptRecord {
  int64_t epoch = 0;
  int attempt = 0;
  TimePoint started_at;
  std::optional<TimePoint> finished_at;
  std::optional<OutcomeKind> outcome;  // nullopt while the attempt runs (the database's "running")
  FailureReason reason = FailureReason::kNone;
  std::string error;
  int64_t live_checkpoints = 0;
  int64_t cached_checkpoints = 0;
  int64_t reexecuted_checkpoints = 0;
  Usage saved;  // LLM spend the cache avoided in this attempt
};

struct CheckpointFailure {
  std::string name;
  int occurrence = 0;
  int attempt = 0;
  int try_number = 0;
  std::string message;
  TimePoint at;
};

// What the store holds about a prepared replay (RunState::replay).
struct ReplayInfo {
  std::string source_run_uid, source_name;
  ReplayCut cut;
  TimePoint prepared_at{};
  int64_t snapshot_checkpoints = 0;  // completed source rows snapshotted
  int64_t copied_checkpoints = 0;    // served from the snapshot so far
  Usage inherited;                   // usage of the copied checkpoints
  bool cut_reached = false;
  std::map<std::string, nlohmann::json> output_overrides;
};

struct ModelUsage {
  std::string model;
  Usage usage;
};

// One priced LLM call as RunState::top_calls holds it.
struct CallCost {
  std::optional<CheckpointKey> checkpoint;  // absent: made outside any checkpoint
  std::string model;
  int attempt = 0;
  int64_t input_tokens = 0, output_tokens = 0, cached_tokens = 0;
  double latency_ms = 0;
  double cost_usd = 0;
};

// How many entries RunState's spend summaries hold (status.cost.byModel and
// topCalls; the CRD's maxItems): the store's read is bounded by them.
inline constexpr int kRunStateTopModels = 5;
inline constexpr int kRunStateTopCalls = 3;

// A run's state as the controller (or flowrunctl) reads it.
struct RunState {
  std::string uid, namespace_, name, flow;
  RunStatus status = RunStatus::kPending;
  FailureReason failure_reason = FailureReason::kNone;  // for kFailed
  int64_t epoch = 0;
  int attempt = 0;
  std::optional<double> budget_usd;
  std::optional<OpenWait> open_wait;
  std::optional<nlohmann::json> result;
  std::string error;
  Usage spent;
  Usage saved;  // summed over attempts
  int64_t checkpoints_completed = 0;
  int64_t live_checkpoints = 0;    // summed over attempts
  int64_t cached_checkpoints = 0;  // summed over attempts
  int64_t reexecuted_checkpoints = 0;
  std::vector<AttemptRecord> attempts;
  std::optional<ReplayInfo> replay;  // present when this run is a prepared replay
  // Spend summaries over the completed calls in `spent`: the kRunStateTopModels
  // models that spent most (cost_usd descending, then model), how many other
  // models there are, and the kRunStateTopCalls most expensive priced calls
  // (cost descending, then oldest first). Calls of an unpriced model count in
  // their model's usage at no cost and are never top calls.
  std::vector<ModelUsage> top_models;
  int64_t other_models = 0;
  std::vector<CallCost> top_calls;
};

struct CheckpointInfo {
  CheckpointKey key;
  CheckpointKind kind = CheckpointKind::kStep;
  std::string status;  // running, completed, failed
  std::string fingerprint;
  int attempt = 0;
  int starts = 0;
  int reexecutions = 0;
  std::optional<TimePoint> started_at, finished_at;
  std::optional<double> duration_ms;
  Usage usage;
  std::string error;
  bool copied = false;  // served from a replay's snapshot: its usage is inherited, not spent
};

struct ArtifactInfo {
  std::string name;
  int version = 0;
  std::string content_type;
  int64_t size_bytes = 0;
  std::string sha256;
  std::string checkpoint;  // name#occurrence that saved it, or "" outside checkpoints
  TimePoint created_at;
};

struct Artifact {
  ArtifactInfo info;
  std::string data;  // bytes; for application/json the compact JSON text
};

}  // namespace flowrun
