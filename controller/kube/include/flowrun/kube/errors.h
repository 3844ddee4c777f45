// The Kubernetes client's error model, on top of flowrun::Status.
//
//   HTTP 400, 422        kInvalidArgument   (422: the API's field causes in payload "k8s.causes")
//   HTTP 401             kUnauthenticated
//   HTTP 403             kPermissionDenied
//   HTTP 404             kNotFound
//   HTTP 409 AlreadyExists  kAlreadyExists
//   HTTP 409 Conflict    kAborted           (stale resourceVersion, apply conflict)
//   HTTP 410 Gone / Expired  kFailedPrecondition with IsGone()
//   HTTP 429             kResourceExhausted (RetryAfter())
//   HTTP 5xx, transport  kUnavailable       (timeouts: kDeadlineExceeded)
// Payloads: "k8s.status" (HTTP status), "k8s.reason" (metav1.Status reason),
// "k8s.causes" (JSON array of {field, reason, message}), "k8s.retry_after" (seconds).
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "flowrun/status.h"

namespace flowrun::kube {

struct FieldCause {
  std::string field, reason, message;
};

// Builds the Status for an HTTP response of the API server (body: a metav1.Status, or anything).
Status StatusFromResponse(int http_status, const std::string& body, const std::string& retry_after_header);
// Builds the Status for an ERROR watch event's object (a metav1.Status).
Status StatusFromWatchError(const nlohmann::json& status_object);

int HttpStatusOf(const Status& s);  // 0 when none
std::string ReasonOf(const Status& s);
std::vector<FieldCause> CausesOf(const Status& s);
std::optional<std::chrono::seconds> RetryAfterOf(const Status& s);

inline bool IsNotFound(const Status& s) { return s.code() == StatusCode::kNotFound; }
inline bool IsAlreadyExists(const Status& s) { return s.code() == StatusCode::kAlreadyExists; }
inline bool IsConflict(const Status& s) { return s.code() == StatusCode::kAborted && HttpStatusOf(s) == 409; }
inline bool IsGone(const Status& s) { return HttpStatusOf(s) == 410 || ReasonOf(s) == "Expired" || ReasonOf(s) == "Gone"; }
inline bool IsForbidden(const Status& s) { return s.code() == StatusCode::kPermissionDenied; }

}  // namespace flowrun::kube
