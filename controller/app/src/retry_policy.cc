#include "flowrun/controller/app/retry_policy.h"

namespace flowrun::controller::app {

Retry RetryFor(const Status& s) {
  switch (s.code()) {
    case StatusCode::kOk:
      return Retry::kNone;
    case StatusCode::kUnavailable:
      return Retry::kResetSessionAndBackoff;
    case StatusCode::kFailedPrecondition:
      return Retry::kWaitForChange;
    default:
      return Retry::kBackoff;
  }
}

}  // namespace flowrun::controller::app
