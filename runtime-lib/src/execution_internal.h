// Pieces of the Execution engine shared by its source files (not installed).
#pragma once

#include <memory>
#include <string>

#include "flowrun/execution.h"
#include "termination_signal.h"

namespace flowrun {

// What Execution::Open made, or the defaults of an injected execution.
struct Execution::Owned {
  SystemClock clock;
  PriceTable prices;  // empty unless loaded: every model unknown
  std::unique_ptr<RunStore> store;
  std::unique_ptr<HttpTransport> http;
  // Production executions (Open from the environment) answer SIGTERM with the
  // "terminated" outcome (termination_signal.h); their claim_outcome claims
  // from it. Null for injected executions.
  std::unique_ptr<TerminationWatcher> termination;
};

namespace internal {

// "'name'" or "'name' (occurrence N)", for messages.
std::string Label(const CheckpointKey& key);

// An outcome of `kind`; a failure without a reason is a flow failure.
Outcome OutcomeOf(OutcomeKind kind, const std::string& error, FailureReason reason = FailureReason::kNone);

// The outcome a sticky error implies: fenced, divergence, database
// unavailable, or failed.
Outcome OutcomeForSticky(const Status& sticky);

// Writes the termination message, logs "execution ended" and returns the
// exit code (the attempt is taken from `env`).
int Report(const RunEnvironment& env, const ExecutionLogger& log, Outcome outcome);

// An execution that could not open: reported (after `claim`, if any), with its exit code.
OpenedExecution Reported(const RunEnvironment& env, const ExecutionLogger& log, Outcome outcome,
                         const std::function<void()>& claim);

}  // namespace internal
}  // namespace flowrun
