#include "flowrun/query/tcp_listener.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace flowrun::query {

StatusOr<TcpListener> ListenTcp(const std::string& addr, const std::string& flag, int backlog) {
  auto colon = addr.rfind(':');
  if (colon == std::string::npos) return InvalidArgument(flag + ": want host:port, got " + addr);
  const std::string host = addr.substr(0, colon);
  const std::string port_text = addr.substr(colon + 1);
  char* end = nullptr;
  const long port = std::strtol(port_text.c_str(), &end, 10);
  if (port_text.empty() || *end != '\0' || port < 0 || port > 65535)
    return InvalidArgument(flag + ": bad port in " + addr);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  if (host.empty() || host == "0.0.0.0") {
    sa.sin_addr.s_addr = htonl(INADDR_ANY);
  } else if (inet_pton(AF_INET, host == "localhost" ? "127.0.0.1" : host.c_str(), &sa.sin_addr) != 1) {
    return InvalidArgument(flag + ": bad IPv4 address " + host);
  }
  TcpListener l;
  l.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (l.fd < 0) return Unavailable("socket failed");
  int one = 1;
  setsockopt(l.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(l.fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 || listen(l.fd, backlog) != 0) {
    const std::string err = std::strerror(errno);
    close(l.fd);
    return Unavailable("cannot listen on " + addr + ": " + err);
  }
  socklen_t len = sizeof sa;
  getsockname(l.fd, reinterpret_cast<sockaddr*>(&sa), &len);
  l.port = ntohs(sa.sin_port);
  return l;
}

}  // namespace flowrun::query
