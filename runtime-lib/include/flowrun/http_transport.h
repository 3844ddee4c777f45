// HttpTransport: flowrun's own HTTP interface. cpprestsdk (archived upstream)
// lives behind it, in one adapter, so it can be replaced without touching
// callers; no cpprestsdk type appears in a public header.
//
// Errors: a response with any HTTP status is a value (status() is OK); only
// transport failures (connect, TLS, timeout) are a non-OK Status
// (kUnavailable, or kDeadlineExceeded for timeouts).
// Thread safety: Send() may be called from several threads at once.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "flowrun/status.h"

namespace flowrun {

struct HttpRequest {
  std::string method = "GET";
  std::string url;  // absolute: scheme://host:port/path?query
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::chrono::milliseconds timeout{60000};
};

struct HttpResponse {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // First header named `name` (case-insensitive), or "".
  std::string Header(std::string_view name) const;
};

class HttpTransport {
 public:
  virtual ~HttpTransport() = default;
  virtual StatusOr<HttpResponse> Send(const HttpRequest& request) = 0;
};

// The cpprestsdk-backed transport: keeps one client (and its keep-alive
// connection pool) per scheme+host+port. The returned object must be
// destroyed before main() returns (cpprestsdk crashes at exit otherwise).
std::unique_ptr<HttpTransport> MakeCppRestTransport();

}  // namespace flowrun
