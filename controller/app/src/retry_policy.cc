#include "flowrun/controller/app/retry_policy.h"

namespace flowrun::controller::app {

namespace {
constexpr char kPermanentPayload[] = "flowrun.permanent";
}  // namespace

Status Permanent(Status s) {
  s.SetPayload(kPermanentPayload, "true");
  return s;
}

Retry RetryFor(const Status& s) {
  if (s.ok()) return Retry::kNone;
  if (s.GetPayload(kPermanentPayload)) return Retry::kWaitForChange;
  if (s.code() == StatusCode::kUnavailable) return Retry::kResetSessionAndBackoff;
  return Retry::kBackoff;
}

}  // namespace flowrun::controller::app
