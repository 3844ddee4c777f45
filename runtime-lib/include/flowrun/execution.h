// Execution: the step-wise engine of one execution of a run — the single
// implementation of everything that must be right (occurrence counting,
// fingerprints, divergence, checkpoint rows, output caps, waits, prices,
// budgets, LLM-call rows, artifacts, suspension, the run's outcome, the
// termination message and the exit code). C++ `Flow` and the Python SDK are
// thin drivers of this class; they own only what is language-specific (running
// a body, retry loops and backoff sleeps, converting values to JSON).
//
// A checkpoint's life, as a driver runs it:
//
//   FLOWRUN_ASSIGN_OR_RETURN(CheckpointKey key, ex.Reserve("research", CheckpointKind::kStep));
//   FLOWRUN_ASSIGN_OR_RETURN(BeginResult b, ex.Begin(key, inputs));
//   if (b.cached) return b.output;                       // never runs the body
//   for (int t = 1;; ++t) {
//     FLOWRUN_ASSIGN_OR_RETURN(bool interrupted, ex.TryStarted(key, t));
//     ... run the body; its LLM calls name `key` (BeforeLlmCall / FinishLlmCall) ...
//     ok:     return ex.Complete(key, output);            // canonical JSON: what a resume gets
//     failed: ex.Fail(key, t, final, message); if (final) stop; else back off, retry
//   }
//
// A wait: Reserve(name, kWait) then ResolveWait(): answered (JSON), timed out
// (fail policy), or pending — the driver then lets this execution's in-flight
// checkpoints finish, flushes its own output, and calls Suspend(), which
// records the outcome and ends the process with exit code 0.
//
// Errors. No method throws; all return Status / StatusOr. Codes:
//   kAborted        fenced: a newer execution of this run took over.       STICKY
//   kDataLoss       divergence: a resumed run reached a checkpoint whose
//                   recorded kind/fingerprint differs (policy "fail").     STICKY
//   kUnavailable, kUnknown, kInternal, kFailedPrecondition from the store:
//                   the store failed (database gone after retries, an
//                   unsettled write).                                      STICKY
//   kAlreadyExists  replay: an artifact of a checkpoint served from the
//                   snapshot clashes with a version the replay saved live
//                   with other content (RunStore::CheckpointCopied); the run
//                   fails with that message.                               STICKY
//   kInvalidArgument, kResourceExhausted: bad input (a name too long, an
//                   output that is not JSON or over FLOWRUN_MAX_OUTPUT_BYTES,
//                   a default answer that violates its schema) or misuse (an
//                   unknown or not-open key, a wait key passed to Begin).
//                   Not sticky: nothing was written; the caller decides.
// STICKY: once such an error happened, every later call (of any thread)
// returns that same Status, nothing more is written, and Finish()/Suspend()
// report the outcome it implies (fenced, divergence, database_unavailable or
// failed) whatever the driver did in between — an author's `catch`/`except`
// cannot turn a fenced execution back into a writer. sticky_error() shows it.
//
// Identity. Reserve() takes identities in call order (program order), so a
// fan-out launched in list order gets occurrences in list order, whatever
// finishes first. A caller-supplied key gives the identity name "name[key]"
// with its own occurrence counter (1 unless the same key is reserved again).
//
// LLM usage is accumulated per checkpoint key: a call names the checkpoint it
// belongs to, so concurrent bodies (threads, asyncio tasks) attribute their
// calls to their own checkpoint. A call is recorded as *started* (model,
// estimated input tokens) before its HTTP request and completed after; a call
// that never completes (the process was killed) stays visible as started with
// unknown cost (RunState::spent.unfinished_calls, flowrunctl costs).
//
// Thread safety: every method may be called from any thread; one mutex
// serializes them (the store underneath is single-threaded). The only driver
// code called while holding it is the logger (which must not call back); the
// exit handler runs after it is released. Bodies run outside the engine,
// concurrently.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "flowrun/clock.h"
#include "flowrun/environment.h"
#include "flowrun/http_transport.h"
#include "flowrun/llm_usage.h"
#include "flowrun/outcome.h"
#include "flowrun/price_table.h"
#include "flowrun/run_store.h"
#include "flowrun/status.h"
#include "flowrun/store_types.h"

