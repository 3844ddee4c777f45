// Flow: what an agent's code sees during one execution of a run.
//
// The flow function runs from the top on every execution. checkpoint()
// returns a stored output without running its body when (name, occurrence)
// completed before; otherwise it runs the body and stores the output before
// returning. wait() returns a recorded answer or suspends the run: it records
// the question, writes the "waiting" outcome and ends the process with exit
// code 0 — no user code runs after a suspending wait().
//
// Errors reach agent code as exceptions derived from FlowError; run_flow()
// turns them into the run's outcome and exit code. Swallowing them does not
// help: fenced, store and divergence errors are sticky (execution.h), every
// later call throws again and the outcome stays what they imply.
// Thread safety: checkpoint(), llm(), record_llm_call() and save_artifact*()
// may be called from several threads at once; each thread's body gets its
// own LLM usage. wait() belongs to the flow's scope, never inside a body.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <thread>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>

#include <nlohmann/json.hpp>

#include "flowrun/clock.h"
#include "flowrun/environment.h"
#include "flowrun/execution.h"
#include "flowrun/llm_client.h"
#include "flowrun/outcome.h"
#include "flowrun/price_table.h"
#include "flowrun/run_store.h"
#include "flowrun/schema_validator.h"
#include "flowrun/status.h"

namespace flowrun {

struct RetryPolicy {
  int max_tries = 1;  // 1: no retry. The LLM client already retries transient HTTP errors.
  std::chrono::milliseconds initial_backoff{1000};
  double multiplier = 2.0;
  std::chrono::milliseconds max_backoff{60000};
};

struct CheckpointOptions {
  RetryPolicy retry;
  // What the body's output depends on. Part of the fingerprint: when a resumed
  // run reaches this checkpoint with different inputs, that is a divergence.
  std::optional<nlohmann::json> inputs;
  std::optional<DivergencePolicy> on_divergence;  // default: the run's
};

struct WaitOptions {
  std::optional<nlohmann::json> schema;  // default: derived from the answer type
  std::optional<std::chrono::seconds> timeout;  // default: FLOWRUN_WAIT_TIMEOUT_SECONDS
  std::optional<OnTimeout> on_timeout;          // default: FLOWRUN_WAIT_ON_TIMEOUT
  std::optional<nlohmann::json> default_answer; // required for kUseDefault
};

// Base of every error flowrun throws into agent code.
class FlowError : public std::runtime_error {
 public:
  explicit FlowError(Status status)
      : std::runtime_error(status.ToString()), status_(std::move(status)) {}
  const Status& status() const { return status_; }

 private:
  Status status_;
};
// A checkpoint's body failed on its last try.
class CheckpointFailedError : public FlowError { using FlowError::FlowError; };
// A resumed run reached a checkpoint whose recorded fingerprint differs.
class DivergenceError : public FlowError { using FlowError::FlowError; };
// A newer execution of this run took the fence; this one must stop.
class FencedError : public FlowError { using FlowError::FlowError; };
// The store failed (database unavailable after retries, bad input).
class StoreError : public FlowError { using FlowError::FlowError; };
// A wait's deadline passed and its policy is to fail.
class WaitTimedOutError : public FlowError { using FlowError::FlowError; };

// Thrown through the flow when a suspension's exit handler returned (tests,
// benchmarks; in production the process has ended). Not a std::exception.
struct FlowSuspended {
  Outcome outcome;
};

// The C++ driver of an Execution (execution.h), which does everything that
// must be right; Flow runs bodies, retries them per RetryPolicy and turns
// engine errors into exceptions.
class Flow final : public LlmCallSink {
 public:
  // `execution` must outlive the Flow.
  explicit Flow(Execution& execution);
  ~Flow() override;
  Flow(const Flow&) = delete;
  Flow& operator=(const Flow&) = delete;

  const nlohmann::json& parameters() const { return ex_.parameters(); }
  const RunIdentity& run() const { return ex_.run(); }
  int attempt() const { return ex_.attempt(); }
  int64_t epoch() const { return ex_.epoch(); }
  Execution& execution() { return ex_; }

  // Runs `body` at most once per (name, occurrence) across all executions of
  // the run, and returns its output — converted through JSON, so a live run
  // and a resumed one return exactly the same value.
  template <typename F>
  auto checkpoint(std::string_view name, F&& body, CheckpointOptions options = {}) {
    using R = std::decay_t<std::invoke_result_t<F&>>;
    if constexpr (std::is_void_v<R>) {
      RunCheckpoint(name, [&]() -> nlohmann::json { body(); return nullptr; }, options);
    } else {
      nlohmann::json out = RunCheckpoint(name, [&]() -> nlohmann::json { return nlohmann::json(body()); }, options);
      return out.get<R>();
    }
  }

  // Returns the answer to `question`, validated against the schema, or
  // suspends the run until a person answers.
  template <typename T = nlohmann::json>
  T wait(std::string_view name, std::string_view question, WaitOptions options = {}) {
    if (!options.schema) options.schema = DefaultSchemaFor<T>();
    return RunWait(name, question, options).template get<T>();
  }

  // The OpenAI-compatible client configured from the environment; its calls
  // are recorded (as started before the request, completed after), priced
  // and checked against the budget.
  LlmClient& llm();

  // Records an LLM call made by other means (another SDK). Inside a
  // checkpoint, attributed to it.
  void record_llm_call(const LlmCall& call);

  // Saves a new version of an artifact; returns its version number.
  int save_artifact(const std::string& name, const nlohmann::json& value);
  int save_artifact_bytes(const std::string& name, const std::string& bytes,
                          const std::string& content_type);

  ExecutionStats stats() const { return ex_.stats(); }
  // The spend of the whole run so far (earlier executions included).
  double run_spent_usd() const { return ex_.run_spent_usd(); }

  // LlmCallSink
  int64_t BeforeLlmCall(const std::string& model, int64_t estimated_input_tokens) override;
  void AfterLlmCall(int64_t token, const LlmCall& call) override;
  void LlmCallFailed(int64_t token, const Status& error) override;

  template <typename T>
  static nlohmann::json DefaultSchemaFor() {
    if constexpr (std::is_same_v<T, bool>) return {{"type", "boolean"}};
    else if constexpr (std::is_integral_v<T>) return {{"type", "integer"}};
    else if constexpr (std::is_floating_point_v<T>) return {{"type", "number"}};
    else if constexpr (std::is_same_v<T, std::string>) return {{"type", "string"}};
    else return nlohmann::json::object();
  }

 private:
  nlohmann::json RunCheckpoint(std::string_view name, const std::function<nlohmann::json()>& body,
                               const CheckpointOptions& options);
  nlohmann::json RunWait(std::string_view name, std::string_view question, const WaitOptions& options);
  // The checkpoint whose body runs on this thread; else, when exactly one
  // body runs (a body that spreads work over threads), that one.
  std::optional<CheckpointKey> CurrentCheckpoint() const;
  std::optional<CheckpointKey> BodyOfThisThread() const;
  void EnterBody(const CheckpointKey& key);
  void LeaveBody();
  [[noreturn]] void Throw(const Status& status) const;
  [[noreturn]] void SuspendNow(const Suspension& suspension);

  Execution& ex_;
  mutable std::mutex mu_;  // bodies_, llm_
  std::map<std::thread::id, CheckpointKey> bodies_;
  std::unique_ptr<LlmClient> llm_;
};

}  // namespace flowrun
