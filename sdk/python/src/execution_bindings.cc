// Binding of flowrun::Execution (runtime-lib/include/flowrun/execution.h), the
// step-wise engine the Python SDK drives: Reserve → Begin → TryStarted →
// Complete/Fail, ResolveWait, LLM calls, artifacts, Suspend/Finish.
//
// Every call that may touch PostgreSQL or the network releases the GIL
// (arguments are converted to C++ first, results back after), so other Python
// threads run meanwhile. Errors come back as flowrun.errors exceptions
// (status_to_python.h); the engine's sticky errors stay sticky because the
// engine, not this layer, remembers them.
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nanobind/nanobind.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/unique_ptr.h>
#include <nanobind/stl/vector.h>

#include "bindings.h"
#include "flowrun/environment.h"
#include "flowrun/execution.h"
#include "flowrun/llm_client.h"
#include "flowrun/outcome.h"
#include "status_to_python.h"

namespace nb = nanobind;

namespace flowrun::python {

namespace {

using GilRelease = nb::gil_scoped_release;

CheckpointKind KindOf(const std::string& kind) {
  if (kind == "step") return CheckpointKind::kStep;
  if (kind == "wait") return CheckpointKind::kWait;
  throw nb::value_error(("kind must be 'step' or 'wait', got '" + kind + "'").c_str());
}

std::optional<DivergencePolicy> PolicyOf(const std::optional<std::string>& p) {
  if (!p) return std::nullopt;
  if (*p == "fail") return DivergencePolicy::kFail;
  if (*p == "rerun") return DivergencePolicy::kRerun;
  throw nb::value_error(("on_divergence must be 'fail' or 'rerun', got '" + *p + "'").c_str());
}

nlohmann::json ParseJson(const std::string& text, const char* what) {
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    throw nb::value_error((std::string(what) + " is not valid JSON: " + e.what()).c_str());
  }
}

std::optional<nlohmann::json> ParseOptionalJson(const std::optional<std::string>& text, const char* what) {
  if (!text) return std::nullopt;
  return ParseJson(*text, what);
}

LlmCall CallOf(const std::string& model, std::optional<int64_t> input_tokens, std::optional<int64_t> output_tokens,
               std::optional<int64_t> cached_tokens, double latency_ms, std::optional<double> cost_usd) {
  LlmCall c;
  c.model = model;
  c.input_tokens = input_tokens.value_or(0);
  c.output_tokens = output_tokens.value_or(0);
  c.cached_tokens = cached_tokens.value_or(0);
  c.latency = std::chrono::milliseconds(static_cast<int64_t>(std::llround(latency_ms)));
  c.cost_usd = cost_usd;
  return c;
}

// The runtime's own LLM client inside one call of flowrun.llm(): the sink
// routes the client's usage into the engine under the caller's checkpoint,
// through the very engine calls C++ Flow's sink makes (flow.cc): a budget
// suspension stops the client before its request (thrown as BudgetStop,
// caught below) so Python can drain and suspend; a call that got no response
// after the client's retries is finished *failed* with the client's error
// (Execution::FailLlmCall: state 'failed', cost unknown, outside the usage
// totals), exactly the row a C++ agent's Flow::llm() leaves
// (sdk/python/tests/test_parity.py compares them).
struct BudgetStop {
  Suspension suspension;
};

class EngineSink final : public LlmCallSink {
 public:
  EngineSink(Execution* ex, std::optional<CheckpointKey> key) : ex_(ex), key_(std::move(key)) {}
  int64_t BeforeLlmCall(const std::string& model, int64_t estimated_input_tokens) override {
    auto started = ex_->BeforeLlmCall(key_, model, estimated_input_tokens);
    if (!started.ok()) throw StatusError{started.status()};
    if (started->suspension) throw BudgetStop{*started->suspension};
    return started->call_id;
  }
  void AfterLlmCall(int64_t token, const LlmCall& call) override {
    Status st = ex_->FinishLlmCall(token, call, true);
    if (!st.ok()) throw StatusError{st};
  }
  void LlmCallFailed(int64_t token, const Status& error) override {
    Status st = ex_->FailLlmCall(token, error.ToString());
    if (!st.ok()) throw StatusError{st};
  }
  struct StatusError {
    Status status;
  };