namespace flowrun {

namespace internal {
class RenameIndex;  // checkpoint_renames.h
}  // namespace internal

// Counters of one execution.
struct ExecutionStats {
  int64_t live_checkpoints = 0;
  int64_t cached_checkpoints = 0;  // served from this run's own rows (copied ones included)
  int64_t reexecuted_checkpoints = 0;
  // Replay: served from the source's snapshot and recorded as copied in this
  // execution (neither live nor cached). Their usage is inherited: in
  // neither `saved` nor `spent_here`.
  int64_t copied_checkpoints = 0;
  Usage inherited;
  Usage saved;       // LLM spend of the checkpoints served from cache (copied rows save nothing)
  Usage spent_here;  // LLM spend of this execution
};

// Ends the process after a suspension (or whenever a driver wants the
// engine's exit path): receives the exit code. Production: flush stdio and
// std::_Exit(code) — no user code, no unwinding, no static destructors. A
// test's handler may return; Suspend() then returns the exit code.
using ExitHandler = std::function<void(int exit_code)>;
// The production ExitHandler: flushes C and C++ stdio, then std::_Exit.
ExitHandler ProcessExitHandler();

// Structured log lines (one JSON object per line on stderr in production:
// `fields` gets ts, level, msg, run, attempt). Never given secrets.
using ExecutionLogger =
    std::function<void(const std::string& level, const std::string& msg, const nlohmann::json& fields)>;
// The production logger: JSON lines on stderr, one write per line.
ExecutionLogger StderrJsonLogger(const RunEnvironment& env);

// What an Execution uses, injected. Pointers are not owned and must outlive
// the Execution; null members get the production default where one exists.
struct ExecutionDeps {
  RunStore* store = nullptr;          // required; Begin() not yet called on it
  Clock* clock = nullptr;             // null: DefaultClock()
  const PriceTable* prices = nullptr; // null: an empty table (every model unknown)
  HttpTransport* http = nullptr;      // for the runtime's own LlmClient; null: made on first use
  ExitHandler exit;                   // null: ProcessExitHandler()
  ExecutionLogger log;                // null: StderrJsonLogger(env)
  // Called once, before the execution records its own outcome (run row,
  // termination message) — also when it could not open. The production
  // Open's SIGTERM watcher claims the outcome here; it may not return (the
  // process is ending with another outcome). Null: nothing.
  std::function<void()> claim_outcome;
};

class Execution;

// Result of opening an execution. Exactly one of: `execution` set (the fence
// is taken, the attempt recorded, the completed checkpoints loaded), or
// `execution` null and the outcome already reported — the termination message
// written and the "execution ended" line logged, exactly as run_flow always
// did (config_error exit 2 for a bad environment, price table or connection
// string; database_unavailable exit 3; cancelled for a cancelled run; ...).
struct OpenedExecution {
  std::unique_ptr<Execution> execution;
  std::optional<Outcome> reported;  // when execution is null
  int exit_code = 0;                // when execution is null
};

// Begin(): a stored output (never run the body) or run it live.
struct BeginResult {
  bool cached = false;
  nlohmann::json output;  // when cached: exactly what the live run returned
};

// A suspension the engine decided on (a pending wait, an exhausted budget):
// pass it to Suspend() once this execution's in-flight work has finished.
struct Suspension {
  Outcome outcome;  // kind waiting or budget_exceeded
};

struct WaitSpec {
  std::string question;
  nlohmann::json schema = nlohmann::json::object();  // JSON Schema (draft 7, as valijson reads)
  std::optional<std::chrono::seconds> timeout;       // null: FLOWRUN_WAIT_TIMEOUT_SECONDS
  std::optional<OnTimeout> on_timeout;               // null: FLOWRUN_WAIT_ON_TIMEOUT
  std::optional<nlohmann::json> default_answer;      // required for kUseDefault; validated
  std::optional<DivergencePolicy> on_divergence;     // null: FLOWRUN_ON_DIVERGENCE
};

struct WaitResult {
  enum class Kind {
    kAnswered,  // `answer` holds it (a recorded, cached or defaulted answer)
    kPending,   // `suspension` holds the waiting outcome; the question is recorded
    kTimedOut,  // the deadline passed under the fail policy; `message` says so
  };
  Kind kind = Kind::kPending;
  nlohmann::json answer;
  std::optional<Suspension> suspension;
  std::string message;
};

// BeforeLlmCall(): either a started call's id, or a budget suspension (no
// row written, the request must not be sent).
struct LlmCallStart {
  int64_t call_id = 0;                  // > 0 when the call may proceed
  std::optional<Suspension> suspension; // budget exhausted
};

// How the driver saw the flow end (Finish() with an error).
enum class FlowEndReason {
  kFlowFailed,    // a checkpoint failed finally, or the flow raised/threw (exit 1)
  kWaitTimedOut,  // a wait's deadline passed under the fail policy, uncaught (exit 1)
  kConfigError,   // the driver refused the configuration, e.g. a parameter the
                  // flow's signature lacks or needs (exit 2; name it in the message)
};

class Execution {
 public:
  ~Execution();
  Execution(const Execution&) = delete;
  Execution& operator=(const Execution&) = delete;

