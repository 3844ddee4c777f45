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

// A streamed response body read line by line (Kubernetes watches:
// newline-delimited JSON whose chunk boundaries are not line boundaries).
// Thread safety: ReadLine from one thread; Cancel from any thread, once or more.
class HttpStream {
 public:
  virtual ~HttpStream() = default;
  virtual int status() const = 0;
  virtual const std::vector<std::pair<std::string, std::string>>& headers() const = 0;
  // Reads the next line without its '\n'. Returns false at the end of the
  // body. A line longer than `max_bytes` is kResourceExhausted; a broken
  // connection kUnavailable; after Cancel() kAborted.
  virtual StatusOr<bool> ReadLine(std::string* line, size_t max_bytes) = 0;
  // Unblocks a pending ReadLine and closes the connection.
  virtual void Cancel() = 0;
};

class HttpTransport {
 public:
  virtual ~HttpTransport() = default;
  virtual StatusOr<HttpResponse> Send(const HttpRequest& request) = 0;
  // Sends the request and returns once the status line and headers arrived;
  // the body is then read from the stream. request.timeout is an idle timeout
  // (no byte for that long), not a limit on the whole stream.
  virtual StatusOr<std::unique_ptr<HttpStream>> OpenStream(const HttpRequest& request) {
    (void)request;
    return Unimplemented("this transport does not stream");
  }
};

// TLS settings of a transport. PEM data is kept in memory only (never written
// to temporary files).
struct TlsOptions {
  std::string ca_pem;           // trust these CAs instead of the system's; empty: system CAs
  std::string client_cert_pem;  // client certificate (mutual TLS), optional
  std::string client_key_pem;   // its private key; a secret
  bool insecure_skip_verify = false;  // honoured, but the caller should warn
};

struct TransportOptions {
  TlsOptions tls;
  bool tcp_no_delay = true;  // no Nagle stalls on small requests
};

// The cpprestsdk-backed transport: keeps one client (and its keep-alive
// connection pool) per scheme+host+port. Idempotent requests (GET, HEAD,
// PUT, DELETE) that fail on a stale pooled connection are retried once.
// The returned object must be destroyed before main() returns (cpprestsdk
// crashes at exit otherwise).
std::unique_ptr<HttpTransport> MakeCppRestTransport(const TransportOptions& options = {});

}  // namespace flowrun
