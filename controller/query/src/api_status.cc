#include "flowrun/query/api_status.h"

#include <nlohmann/json.hpp>

#include "flowrun/query/authorizer.h"

namespace flowrun::query {

HttpResponse StatusResponse(const Status& s, const std::string& name) {
  int code = 500;
  std::string reason = "InternalError";
  std::string message = s.message();
  switch (s.code()) {
    case StatusCode::kInvalidArgument: code = 400; reason = "BadRequest"; break;
    case StatusCode::kUnauthenticated: code = 401; reason = "Unauthorized"; break;
    case StatusCode::kPermissionDenied: code = 403; reason = "Forbidden"; break;
    case StatusCode::kNotFound: code = 404; reason = "NotFound"; break;
    case StatusCode::kUnimplemented: code = 405; reason = "MethodNotAllowed"; break;
    case StatusCode::kFailedPrecondition: code = 406; reason = "NotAcceptable"; break;
    case StatusCode::kResourceExhausted: code = 413; reason = "RequestEntityTooLarge"; break;
    case StatusCode::kUnavailable: code = 503; reason = "ServiceUnavailable"; break;
    default: message = "internal error (see the flowrun controller's log)"; break;
  }
  nlohmann::json details = {{"group", kGroup}, {"kind", "flowruns"}};
  if (!name.empty()) details["name"] = name;
  nlohmann::json body = {{"kind", "Status"}, {"apiVersion", "v1"}, {"metadata", nlohmann::json::object()},
                         {"status", "Failure"}, {"message", message}, {"reason", reason},
                         {"details", details}, {"code", code}};
  HttpResponse r;
  r.code = code;
  r.body = body.dump();
  if (code == 503) r.headers.emplace_back("Retry-After", "1");
  return r;
}

}  // namespace flowrun::query