  // --- Opening --------------------------------------------------------------
  // Production: ReadRunEnvironmentFromProcess, the price table of
  // FLOWRUN_PRICE_TABLE, OpenPostgresRunStore, RunStore::Begin. The Execution
  // owns the store, clock, prices and HTTP transport it made. Ignores SIGPIPE.
  // Answers SIGTERM (a pod being deleted) with the "terminated" outcome and
  // exit code 143 at once, whatever the flow is doing (termination_signal.h);
  // the next attempt resumes from the checkpoints. `claim_outcome`: called
  // after the watcher's claim, as ExecutionDeps::claim_outcome.
  static OpenedExecution OpenFromProcess(std::function<void()> claim_outcome = {});
  // The same from an explicit environment (run_flow(fn, env)).
  static OpenedExecution Open(const RunEnvironment& env, std::function<void()> claim_outcome = {});
  // Tests and embedding: the given store (not yet begun) and dependencies.
  // Calls store->Begin; a failure is reported as above.
  static OpenedExecution Open(const RunEnvironment& env, ExecutionDeps deps);
  // Over a store whose Begin() already returned `start` (benchmarks). Prefer Open().
  static std::unique_ptr<Execution> FromStart(const RunEnvironment& env, ExecutionDeps deps,
                                              ExecutionStart start);

  // --- Identity -----------------------------------------------------------
  // Takes the next identity of `name`: (name, occurrence), occurrences
  // counted per identity name in call order within this execution. With
  // `key`, the identity name is "name[key]". kInvalidArgument for an empty
  // name or an identity name over 253 characters (nothing is reserved).
  StatusOr<CheckpointKey> Reserve(std::string_view name, CheckpointKind kind,
                                  std::optional<std::string_view> key = std::nullopt);

