// kubectl-flowrun: the `kubectl flowrun` plugin. Wires the commands
// (command.h) to CLI11 and turns their outcome into the exit code
// (flowrun/plugin/exit_codes.h). The formatting and conversion core is
// plugin/core (pure, unit-tested); session.cc is the one adapter to
// Kubernetes.
#include <csignal>

#include "command.h"

namespace flowrun::plugin {
namespace {

int Main(int argc, char** argv) {
  Env env;
  int exit_code = kExitOk;
  CLI::App app{"kubectl flowrun: durable AI agent runs (FlowRuns) on the command line, as you under Kubernetes RBAC"};
  app.name("kubectl flowrun");
  app.require_subcommand(1);
  app.set_version_flag("--version", "kubectl-flowrun 0.1.0");
  app.footer(
      "Examples:\n"
      "  kubectl flowrun list --waiting -A          # open questions, who may answer, deadlines\n"
      "  kubectl flowrun status research-1          # phase, attempts, open wait, cost, events\n"
      "  kubectl flowrun answer research-1 true     # answer (validated against the wait's schema)\n"
      "  kubectl flowrun costs research-1 --top 3   # spend by model, checkpoint, most expensive calls\n"
      "  kubectl flowrun diff run-47 run-46         # what changed between two runs\n"
      "  kubectl flowrun replay run-47 --from analyze --image agent:0.2   # rerun from a checkpoint\n\n"
      "Every command takes -n/--namespace, --context, --kubeconfig and (except logs) -o json|yaml|wide.\n"
      "Exit codes: 0 ok, 1 error, 2 usage, 3 not found, 4 forbidden (RBAC or admission), 5 invalid\n"
      "answer (refused locally), 6 answer rejected by the controller, 7 timed out, 8 unavailable,\n"
      "9 nothing to answer (not waiting, another wait, already answered).\n"
      "Docs: docs/kubectl-flowrun.md");
  // The connection flags before the command too, as kubectl takes them
  // (`kubectl flowrun -n team-a status research-1`); -o stays the command's.
  AddGlobalFlags(&app, env.global, false);
  AddRunCommands(app, env, exit_code);
  AddAnswerCommand(app, env, exit_code);
  AddReadCommands(app, env, exit_code);
  AddReplayCommand(app, env, exit_code);
  AddCompletionCommands(app, env, exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int r = app.exit(e);
    return r == 0 ? kExitOk : kExitUsage;
  }
  return exit_code;
}

}  // namespace
}  // namespace flowrun::plugin

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);
  return flowrun::plugin::Main(argc, argv);
}
