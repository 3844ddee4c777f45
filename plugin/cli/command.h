// What every kubectl-flowrun command shares: the global flags (-n, -A,
// --context, --kubeconfig, -o), the streams, the clock, and turning an error
// Status into a message on stderr and an exit code (exit_codes.h).
#pragma once

#include <chrono>
#include <iostream>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "flowrun/clock.h"
#include "flowrun/plugin/exit_codes.h"
#include "flowrun/plugin/output.h"
#include "flowrun/status.h"
#include "session.h"

namespace flowrun::plugin {

struct GlobalOptions {
  std::string ns, context, kubeconfig, output;
  bool all_namespaces = false;
};

struct Env {
  GlobalOptions global;
  std::istream* in = &std::cin;
  std::ostream* out = &std::cout;
  std::ostream* err = &std::cerr;
  Clock* clock = DefaultClock();
};

// Adds the global flags to a subcommand (each command shows them in --help).
void AddGlobalFlags(CLI::App* cmd, GlobalOptions& g, bool output_flag = true);

// Opens the session for the global flags; on failure prints the error and
// sets `exit_code`.
std::unique_ptr<Session> OpenSession(Env& env, int* exit_code);
// The output format of -o; on a bad value prints the error and returns nullopt.
std::optional<OutputFormat> Format(Env& env);
// Every data command's start: the -o format into *fmt, then the session;
// nullptr (the error printed, *exit_code set) when either fails.
std::unique_ptr<Session> Begin(Env& env, OutputFormat* fmt, int* exit_code);

// Prints "error: <message>" (plus a hint for well-known cases) and returns
// the exit code for `s`.
int Fail(Env& env, const Status& s, const std::string& hint = "");
// A read-API error with what it means (API not installed, controller down, 403).
int FailQuery(Env& env, const Status& s);

// The text of a file, or of `in` for "-"; kNotFound when unreadable. The
// one reader of files named on the command line (answer -f, replay @file).
StatusOr<std::string> ReadTextFile(const std::string& path, std::istream& in);

// GET of a read-API list of `run` (summary, checkpoints, ...: `sub`),
// following metadata.continue when `all` (items merged, continue dropped).
StatusOr<nlohmann::json> GetQueryList(Session& s, const std::string& run, const std::string& sub,
                                      const std::string& query, bool all);

// The command registrations (one file each group).
void AddRunCommands(CLI::App& app, Env& env, int& exit_code);     // list, status, budget, cancel, logs
void AddAnswerCommand(CLI::App& app, Env& env, int& exit_code);   // answer
void AddReadCommands(CLI::App& app, Env& env, int& exit_code);    // checkpoints, costs, artifacts, artifact, diff
void AddReplayCommand(CLI::App& app, Env& env, int& exit_code);   // replay
void AddCompletionCommands(CLI::App& app, Env& env, int& exit_code);  // completion, __complete

}  // namespace flowrun::plugin