  // --- Checkpoints --------------------------------------------------------
  // The fingerprint is CheckpointFingerprint(kStep, key.name, inputs). A
  // completed checkpoint with the same kind and fingerprint: cached (counted,
  // its recorded usage added to stats().saved unless the row was copied). A
  // different one: kDataLoss (sticky) naming the checkpoint under policy
  // kFail; under kRerun a warning and live. Otherwise live (counted).
  // `policy` null: the run's.
  //
  // Replay (is_replay(), flowrun/replay.h): a checkpoint with no row of this
  // run, reserved before the cut, that the snapshot holds with the same kind
  // and fingerprint is served from it — the override for its name if there
  // is one, else the source's output — and recorded as copied
  // (RunStore::CheckpointCopied; stats().copied_checkpoints, its usage in
  // stats().inherited). BeginResult::cached is true: a driver cannot tell a
  // copy from a cache hit. A snapshot row with another kind or fingerprint
  // follows `policy` as above. Reserving the cut identity (cut.name at
  // cut.occurrence) reaches the cut: it and everything reserved after it run
  // live, and the first execution to reach it records that
  // (RunStore::ReplayCutReached).
  //
  // A step with no completed row that looks like a renamed one (an earlier
  // attempt's step at this position, with the same inputs digest, whose name
  // this execution has not asked for and the driver did not declare — the rule
  // is in runtime-lib/src/checkpoint_renames.h) is a divergence too, naming
  // both: kDataLoss under kFail, a warning and live under kRerun.
  // `digest_inputs`: what the name-independent inputs digest is computed over;
  // null: `inputs`. A driver whose inputs name the code (Python's function
  // qualname) passes the arguments alone, so a renamed function is recognised.
  StatusOr<BeginResult> Begin(const CheckpointKey& key, const std::optional<nlohmann::json>& inputs,
                              std::optional<DivergencePolicy> policy = std::nullopt,
                              const std::optional<nlohmann::json>& digest_inputs = std::nullopt);

  // Names (without "[key]") of the checkpoints the running code defines, as
  // far as the driver knows (Python: every @checkpoint decorated so far). A
  // completed step whose name is declared is never taken for the old name of
  // a renamed one. Cumulative; any thread.
  void DeclareCheckpointNames(const std::vector<std::string>& names);

  // Try `try_number` (1, 2, ...) of a live checkpoint's body is about to run:
  // records it as running and opens the key's usage accumulator (each try
  // starts from zero). Returns true when an earlier execution started this
  // checkpoint and was interrupted before storing it (counted in
  // stats().reexecuted_checkpoints; a warning is logged).
  StatusOr<bool> TryStarted(const CheckpointKey& key, int try_number);

  // The body's output: parsed (text form), serialized canonically (sorted
  // keys), capped by FLOWRUN_MAX_OUTPUT_BYTES, stored with the usage of the
  // LLM calls attributed to `key` during this try, and returned — what the
  // caller gets is what a resumed run gets from the cache. kInvalidArgument
  // (not JSON / not serializable) or kResourceExhausted (over the cap):
  // nothing stored, the try stays open — call Fail(key, try, true, message).
  StatusOr<std::string> Complete(const CheckpointKey& key, std::string_view output_json);
  StatusOr<nlohmann::json> Complete(const CheckpointKey& key, const nlohmann::json& output);

  // Records a failed try (the history keeps every try) and closes it. When
  // `final_try`, the checkpoint stays failed for this attempt; the next
  // attempt runs it again.
  Status Fail(const CheckpointKey& key, int try_number, bool final_try, std::string_view message);

  // --- Waits --------------------------------------------------------------
  // Resolves the wait reserved as `key` (kind kWait): a completed wait with
  // the same fingerprint (kWait, name, schema) gives its answer; a recorded
  // or early answer (validated now), an expired deadline's default, or the
  // pending question recorded with its deadline (kPending + the suspension).
  // In a replay, a wait reserved before the cut with no row of this run is
  // served from the snapshot like a checkpoint (Begin); an override of a
  // wait's name must satisfy its schema (else kInvalidArgument, not sticky).
  StatusOr<WaitResult> ResolveWait(const CheckpointKey& key, const WaitSpec& spec);

