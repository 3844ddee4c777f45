#include "flowrun/plugin/exit_codes.h"

namespace flowrun::plugin {

int ExitCodeFor(const Status& s) {
  switch (s.code()) {
    case StatusCode::kOk: return kExitOk;
    case StatusCode::kNotFound: return kExitNotFound;
    case StatusCode::kPermissionDenied:
    case StatusCode::kUnauthenticated: return kExitForbidden;
    case StatusCode::kUnavailable: return kExitUnavailable;
    case StatusCode::kDeadlineExceeded: return kExitTimeout;
    case StatusCode::kFailedPrecondition: return kExitNotWaiting;
    case StatusCode::kInvalidArgument: return kExitUsage;
    default: return kExitError;
  }
}

}  // namespace flowrun::plugin
