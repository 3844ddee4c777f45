#include "flowrun/run_states.h"

#include <array>
#include <utility>

namespace flowrun {

namespace {

// One table per enum: the names are the contract (see run_states.h), so they
// are written once and both directions are derived from them.
template <typename E, size_t N>
using Names = std::array<std::pair<E, std::string_view>, N>;

constexpr Names<OutcomeKind, 10> kOutcomeNames = {{
    {OutcomeKind::kSucceeded, "succeeded"},
    {OutcomeKind::kFailed, "failed"},
    {OutcomeKind::kWaiting, "waiting"},
    {OutcomeKind::kBudgetExceeded, "budget_exceeded"},
    {OutcomeKind::kCancelled, "cancelled"},
    {OutcomeKind::kFenced, "fenced"},
    {OutcomeKind::kDivergence, "divergence"},
    {OutcomeKind::kConfigError, "config_error"},
    {OutcomeKind::kDatabaseUnavailable, "database_unavailable"},
    {OutcomeKind::kTerminated, "terminated"},
}};

constexpr Names<RunStatus, 7> kRunStatusNames = {{
    {RunStatus::kPending, "pending"},
    {RunStatus::kRunning, "running"},
    {RunStatus::kWaiting, "waiting"},
    {RunStatus::kBudgetExceeded, "budget_exceeded"},
    {RunStatus::kSucceeded, "succeeded"},
    {RunStatus::kFailed, "failed"},
    {RunStatus::kCancelled, "cancelled"},
}};

constexpr Names<FailureReason, 3> kFailureReasonNames = {{
    {FailureReason::kNone, ""},
    {FailureReason::kFlowFailed, "flow_failed"},
    {FailureReason::kWaitTimedOut, "wait_timed_out"},
}};

template <typename E, size_t N>
std::string_view NameOf(const Names<E, N>& names, E value) {
  for (const auto& [v, n] : names)
    if (v == value) return n;
  return "unknown";  // unreachable: every enumerator is in its table (run_states unit test)
}

template <typename E, size_t N>
std::optional<E> Parse(const Names<E, N>& names, std::string_view name) {
  for (const auto& [v, n] : names)
    if (n == name) return v;
  return std::nullopt;
}

}  // namespace

std::string_view OutcomeKindName(OutcomeKind kind) { return NameOf(kOutcomeNames, kind); }
std::optional<OutcomeKind> ParseOutcomeKind(std::string_view name) { return Parse(kOutcomeNames, name); }
bool IsSuspension(OutcomeKind kind) { return kind == OutcomeKind::kWaiting || kind == OutcomeKind::kBudgetExceeded; }

std::string_view RunStatusName(RunStatus status) { return NameOf(kRunStatusNames, status); }
std::optional<RunStatus> ParseRunStatus(std::string_view name) { return Parse(kRunStatusNames, name); }
bool IsTerminal(RunStatus s) {
  return s == RunStatus::kSucceeded || s == RunStatus::kFailed || s == RunStatus::kCancelled;
}

RunStatus RunStatusAfter(OutcomeKind kind) {
  switch (kind) {
    case OutcomeKind::kSucceeded: return RunStatus::kSucceeded;
    case OutcomeKind::kWaiting: return RunStatus::kWaiting;
    case OutcomeKind::kBudgetExceeded: return RunStatus::kBudgetExceeded;
    case OutcomeKind::kCancelled: return RunStatus::kCancelled;
    case OutcomeKind::kFenced: return RunStatus::kRunning;  // never recorded: the newer execution owns the row
    case OutcomeKind::kTerminated: return RunStatus::kRunning;  // never recorded: the next attempt resumes the run
    case OutcomeKind::kFailed:
    case OutcomeKind::kDivergence:
    case OutcomeKind::kConfigError:
    case OutcomeKind::kDatabaseUnavailable: return RunStatus::kFailed;
  }
  return RunStatus::kFailed;
}

std::string_view FailureReasonName(FailureReason reason) { return NameOf(kFailureReasonNames, reason); }
std::optional<FailureReason> ParseFailureReason(std::string_view name) { return Parse(kFailureReasonNames, name); }

}  // namespace flowrun
