// flowrun: durable AI agents. The one header an agent includes.
//
//   #include <flowrun/flowrun.h>
//   int main() {
//     return flowrun::run_flow([](flowrun::Flow& flow) -> nlohmann::json {
//       auto research = flow.checkpoint("research", [&] { return flow.llm().chat("Research X"); });
//       bool go = flow.wait<bool>("proceed", "Research complete. Proceed?");
//       if (!go) return {{"status", "stopped"}};
//       return flow.checkpoint("analyze", [&] { return flow.llm().chat("Analyze: " + research); });
//     });
//   }
//
// run_flow reads the environment contract (docs/environment.md), connects to
// PostgreSQL, takes the run's fence, runs the flow from the top and returns
// the process exit code (outcome.h). Waiting and budget suspension do not
// return: they end the process with exit code 0 after recording the outcome.
// SIGTERM (the pod deleted) does not return either: it writes the "terminated"
// outcome and ends the process with exit code 143 (kExitTerminated); the next
// attempt resumes from the checkpoints. run_flow blocks SIGTERM in the calling
// thread for the execution: start agent threads after calling it, or block
// SIGTERM in them, so that the signal reaches flowrun.
#pragma once

#include <functional>

#include <nlohmann/json.hpp>

#include "flowrun/environment.h"
#include "flowrun/flow.h"
#include "flowrun/outcome.h"
#include "flowrun/status.h"

namespace flowrun {

using FlowFunction = std::function<nlohmann::json(Flow&)>;

// Runs one execution configured from the process environment.
int run_flow(const FlowFunction& fn);

// The same with an explicit environment (tests, embedding).
int run_flow(const FlowFunction& fn, const RunEnvironment& env);

}  // namespace flowrun
