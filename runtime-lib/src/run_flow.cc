// run_flow: one execution of a run, from environment to exit code — a thin
// layer over Execution (execution.h): open, run the flow function under a
// Flow, and hand its end (result or exception) to the engine.
#include "flowrun/flowrun.h"

namespace flowrun {

namespace {

int Drive(const FlowFunction& fn, OpenedExecution opened) {
  if (!opened.execution) return opened.exit_code;  // already reported
  Execution& ex = *opened.execution;
  Flow flow(ex);
  try {
    return ex.Finish(fn(flow));
  } catch (const FlowSuspended& s) {
    return ExitCodeFor(ex.finished().value_or(s.outcome));  // Suspend already finalized (its handler returned)
  } catch (const WaitTimedOutError& e) {
    return ex.FinishWithError(FlowEndReason::kWaitTimedOut, e.status().message());
  } catch (const FlowError& e) {
    // Fenced, divergence and store errors are sticky in the engine: it reports
    // their outcome whatever this says.
    return ex.FinishWithError(FlowEndReason::kFlowFailed, e.status().message());
  } catch (const std::exception& e) {
    return ex.FinishWithError(FlowEndReason::kFlowFailed, std::string("the flow threw: ") + e.what());
  } catch (...) {
    return ex.FinishWithError(FlowEndReason::kFlowFailed, "the flow threw an exception not derived from std::exception");
  }
}

}  // namespace

int run_flow(const FlowFunction& fn) {
  auto env = ReadRunEnvironmentFromProcess();
  if (!env.ok()) return Drive(fn, Execution::OpenFromProcess());  // reports the config error, exit 2
  return run_flow(fn, *env);
}

int run_flow(const FlowFunction& fn, const RunEnvironment& env) {
  // Open answers SIGTERM with the "terminated" outcome itself (execution.h).
  return Drive(fn, Execution::Open(env));
}

}  // namespace flowrun
