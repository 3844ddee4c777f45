// The value sets of the agent <-> controller contract: how one execution
// ended (OutcomeKind), where a run stands (RunStatus) and why a run failed
// (FailureReason). One enum each, with one name table each (run_states.cc).
//
// The names are the wire words everywhere: the termination message's
// "outcome"/"reason", the database's runs.status / attempts.outcome /
// failure_reason columns (which CHECK constraints restrict to these sets,
// migrations.cc), flowrunctl's output. Code decides on the enum values,
// never on message text: a message is for people only.
#pragma once

#include <optional>
#include <string_view>

namespace flowrun {

// How one execution of a run ended, as the agent reports it.
enum class OutcomeKind {
  kSucceeded,            // the flow returned its result
  kFailed,               // a checkpoint failed finally, the flow threw, or a wait timed out (see FailureReason)
  kWaiting,              // suspended in wait(): the process exits, the run resumes with the answer
  kBudgetExceeded,       // suspended: the run's budget is spent; it resumes when the budget is raised
  kCancelled,            // the run was cancelled (the execution found it so at start)
  kFenced,               // a newer execution of the same run took over; this one wrote nothing more
  kDivergence,           // a resumed run no longer matches its recorded checkpoints
  kConfigError,          // missing or malformed environment, price table or connection string
  kDatabaseUnavailable,  // PostgreSQL unreachable after bounded retries
  kTerminated,           // SIGTERM (pod deleted, node drained): stopped mid-run, resumable from
                         // its checkpoints; reported by the termination message only, never
                         // recorded in the database (termination_signal.h)
};
// "succeeded", "failed", "waiting", "budget_exceeded", "cancelled", "fenced",
// "divergence", "config_error", "database_unavailable", "terminated".
std::string_view OutcomeKindName(OutcomeKind kind);
// nullopt for a word that is not one of the names above.
std::optional<OutcomeKind> ParseOutcomeKind(std::string_view name);
// Waiting and budget suspension: the run is not over, and no attempt failed.
bool IsSuspension(OutcomeKind kind);

// Where a run stands, as the database records it (runs.status).
enum class RunStatus {
  kPending,         // known (e.g. a budget or an early answer was set) but no execution began
  kRunning,         // an execution began and has not finished
  kWaiting,         // suspended in a wait (answered or not: see RunState::open_wait)
  kBudgetExceeded,  // suspended on its budget
  kSucceeded,
  kFailed,
  kCancelled,
};
// "pending", "running", "waiting", "budget_exceeded", "succeeded", "failed", "cancelled".
std::string_view RunStatusName(RunStatus status);
std::optional<RunStatus> ParseRunStatus(std::string_view name);
// Succeeded, failed, cancelled: no execution may change the run any more.
bool IsTerminal(RunStatus status);
// The run's status after an execution that ended with `kind`. Only meaningful
// for the kinds an execution records (not kFenced: a fenced execution writes
// nothing; not kTerminated: a terminated one had no time to); divergence, configuration and database errors fail the run.
RunStatus RunStatusAfter(OutcomeKind kind);

// Why a run (or an attempt) failed, where the controller decides differently
// by cause: a wait that timed out under the fail policy is not retried.
enum class FailureReason {
  kNone,          // not failed, or a failure recorded before reasons existed
  kFlowFailed,    // a checkpoint failed finally, the flow threw, or its result was unusable
  kWaitTimedOut,  // a wait passed its deadline under on_timeout=fail
};
// "", "flow_failed", "wait_timed_out".
std::string_view FailureReasonName(FailureReason reason);
std::optional<FailureReason> ParseFailureReason(std::string_view name);

}  // namespace flowrun
