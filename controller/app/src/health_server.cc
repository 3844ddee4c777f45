#include "flowrun/controller/app/health_server.h"

#include <sys/socket.h>
#include <unistd.h>

#include "flowrun/query/tcp_listener.h"

namespace flowrun::controller::app {

Status HealthServer::Start(const std::string& addr) {
  auto l = query::ListenTcp(addr, "--health-addr", 16);
  if (!l.ok()) return l.status();
  fd_ = l->fd;
  port_ = l->port;
  thread_ = std::thread([this] { Serve(); });
  return Status();
}

void HealthServer::Stop() {
  if (fd_ >= 0) {
    stop_ = true;
    shutdown(fd_, SHUT_RDWR);
    if (thread_.joinable()) thread_.join();
    close(fd_);
    fd_ = -1;
  }
}

void HealthServer::Serve() {
  while (!stop_.load()) {
    int c = accept(fd_, nullptr, nullptr);
    if (c < 0) {
      if (stop_.load()) return;
      continue;
    }
    timeval tv{2, 0};
    setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char buf[1024];
    ssize_t n = recv(c, buf, sizeof buf - 1, 0);
    std::string req(buf, n > 0 ? static_cast<size_t>(n) : 0);
    std::string path;
    auto sp = req.find(' ');
    if (sp != std::string::npos) path = req.substr(sp + 1, req.find(' ', sp + 1) - sp - 1);
    int code = 404;
    std::string body = "not found\n";
    if (path == "/healthz" || path == "/livez") {
      code = 200;
      body = "ok\n";
    } else if (path == "/readyz") {
      bool ok = ready_();
      code = ok ? 200 : 503;
      body = ok ? "ok\n" : "not ready\n";
    }
    std::string resp = "HTTP/1.0 " + std::to_string(code) + (code == 200 ? " OK" : code == 503 ? " Service Unavailable" : " Not Found") +
                       "\r\nContent-Type: text/plain\r\nContent-Length: " + std::to_string(body.size()) +
                       "\r\nConnection: close\r\n\r\n" + body;
    (void)!send(c, resp.data(), resp.size(), MSG_NOSIGNAL);
    close(c);
  }
}

}  // namespace flowrun::controller::app
