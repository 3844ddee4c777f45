// MetricsServer: serves /metrics (Prometheus text format) on host:port with
// prometheus-cpp's Exposer (CivetWeb). Port 0 picks a free port; port()
// tells which. Collectables are held by weak_ptr: the caller keeps them alive
// and Stop()s (or destroys) the server before destroying what they read.
// Errors: kInvalidArgument for a malformed address, kUnavailable when the
// port cannot be bound. Not copyable; Start once.
#pragma once

#include <memory>
#include <string>

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include "flowrun/status.h"

namespace prometheus {
class Exposer;
}

namespace flowrun::metrics {

class MetricsServer {
 public:
  MetricsServer();
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // addr: "host:port" ("" or "0.0.0.0" host: all interfaces).
  Status Start(const std::string& addr);
  void Register(const std::weak_ptr<prometheus::Collectable>& c);
  int port() const { return port_; }
  void Stop();

 private:
  std::unique_ptr<prometheus::Exposer> exposer_;
  int port_ = 0;
};

}  // namespace flowrun::metrics
