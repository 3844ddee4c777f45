// run_flow: one execution of a run, from environment to exit code.
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "flowrun/flowrun.h"
#include "flowrun/postgres.h"
#include "flowrun/rfc3339.h"
#include "termination_signal.h"

namespace flowrun {

namespace {

// One JSON object per line on stderr: what a log collector expects. Never
// carries the connection string or the API key. "ts" as the controller writes
// it (FormatTimeMillis), from the process's clock. The line and its newline go
// out in one write: std::cerr is unbuffered, so `<< line << std::endl` would be
// two writes, and a reader merging stdout and stderr (buildah, a container
// runtime's log pipe) can slip the other stream's bytes between them.
void Log(const RunEnvironment& env, const std::string& level, const std::string& msg,
         nlohmann::json fields = nlohmann::json::object()) {
  fields["ts"] = FormatTimeMillis(DefaultClock()->Now());
  fields["level"] = level;
  fields["msg"] = msg;
  fields["run"] = env.run.uid;
  fields["attempt"] = env.attempt;
  std::string line = fields.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  line += '\n';
  std::cerr << line << std::flush;
}

int Report(const RunEnvironment& env, Outcome o) {
  o.attempt = env.attempt;
  Status st = WriteTerminationMessage(env.termination_message_path, o);
  if (!st.ok()) Log(env, "warning", st.ToString());
  int code = ExitCodeFor(o);
  nlohmann::json fields = {{"outcome", std::string(OutcomeKindName(o.kind))}, {"exitCode", code},
                           {"liveCheckpoints", o.live_checkpoints}, {"cachedCheckpoints", o.cached_checkpoints},
                           {"spentUSD", o.spent.cost_usd}, {"savedUSD", o.saved.cost_usd}};
  if (!o.error.empty()) fields["error"] = o.error;
  if (o.wait) fields["wait"] = o.wait->name;
  Log(env, code == 0 ? "info" : "error", "execution ended", fields);
  return code;
}

Outcome OutcomeOf(OutcomeKind kind, const std::string& error, FailureReason reason = FailureReason::kNone) {
  Outcome o;
  o.kind = kind;
  o.reason = kind == OutcomeKind::kFailed && reason == FailureReason::kNone ? FailureReason::kFlowFailed : reason;
  o.error = error;
  return o;
}

}  // namespace

int run_flow(const FlowFunction& fn) {
  std::signal(SIGPIPE, SIG_IGN);
  auto env = ReadRunEnvironmentFromProcess();
  if (!env.ok()) {
    RunEnvironment fallback;
    if (const char* p = std::getenv("FLOWRUN_TERMINATION_MESSAGE_PATH")) fallback.termination_message_path = p;
    if (const char* a = std::getenv("FLOWRUN_ATTEMPT")) fallback.attempt = std::atoi(a);
    return Report(fallback, OutcomeOf(OutcomeKind::kConfigError, env.status().message()));
  }
  return run_flow(fn, *env);
}

int run_flow(const FlowFunction& fn, const RunEnvironment& env) {
  std::signal(SIGPIPE, SIG_IGN);
  // SIGTERM (pod deleted, node drained): the "terminated" outcome at once
  // instead of a SIGKILL after the grace period (termination_signal.h). Every
  // report of this execution's own outcome claims first.
  TerminationWatcher termination([&env] {
    return Report(env, OutcomeOf(OutcomeKind::kTerminated,
                                 "SIGTERM: the pod is being deleted; the run resumes from its checkpoints"));
  });
  auto report = [&](Outcome o) {
    termination.ClaimOutcome();
    return Report(env, std::move(o));
  };
  SystemClock clock;

  PriceTable prices;
  if (!env.price_table_path.empty()) {
    auto loaded = PriceTable::LoadFile(env.price_table_path);
    if (!loaded.ok()) return report(OutcomeOf(OutcomeKind::kConfigError, loaded.status().message()));
    prices = std::move(loaded).value();
  }

  PostgresOptions popts;
  popts.conninfo = env.database_url;
  popts.application_name = "flowrun:" + env.run.uid.substr(0, 40);
  popts.connect_attempts = env.db_connect_attempts;
  popts.initial_backoff = env.db_retry_initial_backoff;
  popts.clock = &clock;
  auto opened = OpenPostgresRunStore(popts);
  if (!opened.ok()) {
    bool config = opened.status().code() == StatusCode::kInvalidArgument;
    return report(OutcomeOf(config ? OutcomeKind::kConfigError : OutcomeKind::kDatabaseUnavailable, opened.status().message()));
  }
  std::unique_ptr<RunStore> store = std::move(opened).value();
  auto start = store->Begin(env.run, env.attempt, env.parameters, env.initial_budget_usd);
  if (!start.ok()) {
    OutcomeKind kind = start.status().code() == StatusCode::kFailedPrecondition ? OutcomeKind::kCancelled
                       : start.status().code() == StatusCode::kUnavailable ? OutcomeKind::kDatabaseUnavailable
                                                                           : OutcomeKind::kFailed;
    return report(OutcomeOf(kind, start.status().message()));
  }
  Log(env, "info", "execution started",
      {{"epoch", start->epoch}, {"cachedCheckpoints", start->completed.size()}, {"flow", env.run.flow}});

  std::unique_ptr<HttpTransport> http = MakeCppRestTransport();
  Flow* flow_ptr = nullptr;

  // Ends the execution: the run's row, then the termination message.
  auto finalize = [&](Outcome o) -> int {
    termination.ClaimOutcome();
    if (flow_ptr) {
      const ExecutionStats& s = flow_ptr->stats();
      o.live_checkpoints = s.live_checkpoints;
      o.cached_checkpoints = s.cached_checkpoints;
      o.spent = s.spent_here;
      o.saved = s.saved;
      o.run_spent_usd = flow_ptr->run_spent_usd();
    }
    if (o.kind != OutcomeKind::kFenced) {
      FinishRequest f;
      f.outcome = o.kind;
      f.reason = o.reason;
      f.result = o.result;
      f.error = o.error;
      if (o.wait) f.open_wait = o.wait->name;
      f.live_checkpoints = o.live_checkpoints;
      f.cached_checkpoints = o.cached_checkpoints;
      f.reexecuted_checkpoints = flow_ptr ? flow_ptr->stats().reexecuted_checkpoints : 0;
      f.saved = o.saved;
      Status st = store->Finish(f);
      if (st.code() == StatusCode::kAborted) {
        o = OutcomeOf(OutcomeKind::kFenced, st.message());
      } else if (!st.ok()) {
        Log(env, "error", "could not record the outcome", {{"error", st.ToString()}});
        if (o.kind == OutcomeKind::kSucceeded || IsSuspension(o.kind))
          o = OutcomeOf(OutcomeKind::kDatabaseUnavailable, st.message());
      }
    }
    if (o.result) {
      // The result lives in PostgreSQL; the termination message carries it only if small.
      if (o.result->dump().size() > 1024) o.result.reset();
    }
    return Report(env, std::move(o));
  };

  FlowDeps deps;
  deps.env = &env;
  deps.store = store.get();
  deps.clock = &clock;
  deps.prices = &prices;
  deps.http = http.get();
  deps.warn = [&env](const std::string& m) { Log(env, "warning", m); };
  deps.on_suspend = [&](const Outcome& o) {
    int code = finalize(o);
    std::cout.flush();
    std::cerr.flush();
    std::fflush(nullptr);
    // No user code may run after a suspension, so no unwinding: exit now.
    // _Exit also skips cpprestsdk's static destructors, which crash at exit.
    std::_Exit(code);
  };
  Flow flow(std::move(deps), std::move(start).value());
  flow_ptr = &flow;

  try {
    nlohmann::json result = fn(flow);
    std::string text;
    try {
      text = result.dump();
    } catch (const nlohmann::json::exception& e) {
      return finalize(OutcomeOf(OutcomeKind::kFailed, std::string("the flow's result is not serializable as JSON: ") + e.what()));
    }
    if (text.size() > env.max_output_bytes)
      return finalize(OutcomeOf(OutcomeKind::kFailed, "the flow's result is " + std::to_string(text.size()) +
                                              " bytes, over the cap of " + std::to_string(env.max_output_bytes)));
    Outcome o = OutcomeOf(OutcomeKind::kSucceeded, "");
    o.result = nlohmann::json::parse(text);
    return finalize(std::move(o));
  } catch (const FlowSuspended& s) {
    return ExitCodeFor(s.outcome);  // on_suspend already finalized (only reached if it returned)
  } catch (const WaitTimedOutError& e) {
    return finalize(OutcomeOf(OutcomeKind::kFailed, e.status().message(), FailureReason::kWaitTimedOut));
  } catch (const FencedError& e) {
    return finalize(OutcomeOf(OutcomeKind::kFenced, e.status().message()));
  } catch (const DivergenceError& e) {
    return finalize(OutcomeOf(OutcomeKind::kDivergence, e.status().message()));
  } catch (const StoreError& e) {
    bool unavailable = e.status().code() == StatusCode::kUnavailable || e.status().code() == StatusCode::kUnknown;
    Outcome o = OutcomeOf(unavailable ? OutcomeKind::kDatabaseUnavailable : OutcomeKind::kFailed, e.status().message());
    return finalize(std::move(o));
  } catch (const FlowError& e) {
    return finalize(OutcomeOf(OutcomeKind::kFailed, e.status().message()));
  } catch (const std::exception& e) {
    return finalize(OutcomeOf(OutcomeKind::kFailed, std::string("the flow threw: ") + e.what()));
  } catch (...) {
    return finalize(OutcomeOf(OutcomeKind::kFailed, "the flow threw an exception not derived from std::exception"));
  }
}

}  // namespace flowrun
