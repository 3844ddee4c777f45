// Execution: LLM calls (budget, started/completed rows, per-checkpoint usage)
// and artifacts. execution.h states the contract.
#include <cstdio>

#include "execution_internal.h"

namespace flowrun {

namespace {
constexpr size_t kMaxArtifactNameLength = 253;
}  // namespace

StatusOr<LlmCallStart> Execution::BeforeLlmCall(const std::optional<CheckpointKey>& checkpoint,
                                                std::string_view model, int64_t estimated_input_tokens) {
  std::lock_guard l(mu_);
  FLOWRUN_RETURN_IF_ERROR(GateLocked());
  auto b = deps_.store->ReadBudget();
  if (!b.ok()) return StoreErrorLocked(b.status(), "checking the budget");
  budget_usd_ = b->first;
  run_spent_usd_ = b->second;
  LlmCallStart out;
  if (budget_usd_ && run_spent_usd_ >= *budget_usd_) {
    Outcome o;
    o.kind = OutcomeKind::kBudgetExceeded;
    char buf[160];
    std::snprintf(buf, sizeof buf, "budget of $%.4f exhausted: the run has spent $%.4f", *budget_usd_, run_spent_usd_);
    o.error = buf;
    o.budget_usd = budget_usd_;
    out.suspension = Suspension{std::move(o)};
    return out;
  }
  if (checkpoint && !open_.count(*checkpoint))
    WarnLocked("an LLM call names checkpoint " + internal::Label(*checkpoint) +
               ", which is not running: the call is recorded but its usage cannot reach that checkpoint");
  auto id = deps_.store->LlmCallStarted(checkpoint, std::string(model), std::max<int64_t>(0, estimated_input_tokens));
  if (!id.ok()) return StoreErrorLocked(id.status(), "recording an LLM call's start");
  calls_[*id].checkpoint = checkpoint;
  out.call_id = *id;
  return out;
}

PricedLlmCall Execution::PriceLocked(const LlmCall& call) {
  PricedLlmCall priced = deps_.prices->Price(call);
  if (!priced.cost_usd && warned_models_.insert(call.model).second)
    WarnLocked("model '" + call.model + "' is not in the price table; its calls are recorded with unknown cost");
  return priced;
}

void Execution::AccountLlmCallLocked(const std::optional<CheckpointKey>& checkpoint, const PricedLlmCall& priced) {
  Usage u;
  u.llm_calls = 1;
  u.input_tokens = priced.call.input_tokens;
  u.output_tokens = priced.call.output_tokens;
  u.cached_tokens = priced.call.cached_tokens;
  if (priced.cost_usd) u.cost_usd = *priced.cost_usd;
  else u.unknown_cost_calls = 1;
  if (checkpoint) {
    auto open = open_.find(*checkpoint);
    if (open != open_.end()) open->second.usage += u;
  }
  stats_.spent_here += u;
  run_spent_usd_ += u.cost_usd;
}

Status Execution::FinishLlmCall(int64_t call_id, const LlmCall& call, bool complete) {
  std::lock_guard l(mu_);
  FLOWRUN_RETURN_IF_ERROR(GateLocked());
  auto it = calls_.find(call_id);
  if (it == calls_.end()) return InvalidArgument("FinishLlmCall: no started LLM call " + std::to_string(call_id));
  PricedLlmCall priced;
  if (complete) {
    priced = PriceLocked(call);
  } else {
    // A cut response: the provider billed what it streamed, we do not know it.
    priced.call = call;
    priced.price_source = "incomplete";
  }
  Status st = deps_.store->LlmCallCompleted(call_id, priced);
  if (!st.ok()) return StoreErrorLocked(st, "recording an LLM call");
  AccountLlmCallLocked(it->second.checkpoint, priced);
  calls_.erase(it);
  return Status::Ok();
}

Status Execution::FailLlmCall(int64_t call_id, std::string_view error) {
  std::lock_guard l(mu_);
  FLOWRUN_RETURN_IF_ERROR(GateLocked());
  auto it = calls_.find(call_id);
  if (it == calls_.end()) return InvalidArgument("FailLlmCall: no started LLM call " + std::to_string(call_id));
  Status st = deps_.store->LlmCallFailed(call_id, std::string(error.substr(0, 2000)));
  if (!st.ok()) return StoreErrorLocked(st, "recording a failed LLM call");
  calls_.erase(it);
  return Status::Ok();
}

Status Execution::RecordLlmCall(const std::optional<CheckpointKey>& checkpoint, const LlmCall& call) {
  std::lock_guard l(mu_);
  FLOWRUN_RETURN_IF_ERROR(GateLocked());
  PricedLlmCall priced = PriceLocked(call);
  Status st = deps_.store->RecordLlmCall(checkpoint, priced);
  if (!st.ok()) return StoreErrorLocked(st, "recording an LLM call");
  AccountLlmCallLocked(checkpoint, priced);
  return Status::Ok();
}

StatusOr<int> Execution::SaveArtifact(std::string_view name, std::string_view content_type, std::string_view data,
                                      const std::optional<CheckpointKey>& checkpoint) {
  std::lock_guard l(mu_);
  FLOWRUN_RETURN_IF_ERROR(GateLocked());
  if (name.empty() || name.size() > kMaxArtifactNameLength)
    return InvalidArgument("artifact name must be 1.." + std::to_string(kMaxArtifactNameLength) +
                           " characters, got '" + std::string(name.substr(0, 64)) + "'");
  if (data.size() > env_.max_output_bytes)
    return ResourceExhausted("artifact '" + std::string(name) + "' is " + std::to_string(data.size()) +
                             " bytes, over the cap of " + std::to_string(env_.max_output_bytes));
  auto v = deps_.store->SaveArtifact(std::string(name), std::string(content_type), std::string(data), checkpoint);
  if (!v.ok()) return StoreErrorLocked(v.status(), "saving artifact '" + std::string(name) + "'");
  return *v;
}

}  // namespace flowrun
