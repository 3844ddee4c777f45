// RequestObserver: told about every request the KubeClient sends, for
// request-latency metrics (rest_client_request_duration_seconds and
// rest_client_requests_total in flowrun/metrics/controller_metrics.h).
//
// Contract: ObserveRequest is called once per HTTP round trip (each 401
// refresh and each 429 retry is its own request), after the response status
// is known; for a watch, when the stream has opened (latency = time to the
// response headers). `code` is the HTTP status, or 0 when no response arrived
// (connection error, timeout). `verb` is the HTTP method, or "WATCH".
// Called concurrently from any thread that uses the client: implementations
// must be thread safe, fast and must not throw. Owned by the caller through
// ClientOptions::observer (shared_ptr, so it outlives the client).
#pragma once

#include <chrono>
#include <string_view>

namespace flowrun::kube {

class RequestObserver {
 public:
  virtual ~RequestObserver() = default;
  virtual void ObserveRequest(std::string_view verb, int code, std::chrono::nanoseconds latency) noexcept = 0;
};

}  // namespace flowrun::kube
