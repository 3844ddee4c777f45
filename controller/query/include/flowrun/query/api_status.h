// Kubernetes `Status` bodies for the read API's errors (docs/read-api.md,
// "Errors"): a flowrun Status maps to its HTTP code and reason.
#pragma once

#include <string>

#include "flowrun/query/http_message.h"
#include "flowrun/status.h"

namespace flowrun::query {

// kInvalidArgument 400 BadRequest, kUnauthenticated 401 Unauthorized,
// kPermissionDenied 403 Forbidden, kNotFound 404 NotFound,
// kUnimplemented 405 MethodNotAllowed, kFailedPrecondition 406 NotAcceptable,
// kResourceExhausted 413 RequestEntityTooLarge, kUnavailable 503
// ServiceUnavailable (with Retry-After: 1), anything else 500 InternalError
// (message replaced by a generic one: details go to the log, not the body).
// `name` (optional) fills details.name.
HttpResponse StatusResponse(const Status& s, const std::string& name = "");

}  // namespace flowrun::query
