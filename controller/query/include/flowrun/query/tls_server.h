// TlsServer: the read API's HTTPS transport (OpenSSL, HTTP/1.1 with
// keep-alive, no HTTP/2). It asks for a client certificate (optional: a
// request without one is still served, and the handler decides) and verifies
// it against the client CA given by client_ca_pem(); the handler gets the
// certificate's CN only when it verified. The serving certificate and the
// client CA are re-read every reload_interval (cert-manager rotation, a new
// requestheader CA); a reload that fails keeps the previous context.
//
// Bounds: at most max_connections at once (more are closed at accept), a
// request head of at most max_header_bytes (431), no request bodies beyond
// 1 MiB (413), idle_timeout per read.
//
// Thread safety: Start/Stop from one thread; the handler runs on one thread
// per connection and must be safe for concurrent calls; client_ca_pem runs on
// the reload thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>

#include "flowrun/query/http_message.h"
#include "flowrun/status.h"

namespace flowrun::query {

struct TlsServerOptions {
  std::string addr;  // "host:port"; host "" or 0.0.0.0: every IPv4 interface; port 0 picks one
  std::string cert_file, key_file;  // PEM; the certificate file may hold the chain
  std::function<std::string()> client_ca_pem;  // "" : no client certificates are requested
  std::function<HttpResponse(const HttpRequest&, const std::optional<std::string>& verified_client_cn)> handler;
  std::function<void(const std::string&)> on_warning;  // reload failures and the like
  int max_connections = 64;
  std::chrono::seconds idle_timeout{60};
  std::chrono::seconds reload_interval{30};
  size_t max_header_bytes = 64 << 10;
};

class TlsServer {
 public:
  explicit TlsServer(TlsServerOptions options);
  ~TlsServer();  // Stop()
  TlsServer(const TlsServer&) = delete;
  TlsServer& operator=(const TlsServer&) = delete;

  // Loads the certificate (kInvalidArgument names the file that is wrong),
  // binds (kUnavailable) and starts serving.
  Status Start();
  int port() const { return port_; }
  // Closes the listener and every open connection, joins all threads. Idempotent.
  void Stop();

 private:
  struct Context;
  StatusOr<std::shared_ptr<Context>> Load();
  void AcceptLoop();
  void ReloadLoop();
  void Serve(int fd);

  TlsServerOptions o_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread accept_thread_, reload_thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::shared_ptr<Context> ctx_;  // guarded by mu_
  std::set<int> open_fds_;        // guarded by mu_
  int active_ = 0;                // guarded by mu_: connection threads alive
};

}  // namespace flowrun::query
