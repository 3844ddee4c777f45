// How an execution tells the world it ended: the JSON log lines on stderr,
// the termination message, the exit code, and the process exit.
#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "execution_internal.h"
#include "flowrun/rfc3339.h"

namespace flowrun {

ExecutionLogger StderrJsonLogger(const RunEnvironment& env) {
  // One JSON object per line on stderr: what a log collector expects. Never
  // carries the connection string or the API key. "ts" as the controller
  // writes it (FormatTimeMillis), from the process's clock. The line and its
  // newline go out in one write: std::cerr is unbuffered, so
  // `<< line << std::endl` would be two writes, and a reader merging stdout
  // and stderr (buildah, a container runtime's log pipe) can slip the other
  // stream's bytes between them.
  return [uid = env.run.uid, attempt = env.attempt](const std::string& level, const std::string& msg,
                                                    const nlohmann::json& extra) {
    nlohmann::json fields = extra.is_object() ? extra : nlohmann::json::object();
    fields["ts"] = FormatTimeMillis(DefaultClock()->Now());
    fields["level"] = level;
    fields["msg"] = msg;
    fields["run"] = uid;
    fields["attempt"] = attempt;
    std::string line = fields.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    line += '\n';
    std::cerr << line << std::flush;
  };
}

ExitHandler ProcessExitHandler() {
  return [](int code) {
    std::cout.flush();
    std::cerr.flush();
    std::fflush(nullptr);
    // No user code may run after a suspension, so no unwinding: exit now.
    // _Exit also skips cpprestsdk's static destructors, which crash at exit.
    std::_Exit(code);
  };
}

namespace internal {

std::string Label(const CheckpointKey& key) {
  return "'" + key.name + "'" + (key.occurrence > 1 ? " (occurrence " + std::to_string(key.occurrence) + ")" : "");
}

Outcome OutcomeOf(OutcomeKind kind, const std::string& error, FailureReason reason) {
  Outcome o;
  o.kind = kind;
  o.reason = kind == OutcomeKind::kFailed && reason == FailureReason::kNone ? FailureReason::kFlowFailed : reason;
  o.error = error;
  return o;
}

Outcome OutcomeForSticky(const Status& sticky) {
  switch (sticky.code()) {
    case StatusCode::kAborted: return OutcomeOf(OutcomeKind::kFenced, sticky.message());
    case StatusCode::kDataLoss: return OutcomeOf(OutcomeKind::kDivergence, sticky.message());
    case StatusCode::kUnavailable:
    case StatusCode::kUnknown: return OutcomeOf(OutcomeKind::kDatabaseUnavailable, sticky.message());
    default: return OutcomeOf(OutcomeKind::kFailed, sticky.message());
  }
}

int Report(const RunEnvironment& env, const ExecutionLogger& log, Outcome o) {
  o.attempt = env.attempt;
  Status st = WriteTerminationMessage(env.termination_message_path, o);
  if (!st.ok()) log("warning", st.ToString(), nlohmann::json::object());
  int code = ExitCodeFor(o);
  nlohmann::json fields = {{"outcome", std::string(OutcomeKindName(o.kind))}, {"exitCode", code},
                           {"liveCheckpoints", o.live_checkpoints}, {"cachedCheckpoints", o.cached_checkpoints},
                           {"spentUSD", o.spent.cost_usd}, {"savedUSD", o.saved.cost_usd}};
  if (o.copied_checkpoints) fields["copiedCheckpoints"] = o.copied_checkpoints;
  if (!o.error.empty()) fields["error"] = o.error;
  if (o.wait) fields["wait"] = o.wait->name;
  log(code == 0 ? "info" : "error", "execution ended", fields);
  return code;
}

OpenedExecution Reported(const RunEnvironment& env, const ExecutionLogger& log, Outcome outcome,
                         const std::function<void()>& claim) {
  if (claim) claim();
  OpenedExecution out;
  out.exit_code = Report(env, log, outcome);
  out.reported = std::move(outcome);
  return out;
}

}  // namespace internal
}  // namespace flowrun