  // --- LLM calls ----------------------------------------------------------
  // Before an LLM request: re-reads the budget; exhausted → a suspension and
  // nothing recorded; otherwise records the call as started (model,
  // estimated input tokens; attributed to `checkpoint`, null: outside any)
  // and returns its id. The checkpoint should be open (between TryStarted and
  // Complete/Fail); a call of a closed one is still recorded (with a warning)
  // but its usage can no longer reach that checkpoint's row.
  StatusOr<LlmCallStart> BeforeLlmCall(const std::optional<CheckpointKey>& checkpoint,
                                       std::string_view model, int64_t estimated_input_tokens = 0);
  // Completes a started call: prices it (reported cost, else the price table,
  // else unknown — never a silent zero), stores it, and adds it to its
  // checkpoint's accumulator and the spend. `complete` false: the response was
  // cut (a broken stream): stored with unknown cost whatever tokens are known.
  Status FinishLlmCall(int64_t call_id, const LlmCall& call, bool complete = true);
  // A started call that got no response after the client's retries (HTTP
  // error, transport failure): kept as a "failed" row with the error, outside
  // the usage totals (providers do not bill failed requests).
  Status FailLlmCall(int64_t call_id, std::string_view error);
  // Records a call made and finished elsewhere (another SDK) in one step.
  Status RecordLlmCall(const std::optional<CheckpointKey>& checkpoint, const LlmCall& call);

  // --- Artifacts ----------------------------------------------------------
  // A new version (1, 2, ...) of artifact `name`; capped like outputs.
  StatusOr<int> SaveArtifact(std::string_view name, std::string_view content_type, std::string_view data,
                             const std::optional<CheckpointKey>& checkpoint = std::nullopt);

  // --- The end ------------------------------------------------------------
  // Ends the execution suspended: every still-open try is recorded failed
  // (not final, "suspended: ..."), the outcome goes to the run's row (unless
  // a sticky error decides otherwise), the termination message is written,
  // and the exit handler runs with the code (0, or the sticky outcome's). If
  // the handler returns (tests), returns that code. After Suspend or Finish
  // every recording call returns kFailedPrecondition ("the execution has
  // ended"); nothing more is written.
  int Suspend(const Suspension& suspension);

  // Ends the execution normally; returns the process exit code. `result` is
  // the flow's JSON result (text form: parsed; capped). A sticky error
  // overrides everything given here. Idempotent: later calls return the
  // first code.
  int Finish(const nlohmann::json& result);
  int Finish(std::string_view result_json);
  int FinishWithError(FlowEndReason reason, std::string_view message);
  // The outcome Finish/Suspend reported, once they have.
  std::optional<Outcome> finished() const;

  // --- What a driver may read ---------------------------------------------
  const RunEnvironment& env() const { return env_; }
  const RunIdentity& run() const { return env_.run; }
  int attempt() const { return env_.attempt; }
  int64_t epoch() const { return epoch_; }
  const nlohmann::json& parameters() const { return env_.parameters; }
  // True when this run is a prepared replay of another run (a FlowRun with
  // spec.replay; RunAdmin::PrepareReplay): checkpoints before the cut may be
  // served from the source's snapshot. Fixed for the execution's life; agent
  // code may read it (e.g. to tag its own logs), the engine needs no help.
  bool is_replay() const { return is_replay_; }
  ExecutionStats stats() const;
  // The spend of the whole run so far (earlier executions included).
  double run_spent_usd() const;
  std::optional<Status> sticky_error() const;
  // A warning for the run's log (e.g. from a driver); thread-safe.
  void Warn(const std::string& message);
  // The runtime's OpenAI-compatible transport (made on first use) and clock.
  HttpTransport* http();
  Clock* clock() const { return deps_.clock; }

 private:
  struct Owned;  // what Open() made or defaulted (store, clock, prices, http)
  struct Reservation {
    CheckpointKind kind = CheckpointKind::kStep;
    CheckpointPlace place;    // position set by Reserve; digest by Begin (live)
    std::string fingerprint;  // set by Begin (live)
    bool begun = false;
    bool live = false;
    bool before_cut = false;  // a replay's reservation made before the cut: may be served from the snapshot
  };
  struct OpenTry {
    int try_number = 0;
    TimePoint started;
    Usage usage;  // the LLM calls attributed to this try
  };
  struct OpenCall {
    std::optional<CheckpointKey> checkpoint;
  };

