// A minimal HTTP/1.0 server for /healthz and /livez (the process is up) and
// /readyz (the `ready` callback: informers synced and, with --leader-elect,
// leading); anything else is 404. One thread, one request per connection,
// a 2 s receive timeout per request.
//
// Ownership: `ready` is called on the server's thread; whatever it captures
// must outlive Stop(). Thread safety: Start/Stop from one thread; port() any
// time after Start returned OK.
#pragma once

#include <atomic>
#include <functional>
#include <string>
#include <thread>

#include "flowrun/status.h"

namespace flowrun::controller::app {

class HealthServer {
 public:
  explicit HealthServer(std::function<bool()> ready) : ready_(std::move(ready)) {}
  ~HealthServer() { Stop(); }
  HealthServer(const HealthServer&) = delete;
  HealthServer& operator=(const HealthServer&) = delete;

  // addr: "host:port" (host empty or 0.0.0.0: all interfaces; IPv4 or
  // "localhost"). Port 0 picks one. Errors: kInvalidArgument for a malformed
  // address, kUnavailable when the socket cannot be bound.
  Status Start(const std::string& addr);
  int port() const { return port_; }
  // Idempotent; joins the thread.
  void Stop();

 private:
  void Serve();

  std::function<bool()> ready_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace flowrun::controller::app
