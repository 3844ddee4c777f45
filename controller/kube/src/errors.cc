// The Kubernetes client's error model: HTTP status + metav1.Status -> Status.
#include "flowrun/kube/errors.h"

#include <cstdlib>

namespace flowrun::kube {
namespace {

StatusCode CodeFor(int http, const std::string& reason) {
  switch (http) {
    case 400:
    case 422:
      return StatusCode::kInvalidArgument;
    case 401:
      return StatusCode::kUnauthenticated;
    case 403:
      return StatusCode::kPermissionDenied;
    case 404:
      return StatusCode::kNotFound;
    case 405:
      return StatusCode::kUnimplemented;
    case 406:
    case 413:
    case 415:
      return StatusCode::kInvalidArgument;
    case 409:
      return reason == "AlreadyExists" ? StatusCode::kAlreadyExists : StatusCode::kAborted;
    case 410:
      return StatusCode::kFailedPrecondition;
    case 429:
      return StatusCode::kResourceExhausted;
    case 504:
      return StatusCode::kDeadlineExceeded;
    default:
      break;
  }
  if (http >= 500) return reason == "Timeout" ? StatusCode::kDeadlineExceeded : StatusCode::kUnavailable;
  if (http >= 400) return StatusCode::kInvalidArgument;
  return StatusCode::kUnknown;
}

// Builds the Status from an HTTP code and a (possibly absent) metav1.Status.
Status Build(int http, const nlohmann::json* st, const std::string& raw_body, const std::string& retry_after_header) {
  std::string reason, message;
  nlohmann::json causes = nlohmann::json::array();
  std::optional<long> retry_after;
  if (st != nullptr && st->is_object()) {
    if (auto it = st->find("reason"); it != st->end() && it->is_string()) reason = it->get<std::string>();
    if (auto it = st->find("message"); it != st->end() && it->is_string()) message = it->get<std::string>();
    if (auto d = st->find("details"); d != st->end() && d->is_object()) {
      if (auto c = d->find("causes"); c != d->end() && c->is_array()) {
        for (const auto& cause : *c) {
          nlohmann::json out = nlohmann::json::object();
          out["field"] = cause.value("field", "");
          out["reason"] = cause.value("reason", "");
          out["message"] = cause.value("message", "");
          causes.push_back(std::move(out));
        }
      }
      if (auto r = d->find("retryAfterSeconds"); r != d->end() && r->is_number_integer())
        retry_after = r->get<long>();
    }
  }
  if (!retry_after_header.empty()) {
    char* end = nullptr;
    long v = std::strtol(retry_after_header.c_str(), &end, 10);
    if (end != retry_after_header.c_str() && v >= 0) retry_after = v;
  }
  if (message.empty()) {
    message = raw_body.substr(0, 512);
    if (message.empty()) message = "(no body)";
  }
  std::string text = "HTTP " + std::to_string(http);
  if (!reason.empty()) text += " " + reason;
  text += ": " + message;
  Status s(CodeFor(http, reason), text);
  s.SetPayload("k8s.status", std::to_string(http));
  if (!reason.empty()) s.SetPayload("k8s.reason", reason);
  if (!causes.empty()) s.SetPayload("k8s.causes", causes.dump());
  if (retry_after) s.SetPayload("k8s.retry_after", std::to_string(*retry_after));
  return s;
}

}  // namespace

Status StatusFromResponse(int http_status, const std::string& body, const std::string& retry_after_header) {
  nlohmann::json st = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (st.is_discarded() || !st.is_object() || st.value("kind", "") != "Status") return Build(http_status, nullptr, body, retry_after_header);
  return Build(http_status, &st, body, retry_after_header);
}

Status StatusFromWatchError(const nlohmann::json& status_object) {
  int code = 500;
  if (status_object.is_object()) {
    if (auto it = status_object.find("code"); it != status_object.end() && it->is_number_integer())
      code = it->get<int>();
  }
  return Build(code, &status_object, status_object.dump(), "").WithContext("watch ERROR event");
}

int HttpStatusOf(const Status& s) {
  auto v = s.GetPayload("k8s.status");
  return v ? std::atoi(v->c_str()) : 0;
}

std::string ReasonOf(const Status& s) { return s.GetPayload("k8s.reason").value_or(""); }

std::vector<FieldCause> CausesOf(const Status& s) {
  std::vector<FieldCause> out;
  auto v = s.GetPayload("k8s.causes");
  if (!v) return out;
  nlohmann::json arr = nlohmann::json::parse(*v, nullptr, false);
  if (!arr.is_array()) return out;
  for (const auto& c : arr)
    out.push_back({c.value("field", ""), c.value("reason", ""), c.value("message", "")});
  return out;
}

std::optional<std::chrono::seconds> RetryAfterOf(const Status& s) {
  auto v = s.GetPayload("k8s.retry_after");
  if (!v) return std::nullopt;
  return std::chrono::seconds(std::atol(v->c_str()));
}

}  // namespace flowrun::kube
