// A listening IPv4 TCP socket for "host:port" (host "" or 0.0.0.0: every
// interface; "localhost"; port 0 picks a free one) — the one parser of the
// controller's server address flags (--query-addr, --health-addr).
#pragma once

#include <string>

#include "flowrun/status.h"

namespace flowrun::query {

struct TcpListener {
  int fd = -1;
  int port = 0;  // the bound port (the chosen one for port 0)
};

// flag names the flag in error messages. Errors: kInvalidArgument for a
// malformed address, kUnavailable when it cannot be bound (the socket is
// closed then).
StatusOr<TcpListener> ListenTcp(const std::string& addr, const std::string& flag, int backlog);

}  // namespace flowrun::query
