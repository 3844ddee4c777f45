// Flow: the C++ driver of the Execution engine. Everything that must be right
// is the engine's; here are the body, the retry loop and the exceptions.
#include "flowrun/flow.h"

#include <algorithm>

#include "execution_internal.h"

namespace flowrun {

using internal::Label;

Flow::Flow(Execution& execution) : ex_(execution) {}

Flow::~Flow() = default;

void Flow::Throw(const Status& status) const {
  switch (status.code()) {
    case StatusCode::kAborted: throw FencedError(status);
    case StatusCode::kDataLoss: throw DivergenceError(status);
    case StatusCode::kInvalidArgument:
    case StatusCode::kResourceExhausted: throw FlowError(status);
    default: throw StoreError(status);
  }
}

void Flow::SuspendNow(const Suspension& suspension) {
  ex_.Suspend(suspension);  // production: does not return
  throw FlowSuspended{suspension.outcome};
}

std::optional<CheckpointKey> Flow::BodyOfThisThread() const {
  std::lock_guard l(mu_);
  auto it = bodies_.find(std::this_thread::get_id());
  if (it == bodies_.end()) return std::nullopt;
  return it->second;
}

std::optional<CheckpointKey> Flow::CurrentCheckpoint() const {
  std::lock_guard l(mu_);
  auto it = bodies_.find(std::this_thread::get_id());
  if (it != bodies_.end()) return it->second;
  if (bodies_.size() == 1) return bodies_.begin()->second;
  return std::nullopt;
}

void Flow::EnterBody(const CheckpointKey& key) {
  std::lock_guard l(mu_);
  bodies_[std::this_thread::get_id()] = key;
}

void Flow::LeaveBody() {
  std::lock_guard l(mu_);
  bodies_.erase(std::this_thread::get_id());
}

nlohmann::json Flow::RunCheckpoint(std::string_view name, const std::function<nlohmann::json()>& body,
                                   const CheckpointOptions& options) {
  if (auto outer = BodyOfThisThread())
    throw FlowError(InvalidArgument("checkpoint '" + std::string(name) + "' called inside checkpoint '" +
                                    outer->name + "': checkpoints do not nest"));
  auto key = ex_.Reserve(name, CheckpointKind::kStep);
  if (!key.ok()) Throw(key.status());
  auto begun = ex_.Begin(*key, options.inputs, options.on_divergence);
  if (!begun.ok()) Throw(begun.status());
  if (begun->cached) return std::move(begun->output);

  const RetryPolicy& retry = options.retry;
  int max_tries = std::max(1, retry.max_tries);
  auto backoff = retry.initial_backoff;
  for (int attempt = 1;; ++attempt) {
    auto interrupted = ex_.TryStarted(*key, attempt);
    if (!interrupted.ok()) Throw(interrupted.status());
    EnterBody(*key);
    std::string error;
    bool retryable = true;
    nlohmann::json output;
    try {
      output = body();
    } catch (const FlowError&) {
      LeaveBody();
      throw;  // fencing, store and nested-use errors are not the body's failures
    } catch (const FlowSuspended&) {
      LeaveBody();
      throw;
    } catch (const std::exception& e) {
      error = e.what();
    } catch (...) {
      error = "unknown exception (not derived from std::exception)";
    }
    LeaveBody();

    if (error.empty()) {
      auto stored = ex_.Complete(*key, output);
      if (stored.ok()) return std::move(stored).value();
      StatusCode c = stored.status().code();
      if (c != StatusCode::kInvalidArgument && c != StatusCode::kResourceExhausted) Throw(stored.status());
      error = stored.status().message();  // not JSON, or over the cap: no retry helps
      retryable = false;
    }
    bool final_try = attempt >= max_tries || !retryable;
    Status st = ex_.Fail(*key, attempt, final_try, error);
    if (!st.ok()) Throw(st);
    if (final_try) {
      throw CheckpointFailedError(Status(StatusCode::kInternal, "checkpoint " + Label(*key) + " failed" +
                                         (attempt > 1 ? " after " + std::to_string(attempt) + " tries" : "") +
                                         ": " + error));
    }
    ex_.Warn("checkpoint " + Label(*key) + " try " + std::to_string(attempt) + " failed: " + error + "; retrying");
    ex_.clock()->SleepFor(backoff);
    backoff = std::min(std::chrono::duration_cast<std::chrono::milliseconds>(backoff * retry.multiplier),
                       retry.max_backoff);
  }
}

nlohmann::json Flow::RunWait(std::string_view name, std::string_view question, const WaitOptions& options) {
  if (auto outer = BodyOfThisThread())
    throw FlowError(InvalidArgument("wait '" + std::string(name) + "' called inside checkpoint '" + outer->name +
                                    "': a wait cannot be part of a checkpoint"));
  auto key = ex_.Reserve(name, CheckpointKind::kWait);
  if (!key.ok()) Throw(key.status());
  WaitSpec spec;
  spec.question = std::string(question);
  spec.schema = options.schema.value_or(nlohmann::json::object());
  spec.timeout = options.timeout;
  spec.on_timeout = options.on_timeout;
  spec.default_answer = options.default_answer;
  auto res = ex_.ResolveWait(*key, spec);
  if (!res.ok()) Throw(res.status());
  switch (res->kind) {
    case WaitResult::Kind::kAnswered:
      return std::move(res->answer);
    case WaitResult::Kind::kTimedOut:
      throw WaitTimedOutError(DeadlineExceeded(res->message));
    case WaitResult::Kind::kPending:
      break;
  }
  SuspendNow(*res->suspension);
}

LlmClient& Flow::llm() {
  std::lock_guard l(mu_);
  if (!llm_) {
    const RunEnvironment& env = ex_.env();
    LlmClientOptions o;
    o.base_url = env.llm_base_url;
    o.api_key = env.llm_api_key;
    o.default_model = env.llm_model;
    llm_ = std::make_unique<LlmClient>(o, ex_.http(), ex_.clock(), this);
  }
  return *llm_;
}

int64_t Flow::BeforeLlmCall(const std::string& model, int64_t estimated_input_tokens) {
  auto started = ex_.BeforeLlmCall(CurrentCheckpoint(), model, estimated_input_tokens);
  if (!started.ok()) Throw(started.status());
  if (started->suspension) SuspendNow(*started->suspension);
  return started->call_id;
}

void Flow::AfterLlmCall(int64_t token, const LlmCall& call) {
  Status st = ex_.FinishLlmCall(token, call, /*complete=*/true);
  if (!st.ok()) Throw(st);
}

void Flow::LlmCallFailed(int64_t token, const Status& error) {
  Status st = ex_.FailLlmCall(token, error.ToString());
  if (!st.ok()) Throw(st);
}

void Flow::record_llm_call(const LlmCall& call) {
  Status st = ex_.RecordLlmCall(CurrentCheckpoint(), call);
  if (!st.ok()) Throw(st);
}

int Flow::save_artifact(const std::string& name, const nlohmann::json& value) {
  std::string text;
  try {
    text = value.dump();
  } catch (const nlohmann::json::exception& e) {
    throw FlowError(InvalidArgument("artifact '" + name + "' is not serializable as JSON: " + e.what()));
  }
  return save_artifact_bytes(name, text, "application/json");
}

int Flow::save_artifact_bytes(const std::string& name, const std::string& bytes, const std::string& content_type) {
  auto v = ex_.SaveArtifact(name, content_type, bytes, CurrentCheckpoint());
  if (!v.ok()) Throw(v.status());
  return *v;
}

}  // namespace flowrun