  Execution(const RunEnvironment& env, ExecutionDeps deps, ExecutionStart start, std::unique_ptr<Owned> owned);
  static OpenedExecution OpenWith(const RunEnvironment& env, ExecutionDeps deps, std::unique_ptr<Owned> owned);

  // The first error a call must return (sticky, or the execution has ended).
  Status GateLocked() const;
  // Wraps a store error with context; a sticky one is remembered.
  Status StoreErrorLocked(const Status& status, std::string_view what);
  StatusOr<Reservation*> ReservationLocked(const CheckpointKey& key, CheckpointKind kind, std::string_view op);
  // The cached output of `key` if it matches (counted); nullptr: run live.
  StatusOr<const nlohmann::json*> FromCacheLocked(const CheckpointKey& key, CheckpointKind kind,
                                                  const std::string& fingerprint, DivergencePolicy policy);
  // Replay: the snapshot's output (or override) of `key` (reserved before the
  // cut, no row of this run), recorded as copied and counted; nullopt: run
  // live (no snapshot row, or diverged under kRerun). `wait_schema`: an override of a wait must match it.
  StatusOr<std::optional<nlohmann::json>> FromSnapshotLocked(const CheckpointKey& key,
                                                             CheckpointKind kind, const std::string& fingerprint,
                                                             DivergencePolicy policy,
                                                             const nlohmann::json* wait_schema = nullptr);
  // The divergence of a recorded row (`where`: whose) from what this run
  // reaches: sticky kDataLoss under kFail; under kRerun a warning and OK.
  Status DivergedLocked(const CheckpointKey& key, CheckpointKind kind, const std::string& fingerprint,
                        const CachedCheckpoint& recorded, std::string_view where, DivergencePolicy policy);
  // Complete(): stores `output` and returns its canonical text (what is stored).
  StatusOr<std::string> CompleteText(const CheckpointKey& key, const nlohmann::json& output);
  // Rename detection at a live Begin (checkpoint_renames.h): kDataLoss (sticky) under kFail.
  Status CheckRenameLocked(const CheckpointKey& key, const CheckpointPlace& place, DivergencePolicy policy);
  void AccountLlmCallLocked(const std::optional<CheckpointKey>& checkpoint, const PricedLlmCall& priced);
  PricedLlmCall PriceLocked(const LlmCall& call);
  void WarnLocked(const std::string& message);
  int FinalizeLocked(Outcome outcome);

  RunEnvironment env_;
  std::unique_ptr<Owned> owned_;
  ExecutionDeps deps_;
  int64_t epoch_;
  const bool is_replay_;

  mutable std::mutex mu_;
  std::map<CheckpointKey, CachedCheckpoint> cache_;
  // Replay: the snapshot (entries erased as they are copied) and whether this
  // execution reserved the cut yet (replay_->cut_reached: recorded already).
  std::optional<ReplaySnapshot> replay_;
  bool cut_reserved_ = false;
  std::map<std::string, int, std::less<>> occurrences_;
  std::map<CheckpointKey, Reservation> reserved_;  // in flight: erased once finished
  int positions_ = 0;                              // reservations so far (CheckpointPlace::position)
  std::unique_ptr<internal::RenameIndex> renames_; // over the loaded rows (checkpoint_renames.h)
  std::set<std::string, std::less<>> declared_;    // DeclareCheckpointNames
  std::map<CheckpointKey, OpenTry> open_;
  std::map<int64_t, OpenCall> calls_;
  std::optional<double> budget_usd_;
  double run_spent_usd_ = 0;
  std::set<std::string> warned_models_;
  ExecutionStats stats_;
  std::optional<Status> sticky_;
  std::optional<Outcome> finished_;
  int finished_code_ = 0;
};

// Fingerprint of a checkpoint: kind, name and (optional) inputs, hashed
// (SHA-256, "v1:" + 32 hex digits). Inputs are canonical: key order of JSON
// objects does not matter.
std::string CheckpointFingerprint(CheckpointKind kind, std::string_view name,
                                  const std::optional<nlohmann::json>& inputs);

}  // namespace flowrun