 private:
  Execution* ex_;
  std::optional<CheckpointKey> key_;
};

nb::dict StatsDict(const ExecutionStats& s) {
  auto usage = [](const Usage& u) {
    nb::dict d;
    d["llm_calls"] = u.llm_calls;
    d["input_tokens"] = u.input_tokens;
    d["output_tokens"] = u.output_tokens;
    d["cached_tokens"] = u.cached_tokens;
    d["cost_usd"] = u.cost_usd;
    d["unknown_cost_calls"] = u.unknown_cost_calls;
    return d;
  };
  nb::dict d;
  d["live_checkpoints"] = s.live_checkpoints;
  d["cached_checkpoints"] = s.cached_checkpoints;
  d["reexecuted_checkpoints"] = s.reexecuted_checkpoints;
  d["copied_checkpoints"] = s.copied_checkpoints;
  d["inherited"] = usage(s.inherited);
  d["saved"] = usage(s.saved);
  d["spent_here"] = usage(s.spent_here);
  return d;
}

}  // namespace

void BindExecution(nb::module_& m) {
  nb::class_<CheckpointKey>(m, "Key", "A checkpoint's identity in a run: (name, occurrence).")
      .def(nb::init<>())
      .def_rw("name", &CheckpointKey::name)
      .def_rw("occurrence", &CheckpointKey::occurrence)
      .def("__eq__", [](const CheckpointKey& a, const CheckpointKey& b) { return a == b; })
      .def("__hash__", [](const CheckpointKey& k) { return nb::hash(nb::make_tuple(k.name, k.occurrence)); })
      .def("__repr__", [](const CheckpointKey& k) {
        return "Key(" + nb::cast<std::string>(nb::repr(nb::str(k.name.c_str()))) + ", " + std::to_string(k.occurrence) + ")";
      });

  nb::class_<Suspension>(m, "Suspension", "A suspension the engine decided on; pass it to Execution.suspend().")
      .def_prop_ro("kind", [](const Suspension& s) { return std::string(OutcomeKindName(s.outcome.kind)); })
      .def_prop_ro("wait_name", [](const Suspension& s) -> std::optional<std::string> {
        if (!s.outcome.wait) return std::nullopt;
        return s.outcome.wait->name;
      })
      .def_prop_ro("message", [](const Suspension& s) { return s.outcome.error; });

  m.def(
      "report_config_error",
      [](const std::string& message) {
        // As run_flow reports an invalid environment: the termination message
        // and the "execution ended" line, no database row (nothing was opened).
        RunEnvironment env;
        auto read = ReadRunEnvironmentFromProcess();
        if (read.ok()) env = *read;
        else {
          if (const char* p = std::getenv("FLOWRUN_TERMINATION_MESSAGE_PATH")) env.termination_message_path = p;
          if (const char* a = std::getenv("FLOWRUN_ATTEMPT")) env.attempt = std::atoi(a);
          if (const char* u = std::getenv("FLOWRUN_RUN_UID")) env.run.uid = u;
        }
        Outcome o;
        o.kind = OutcomeKind::kConfigError;
        o.attempt = env.attempt;
        o.error = message;
        Status st = WriteTerminationMessage(env.termination_message_path, o);
        ExecutionLogger log = StderrJsonLogger(env);
        if (!st.ok()) log("warning", st.ToString(), nlohmann::json::object());
        int code = ExitCodeFor(o);
        log("error", "execution ended",
            {{"outcome", std::string(OutcomeKindName(o.kind))}, {"exitCode", code}, {"error", message}});
        return code;
      },
      nb::arg("message"), "Reports a configuration error (exit code 2) without opening the execution (python -m flowrun run "
      "with a target that does not load); returns the code.");

  nb::class_<Execution>(m, "Execution", "One execution of a run: the C++ engine (flowrun/execution.h).")
      .def_static(
          "open_from_process",
          []() -> std::pair<std::unique_ptr<Execution>, int> {
            OpenedExecution opened;
            {
              GilRelease release;
              opened = Execution::OpenFromProcess();
            }
            return {std::move(opened.execution), opened.exit_code};
          },
          "(execution, 0), or (None, exit code) when the outcome was already reported (bad environment, "
          "database unavailable, cancelled run, ...).")
      .def_prop_ro("run_uid", [](const Execution& e) { return e.run().uid; })
      .def_prop_ro("run_name", [](const Execution& e) { return e.run().name; })
      .def_prop_ro("run_namespace", [](const Execution& e) { return e.run().namespace_; })
      .def_prop_ro("flow", [](const Execution& e) { return e.run().flow; })
      .def_prop_ro("attempt", &Execution::attempt)
      .def_prop_ro("epoch", &Execution::epoch)
      .def_prop_ro("is_replay", &Execution::is_replay,
                   "True when the run is a prepared replay of another run (Execution::is_replay).")
      .def_prop_ro("parameters_json", [](const Execution& e) { return e.parameters().dump(); })
      .def_prop_ro("on_divergence", [](const Execution& e) {
        return std::string(e.env().on_divergence == DivergencePolicy::kRerun ? "rerun" : "fail");
      })
      .def("stats", [](const Execution& e) { return StatsDict(e.stats()); })
      .def("run_spent_usd", &Execution::run_spent_usd)
      .def("sticky_error", [](const Execution& e) -> std::optional<std::pair<std::string, std::string>> {
        auto s = e.sticky_error();
        if (!s) return std::nullopt;
        return std::make_pair(std::string(StatusCodeName(s->code())), s->message());
      })
      .def("warn", [](Execution& e, const std::string& msg) { GilRelease r; e.Warn(msg); }, nb::arg("message"))
      .def(
          "reserve",
          [](Execution& e, const std::string& name, const std::string& kind, std::optional<std::string> key) {
            CheckpointKind k = KindOf(kind);
            StatusOr<CheckpointKey> r = InvalidArgument("unset");
            {
              GilRelease release;
              r = key ? e.Reserve(name, k, std::string_view(*key)) : e.Reserve(name, k);
            }
            return ValueOrRaise(std::move(r));
          },
          nb::arg("name"), nb::arg("kind") = "step", nb::arg("key").none() = nb::none())
      .def(
          "begin",
          [](Execution& e, const CheckpointKey& key, std::optional<std::string> inputs_json,
             std::optional<std::string> on_divergence,
             std::optional<std::string> digest_inputs_json) -> std::optional<std::string> {
            auto inputs = ParseOptionalJson(inputs_json, "inputs");
            auto digest_inputs = ParseOptionalJson(digest_inputs_json, "digest_inputs");
            auto policy = PolicyOf(on_divergence);
            StatusOr<BeginResult> r = InvalidArgument("unset");
            {
              GilRelease release;
              r = e.Begin(key, inputs, policy, digest_inputs);
            }
            BeginResult b = ValueOrRaise(std::move(r));
            if (!b.cached) return std::nullopt;
            return b.output.dump();
          },
          nb::arg("key"), nb::arg("inputs_json").none(), nb::arg("on_divergence").none() = nb::none(),
          nb::arg("digest_inputs_json").none() = nb::none(),
          "The cached output (JSON text) or None: run the body live. digest_inputs_json: what the "
          "name-independent inputs digest (rename detection) covers; None: the inputs.")
      .def(
          "declare_checkpoint_names",
          [](Execution& e, const std::vector<std::string>& names) { e.DeclareCheckpointNames(names); },
          nb::arg("names"), "Checkpoint names the running code defines: never taken for a renamed one's old name.")
      .def(
          "try_started",
          [](Execution& e, const CheckpointKey& key, int try_number) {
            StatusOr<bool> r = false;
            {
              GilRelease release;
              r = e.TryStarted(key, try_number);
            }
            return ValueOrRaise(std::move(r));
          },
          nb::arg("key"), nb::arg("try_number"))
      .def(
          "complete",
          [](Execution& e, const CheckpointKey& key, const std::string& output_json) {
            StatusOr<std::string> r = InvalidArgument("unset");
            {
              GilRelease release;
              r = e.Complete(key, std::string_view(output_json));
            }
            return ValueOrRaise(std::move(r));
          },
          nb::arg("key"), nb::arg("output_json"), "Stores the output; returns its canonical JSON text.")
      .def(
          "fail",
          [](Execution& e, const CheckpointKey& key, int try_number, bool final_try, const std::string& message) {
            Status st;
            {
              GilRelease release;
              st = e.Fail(key, try_number, final_try, message);
            }
            OkOrRaise(st);
          },
          nb::arg("key"), nb::arg("try_number"), nb::arg("final_try"), nb::arg("message"))
      .def(
          "resolve_wait",
          [](Execution& e, const CheckpointKey& key, const std::string& question, const std::string& schema_json,
             std::optional<double> timeout_seconds, std::optional<std::string> on_timeout,
             std::optional<std::string> default_json, std::optional<std::string> on_divergence) -> nb::tuple {
            WaitSpec spec;
            spec.question = question;
            spec.schema = ParseJson(schema_json, "schema");
            if (timeout_seconds)
              spec.timeout = std::chrono::seconds(static_cast<int64_t>(std::ceil(*timeout_seconds)));
            if (on_timeout) {
              auto p = ParseOnTimeout(*on_timeout);
              if (!p) throw nb::value_error(("on_timeout must be 'fail' or 'default', got '" + *on_timeout + "'").c_str());
              spec.on_timeout = *p;
            }
            spec.default_answer = ParseOptionalJson(default_json, "default");
            spec.on_divergence = PolicyOf(on_divergence);
            StatusOr<WaitResult> r = InvalidArgument("unset");
            {
              GilRelease release;
              r = e.ResolveWait(key, spec);
            }
            WaitResult w = ValueOrRaise(std::move(r));
            switch (w.kind) {
              case WaitResult::Kind::kAnswered:
                return nb::make_tuple("answered", w.answer.dump());
              case WaitResult::Kind::kTimedOut:
                return nb::make_tuple("timed_out", w.message);
              case WaitResult::Kind::kPending:
                break;
            }
            return nb::make_tuple("pending", nb::cast(*w.suspension));
          },
          nb::arg("key"), nb::arg("question"), nb::arg("schema_json"), nb::arg("timeout_seconds").none(),
          nb::arg("on_timeout").none(), nb::arg("default_json").none(), nb::arg("on_divergence").none() = nb::none(),
          "('answered', answer JSON) | ('timed_out', message) | ('pending', Suspension).")
      .def(
          "before_llm_call",
          [](Execution& e, std::optional<CheckpointKey> key, const std::string& model, int64_t estimated) -> nb::object {
            StatusOr<LlmCallStart> r = InvalidArgument("unset");
            {
              GilRelease release;
              r = e.BeforeLlmCall(key, model, estimated);
            }
            LlmCallStart s = ValueOrRaise(std::move(r));
            if (s.suspension) return nb::cast(*s.suspension);
            return nb::cast(s.call_id);
          },
          nb::arg("key").none(), nb::arg("model"), nb::arg("estimated_input_tokens") = 0,
          "The started call's id (int), or a Suspension when the budget is exhausted (nothing recorded).")
      .def(
          "finish_llm_call",
          [](Execution& e, int64_t call_id, const std::string& model, std::optional<int64_t> input_tokens,
             std::optional<int64_t> output_tokens, std::optional<int64_t> cached_tokens, double latency_ms,
             std::optional<double> cost_usd, bool complete) {
            LlmCall c = CallOf(model, input_tokens, output_tokens, cached_tokens, latency_ms, cost_usd);
            // Unknown token counts make the call's cost unknown, never a silent zero.
            bool known = complete && input_tokens && output_tokens;
            Status st;
            {
              GilRelease release;
              st = e.FinishLlmCall(call_id, c, known || (complete && cost_usd.has_value()));
            }
            OkOrRaise(st);
          },
          nb::arg("call_id"), nb::kw_only(), nb::arg("model"), nb::arg("input_tokens").none(),
          nb::arg("output_tokens").none(), nb::arg("cached_tokens").none(), nb::arg("latency_ms"),
          nb::arg("cost_usd").none() = nb::none(), nb::arg("complete") = true)
      .def(
          "fail_llm_call",
          [](Execution& e, int64_t call_id, const std::string& error) {
            Status st;
            {
              GilRelease release;
              st = e.FailLlmCall(call_id, error);
            }
            OkOrRaise(st);
          },
          nb::arg("call_id"), nb::arg("error"),
          "Finishes a started call that got no response (the provider call raised): a 'failed' row with "
          "the error, outside the usage totals (Execution::FailLlmCall).")
      .def(
          "record_llm_call",
          [](Execution& e, std::optional<CheckpointKey> key, const std::string& model, int64_t input_tokens,
             int64_t output_tokens, int64_t cached_tokens, double latency_ms, std::optional<double> cost_usd) {
            LlmCall c = CallOf(model, input_tokens, output_tokens, cached_tokens, latency_ms, cost_usd);
            Status st;
            {
              GilRelease release;
              st = e.RecordLlmCall(key, c);
            }
            OkOrRaise(st);
          },
          nb::arg("key").none(), nb::arg("model"), nb::arg("input_tokens"), nb::arg("output_tokens"),
          nb::arg("cached_tokens") = 0, nb::arg("latency_ms") = 0.0, nb::arg("cost_usd").none() = nb::none())
      .def(
          "llm_chat",
          [](Execution& e, std::optional<CheckpointKey> key, std::vector<std::pair<std::string, std::string>> messages,
             std::optional<std::string> model, std::optional<double> temperature,
             std::optional<int> max_tokens) -> nb::object {
            ChatRequest req;
            for (auto& [role, content] : messages) req.messages.push_back({role, content});
            req.model = model.value_or("");
            req.temperature = temperature;
            req.max_tokens = max_tokens;
            std::optional<Suspension> stop;
            std::optional<Status> failed;
            std::string llm_error;
            ChatResponse resp;
            {
              GilRelease release;
              LlmClientOptions o;
              o.base_url = e.env().llm_base_url;
              o.api_key = e.env().llm_api_key;
              o.default_model = e.env().llm_model;
              EngineSink sink(&e, key);
              LlmClient client(o, e.http(), e.clock() ? e.clock() : DefaultClock(), &sink);
              try {
                resp = client.Chat(req);
              } catch (const BudgetStop& b) {
                stop = b.suspension;
              } catch (const EngineSink::StatusError& s) {
                failed = s.status;
              } catch (const LlmError& err) {
                llm_error = err.what();
              }
            }
            if (stop) return nb::cast(*stop);
            if (failed) RaiseStatus(*failed);
            if (!llm_error.empty()) {
              nb::object errors = nb::module_::import_("flowrun.errors");
              nb::object exc = errors.attr("LlmError")(llm_error);
              PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(exc.ptr())), exc.ptr());
              throw nb::python_error();
            }
            return nb::make_tuple(resp.content, resp.model);
          },
          nb::arg("key").none(), nb::arg("messages"), nb::arg("model").none() = nb::none(),
          nb::arg("temperature").none() = nb::none(), nb::arg("max_tokens").none() = nb::none(),
          "The runtime's OpenAI-compatible client: (content, model), or a Suspension (budget exhausted, "
          "nothing sent). The GIL is released for the whole call.")
      .def(
          "save_artifact",
          [](Execution& e, const std::string& name, const std::string& content_type, nb::bytes data,
             std::optional<CheckpointKey> key) {
            std::string bytes(data.c_str(), data.size());
            StatusOr<int> r = InvalidArgument("unset");
            {
              GilRelease release;
              r = e.SaveArtifact(name, content_type, bytes, key);
            }
            return ValueOrRaise(std::move(r));
          },
          nb::arg("name"), nb::arg("content_type"), nb::arg("data"), nb::arg("key").none() = nb::none())
      .def(
          "suspend",
          [](Execution& e, const Suspension& s) {
            GilRelease release;
            return e.Suspend(s);
          },
          nb::arg("suspension"), "Ends the process suspended (production never returns).")
      .def(
          "finish",
          [](Execution& e, const std::string& result_json) {
            GilRelease release;
            return e.Finish(std::string_view(result_json));
          },
          nb::arg("result_json"), "Ends the execution with the flow's result; returns the exit code.")
      .def(
          "finish_with_error",
          [](Execution& e, const std::string& reason, const std::string& message) {
            FlowEndReason r = reason == "wait_timed_out" ? FlowEndReason::kWaitTimedOut
                              : reason == "config_error" ? FlowEndReason::kConfigError
                                                         : FlowEndReason::kFlowFailed;
            GilRelease release;
            return e.FinishWithError(r, message);
          },
          nb::arg("reason"), nb::arg("message"),
          "reason 'flow_failed' | 'wait_timed_out' | 'config_error'; a sticky error overrides it. Returns the exit code.");
}

}  // namespace flowrun::python
