// RunAdmin: the store API for everyone outside an execution — the controller,
// flowrunctl, dashboards. It reads run state and makes the few changes a
// person or the controller may make: answer a wait, set a budget, expire a
// wait, delete a run. It never takes an execution's fence, but its writes
// lock the rows they change so they serialize with a running execution.
//
// Thread safety: one RunAdmin per thread (it owns one connection).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "flowrun/replay.h"
#include "flowrun/status.h"
#include "flowrun/store_types.h"

namespace flowrun {

struct AnswerOptions {
  // When false, an answer for a wait that is not currently open is refused
  // (kFailedPrecondition). When true it is kept as an early answer and
  // consumed when the flow reaches that wait.
  bool allow_early = true;
  std::string answered_by;  // who answered: recorded, shown in history
};

struct RecordedAnswer {
  std::string wait_name;
  int occurrence = 1;
  bool early = false;  // stored before the wait was asked
};

class RunAdmin {
 public:
  virtual ~RunAdmin() = default;

  // The readers. Each reads one consistent snapshot. A run with no row yet
  // (no execution began, no budget or answer was set) returns kNotFound — the
  // controller relies on that before a FlowRun's first attempt; the list
  // readers return an empty list for it instead. kUnavailable when the
  // database stays unreachable; kDataLoss when a row holds a value this build
  // does not know (a newer schema).
  //
  // GetRun: the run row, its attempts (oldest first), totals and the open
  // wait (present only while the run can still take an answer).
  virtual StatusOr<RunState> GetRun(const std::string& run_uid) = 0;
  // Every checkpoint row (steps and waits), in first-started order.
  virtual StatusOr<std::vector<CheckpointInfo>> ListCheckpoints(const std::string& run_uid) = 0;
  // Every failed try of every checkpoint, oldest first.
  virtual StatusOr<std::vector<CheckpointFailure>> ListFailures(const std::string& run_uid) = 0;
  // LLM spend grouped by model.
  virtual StatusOr<std::vector<ModelUsage>> UsageByModel(const std::string& run_uid) = 0;
  // The stored output of a completed checkpoint; kNotFound when it has none.
  virtual StatusOr<nlohmann::json> GetCheckpointOutput(const std::string& run_uid,
                                                       const CheckpointKey& key) = 0;

  // Records a human's answer. The answer is validated against the open wait's
  // schema: a violation returns kInvalidArgument listing the reasons and
  // changes nothing. A wait that already has an answer returns
  // kAlreadyExists (first answer wins). kFailedPrecondition: the run is over
  // (succeeded, failed, cancelled), or options.allow_early is false and the
  // run is not waiting for `wait_name`. kNotFound: no run row and
  // allow_early is false.
  virtual StatusOr<RecordedAnswer> RecordAnswer(const std::string& run_uid,
                                                const std::string& wait_name,
                                                const nlohmann::json& answer,
                                                const AnswerOptions& options) = 0;

  // Prepares request.run_uid as a replay of request.source_run_uid, in one
  // transaction: creates the replay's run row if missing, snapshots the
  // source's completed checkpoints (outputs, fingerprints, usage, and the
  // artifacts saved inside them, with their versions), stores the cut and the
  // overrides, and records request.answers as early answers. Idempotent:
  // preparing a run already prepared as a replay of the same source returns
  // its ReplayInfo and changes nothing, so a controller killed mid-way repeats
  // it safely (no duplicate copy, no double-counted inheritance).
  // kNotFound: the source has no run row. kAlreadyExists: the run exists and is
  // not this replay (it has attempts, or replays another source).
  // kInvalidArgument: an override or answer that is not acceptable (too large,
  // or an override naming a checkpoint the source never completed).
  virtual StatusOr<ReplayInfo> PrepareReplay(const ReplayRequest& request) = 0;

  // Sets the run's budget in USD (nullopt: no budget). Creates the run row if
  // it does not exist yet, so a budget can be set before the first attempt.
  virtual Status SetBudget(const std::string& run_uid, std::optional<double> budget_usd) = 0;

  // Applies the on-timeout policy of the open wait if its deadline passed at
  // `now`: records the default answer (kDefaultAnswered: the wait is answered
  // by "timeout-default", the resumed execution takes it), or marks the run
  // failed with FailureReason::kWaitTimedOut (kRunFailed). kNotDue when no
  // unanswered wait's deadline has passed. kNotFound: no run row.
  enum class WaitExpiry { kNotDue, kDefaultAnswered, kRunFailed };
  virtual StatusOr<WaitExpiry> ExpireWait(const std::string& run_uid, TimePoint now) = 0;

  // Marks a run cancelled (no execution may write after this: the epoch moves).
  virtual Status CancelRun(const std::string& run_uid, const std::string& reason) = 0;

  // Deletes every row of the run. Idempotent: deleting a missing run is OK.
  virtual Status DeleteRun(const std::string& run_uid) = 0;

  // Artifacts: list a run's, load one (version 0 = latest).
  virtual StatusOr<std::vector<ArtifactInfo>> ListArtifacts(const std::string& run_uid) = 0;
  virtual StatusOr<Artifact> LoadArtifact(const std::string& run_uid, const std::string& name,
                                          int version) = 0;
};

}  // namespace flowrun
