#include "flowrun/flow.h"

#include <cstdio>
#include <iostream>

namespace flowrun {

namespace {

constexpr size_t kMaxNameLength = 253;

void CheckName(std::string_view what, std::string_view name) {
  if (name.empty() || name.size() > kMaxNameLength)
    throw FlowError(InvalidArgument(std::string(what) + " name must be 1.." + std::to_string(kMaxNameLength) +
                                    " characters, got '" + std::string(name.substr(0, 64)) + "'"));
}

std::string Label(const CheckpointKey& key) {
  return "'" + key.name + "'" + (key.occurrence > 1 ? " (occurrence " + std::to_string(key.occurrence) + ")" : "");
}

}  // namespace

Flow::Flow(FlowDeps deps, ExecutionStart start)
    : env_(*deps.env),
      store_(deps.store),
      clock_(deps.clock),
      prices_(deps.prices),
      http_(deps.http),
      on_suspend_(std::move(deps.on_suspend)),
      warn_(std::move(deps.warn)),
      epoch_(start.epoch),
      cache_(std::move(start.completed)),
      budget_usd_(start.budget_usd),
      run_spent_usd_(start.spent_usd) {
  if (!warn_) warn_ = [](const std::string& m) { std::cerr << "flowrun: warning: " << m << std::endl; };
}

Flow::~Flow() = default;

void Flow::Warn(const std::string& message) { warn_(message); }

CheckpointKey Flow::NextKey(std::string_view name) {
  auto it = occurrences_.find(name);
  if (it == occurrences_.end()) it = occurrences_.emplace(std::string(name), 0).first;
  return CheckpointKey{std::string(name), ++it->second};
}

void Flow::ThrowStoreError(const Status& status, std::string_view what) {
  Status s = status.WithContext(what);
  if (status.code() == StatusCode::kAborted) throw FencedError(s);
  throw StoreError(s);
}

std::optional<nlohmann::json> Flow::FromCache(const CheckpointKey& key, CheckpointKind kind,
                                              const std::string& fingerprint, DivergencePolicy policy) {
  auto it = cache_.find(key);
  if (it == cache_.end()) return std::nullopt;
  const CachedCheckpoint& cp = it->second;
  if (cp.kind == kind && cp.fingerprint == fingerprint) return cp.output;
  std::string msg = "checkpoint " + Label(key) + " diverged: it was recorded as a " +
                    std::string(CheckpointKindName(cp.kind)) + " with fingerprint " + cp.fingerprint +
                    " (attempt " + std::to_string(cp.attempt) + "), but this run reaches it as a " +
                    std::string(CheckpointKindName(kind)) + " with fingerprint " + fingerprint +
                    ". The flow's code or the checkpoint's inputs changed since it was recorded";
  if (policy == DivergencePolicy::kFail)
    throw DivergenceError(DataLoss(msg + "; refusing to return an output computed for something else "
                                         "(set FLOWRUN_ON_DIVERGENCE=rerun to recompute diverged checkpoints)"));
  Warn(msg + "; recomputing it (FLOWRUN_ON_DIVERGENCE=rerun)");
  cache_.erase(it);
  return std::nullopt;
}

nlohmann::json Flow::RunCheckpoint(std::string_view name, const std::function<nlohmann::json()>& body,
                                   const CheckpointOptions& options) {
  CheckName("checkpoint", name);
  if (current_checkpoint_)
    throw FlowError(InvalidArgument("checkpoint '" + std::string(name) + "' called inside checkpoint '" +
                                    current_checkpoint_->name + "': checkpoints do not nest"));
  CheckpointKey key = NextKey(name);
  std::string fp = CheckpointFingerprint(CheckpointKind::kStep, name, options.inputs);
  DivergencePolicy policy = options.on_divergence.value_or(env_.on_divergence);
  if (auto cached = FromCache(key, CheckpointKind::kStep, fp, policy)) {
    ++stats_.cached_checkpoints;
    stats_.saved += cache_.at(key).usage;
    return std::move(*cached);
  }

  ++stats_.live_checkpoints;
  const RetryPolicy& retry = options.retry;
  int max_tries = std::max(1, retry.max_tries);
  auto backoff = retry.initial_backoff;
  for (int attempt = 1;; ++attempt) {
    auto interrupted = store_->CheckpointStarted(key, CheckpointKind::kStep, fp, attempt);
    if (!interrupted.ok()) ThrowStoreError(interrupted.status(), "checkpoint " + Label(key));
    if (*interrupted) {
      ++stats_.reexecuted_checkpoints;
      Warn("checkpoint " + Label(key) + " runs again: an earlier execution started it and was interrupted "
           "before its output was stored");
    }
    current_checkpoint_ = key;
    current_try_ = attempt;
    current_usage_ = Usage{};
    TimePoint started = clock_->Now();
    std::string error;
    bool retryable = true;
    nlohmann::json output;
    try {
      output = body();
    } catch (const FlowError&) {
      current_checkpoint_.reset();
      throw;  // fencing, store and nested-use errors are not the body's failures
    } catch (const FlowSuspended&) {
      current_checkpoint_.reset();
      throw;
    } catch (const std::exception& e) {
      error = e.what();
    } catch (...) {
      error = "unknown exception (not derived from std::exception)";
    }
    current_checkpoint_.reset();

    std::string text;
    if (error.empty()) {
      try {
        text = output.dump();
      } catch (const nlohmann::json::exception& e) {
        error = std::string("output is not serializable as JSON: ") + e.what();
        retryable = false;
      }
      if (error.empty() && text.size() > env_.max_output_bytes) {
        error = "output is " + std::to_string(text.size()) + " bytes, over the cap of " +
                std::to_string(env_.max_output_bytes) + " (FLOWRUN_MAX_OUTPUT_BYTES); store big data as an artifact";
        retryable = false;
      }
    }
    if (error.empty()) {
      Status st = store_->CheckpointCompleted(key, CheckpointKind::kStep, fp, text, started, clock_->Now(),
                                              current_usage_);
      if (!st.ok()) ThrowStoreError(st, "checkpoint " + Label(key));
      // What the caller gets is what a resumed run will get from the cache.
      return nlohmann::json::parse(text);
    }
    bool final_try = attempt >= max_tries || !retryable;
    Status st = store_->CheckpointFailed(key, attempt, final_try, error);
    if (!st.ok()) ThrowStoreError(st, "checkpoint " + Label(key));
    if (final_try) {
      throw CheckpointFailedError(Status(StatusCode::kInternal, "checkpoint " + Label(key) + " failed" +
                                         (attempt > 1 ? " after " + std::to_string(attempt) + " tries" : "") +
                                         ": " + error));
    }
    Warn("checkpoint " + Label(key) + " try " + std::to_string(attempt) + " failed: " + error + "; retrying");
    clock_->SleepFor(backoff);
    backoff = std::min(std::chrono::duration_cast<std::chrono::milliseconds>(backoff * retry.multiplier),
                       retry.max_backoff);
  }
}

nlohmann::json Flow::RunWait(std::string_view name, std::string_view question, const WaitOptions& options) {
  CheckName("wait", name);
  if (current_checkpoint_)
    throw FlowError(InvalidArgument("wait '" + std::string(name) + "' called inside checkpoint '" +
                                    current_checkpoint_->name + "': a wait cannot be part of a checkpoint"));
  CheckpointKey key = NextKey(name);
  nlohmann::json schema = options.schema.value_or(nlohmann::json::object());
  std::string fp = CheckpointFingerprint(CheckpointKind::kWait, name, schema);
  if (auto cached = FromCache(key, CheckpointKind::kWait, fp, env_.on_divergence)) {
    ++stats_.cached_checkpoints;
    return std::move(*cached);
  }

  WaitRequest req;
  req.key = key;
  req.fingerprint = fp;
  req.question = std::string(question);
  req.schema = schema;
  req.timeout = options.timeout ? options.timeout : env_.default_wait_timeout;
  req.on_timeout = options.on_timeout.value_or(env_.default_on_timeout);
  req.default_answer = options.default_answer;
  if (req.on_timeout == OnTimeout::kUseDefault) {
    if (!req.default_answer)
      throw FlowError(InvalidArgument("wait '" + key.name + "' uses the 'default' timeout policy but has no default answer"));
    Status valid = ValidateAgainstSchema(schema, *req.default_answer);
    if (!valid.ok())
      throw FlowError(InvalidArgument("wait '" + key.name + "': default answer violates the schema: " + valid.message()));
  }
  auto res = store_->ResolveWait(req);
  if (!res.ok()) ThrowStoreError(res.status(), "wait " + Label(key));
  if (!res->rejected_early_answer.empty())
    Warn("early answer to wait " + Label(key) + " rejected: " + res->rejected_early_answer);
  switch (res->kind) {
    case WaitResolution::Kind::kAnswered:
      ++stats_.live_checkpoints;
      return res->answer;
    case WaitResolution::Kind::kTimedOutFail:
      throw WaitTimedOutError(DeadlineExceeded("wait " + Label(key) + " timed out without an answer"));
    case WaitResolution::Kind::kPending:
      break;
  }
  Outcome o;
  o.kind = OutcomeKind::kWaiting;
  OpenWait w;
  w.name = key.name;
  w.occurrence = key.occurrence;
  w.question = req.question;
  w.schema = schema;
  w.asked_at = clock_->Now();
  w.deadline = res->deadline;
  w.on_timeout = req.on_timeout;
  w.default_answer = req.default_answer;
  o.wait = std::move(w);
  Suspend(std::move(o));
}

void Flow::Suspend(Outcome outcome) {
  if (current_checkpoint_) {
    // A clean stop inside a body: mark the try failed (not interrupted), so the
    // resumed run runs it again without counting a re-execution.
    Status st = store_->CheckpointFailed(*current_checkpoint_, current_try_, false, "suspended: " + std::string(OutcomeKindName(outcome.kind)));
    if (!st.ok()) ThrowStoreError(st, "suspending");
    current_checkpoint_.reset();
  }
  if (on_suspend_) on_suspend_(outcome);
  throw FlowSuspended{std::move(outcome)};
}

LlmClient& Flow::llm() {
  if (!llm_) {
    if (http_ == nullptr) {
      owned_http_ = MakeCppRestTransport();
      http_ = owned_http_.get();
    }
    LlmClientOptions o;
    o.base_url = env_.llm_base_url;
    o.api_key = env_.llm_api_key;
    o.default_model = env_.llm_model;
    llm_ = std::make_unique<LlmClient>(o, http_, clock_, this);
  }
  return *llm_;
}

void Flow::BeforeLlmCall(const std::string& /*model*/) {
  auto b = store_->ReadBudget();
  if (!b.ok()) ThrowStoreError(b.status(), "checking the budget");
  budget_usd_ = b->first;
  run_spent_usd_ = b->second;
  if (budget_usd_ && run_spent_usd_ >= *budget_usd_) {
    Outcome o;
    o.kind = OutcomeKind::kBudgetExceeded;
    char buf[160];
    std::snprintf(buf, sizeof buf, "budget of $%.4f exhausted: the run has spent $%.4f", *budget_usd_, run_spent_usd_);
    o.error = buf;
    o.budget_usd = budget_usd_;
    Suspend(std::move(o));
  }
}

void Flow::AfterLlmCall(const LlmCall& call) { record_llm_call(call); }

void Flow::record_llm_call(const LlmCall& call) {
  PricedLlmCall priced = prices_ ? prices_->Price(call) : PricedLlmCall{call, call.cost_usd, call.cost_usd ? "reported" : "unknown"};
  if (!priced.cost_usd && warned_models_.insert(call.model).second)
    Warn("model '" + call.model + "' is not in the price table; its calls are recorded with unknown cost");
  Status st = store_->RecordLlmCall(current_checkpoint_, priced);
  if (!st.ok()) ThrowStoreError(st, "recording an LLM call");
  Usage u;
  u.llm_calls = 1;
  u.input_tokens = call.input_tokens;
  u.output_tokens = call.output_tokens;
  u.cached_tokens = call.cached_tokens;
  if (priced.cost_usd) u.cost_usd = *priced.cost_usd;
  else u.unknown_cost_calls = 1;
  if (current_checkpoint_) current_usage_ += u;
  stats_.spent_here += u;
  run_spent_usd_ += u.cost_usd;
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
  CheckName("artifact", name);
  if (bytes.size() > env_.max_output_bytes)
    throw FlowError(ResourceExhausted("artifact '" + name + "' is " + std::to_string(bytes.size()) +
                                      " bytes, over the cap of " + std::to_string(env_.max_output_bytes)));
  auto v = store_->SaveArtifact(name, content_type, bytes, current_checkpoint_);
  if (!v.ok()) ThrowStoreError(v.status(), "saving artifact '" + name + "'");
  return *v;
}

}  // namespace flowrun
