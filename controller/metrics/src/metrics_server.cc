#include "flowrun/metrics/metrics_server.h"

#include <arpa/inet.h>

#include <cstdlib>

#include <prometheus/exposer.h>

namespace flowrun::metrics {

MetricsServer::MetricsServer() = default;
MetricsServer::~MetricsServer() { Stop(); }

Status MetricsServer::Start(const std::string& addr) {
  auto colon = addr.rfind(':');
  if (colon == std::string::npos) return InvalidArgument("--metrics-addr: want host:port, got " + addr);
  std::string host = addr.substr(0, colon);
  std::string port = addr.substr(colon + 1);
  char* end = nullptr;
  long p = std::strtol(port.c_str(), &end, 10);
  if (port.empty() || *end != '\0' || p < 0 || p > 65535)
    return InvalidArgument("--metrics-addr: bad port '" + port + "'");
  if (host == "localhost") host = "127.0.0.1";
  in_addr ignored{};
  if (!host.empty() && host != "0.0.0.0" && inet_pton(AF_INET, host.c_str(), &ignored) != 1)
    return InvalidArgument("--metrics-addr: bad IPv4 address " + host);
  // CivetWeb's listening_ports: "port" binds every interface, "ip:port" one.
  std::string bind = (host.empty() || host == "0.0.0.0") ? std::to_string(p) : host + ":" + std::to_string(p);
  try {
    exposer_ = std::make_unique<prometheus::Exposer>(bind, /*num_threads=*/2);
  } catch (const std::exception& e) {
    return Unavailable("cannot serve metrics on " + addr + ": " + e.what());
  }
  auto ports = exposer_->GetListeningPorts();
  port_ = ports.empty() ? 0 : ports.front();
  return Status();
}

void MetricsServer::Register(const std::weak_ptr<prometheus::Collectable>& c) {
  if (exposer_) exposer_->RegisterCollectable(c);
}

void MetricsServer::Stop() { exposer_.reset(); }

}  // namespace flowrun::metrics
