// QueryServer: the read API as the controller runs it, on every replica
// (leader or not): the HTTPS transport (tls_server.h), requestheader
// authentication (authentication.h) with its settings from flags or the
// ConfigMap kube-system/extension-apiserver-authentication (re-read at each
// TLS reload, every 30 s), SubjectAccessReviews with a TTL cache
// (authorizer.h), and the core (query_api.h) over a PostgreSQL store.
// docs/read-api.md.
//
// Ownership: deps.client and deps.log_* must outlive the server.
// Thread safety: Start/Stop from one thread.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "flowrun/clock.h"
#include "flowrun/query/authentication.h"
#include "flowrun/status.h"

namespace flowrun::kube {
class KubeClient;
}

namespace flowrun::query {

struct QueryServerOptions {
  std::string addr;  // "host:port"
  std::string cert_file, key_file;
  // Flags override the ConfigMap: a CA file means "do not read the ConfigMap".
  std::string requestheader_client_ca_file;
  std::vector<std::string> requestheader_allowed_names;
  std::chrono::milliseconds authz_cache_ttl{10000};
  int64_t max_output_bytes = 4 << 20;
  int64_t max_artifact_bytes = 16 << 20;
  std::string database_url;  // a secret
  int db_connections = 4;
  std::chrono::seconds reload_interval{30};
};

struct QueryServerDeps {
  kube::KubeClient* client = nullptr;  // SubjectAccessReviews, the ConfigMap
  std::function<void(const std::string& level, const std::string& msg, const std::string& detail)> log;
  Clock* clock = nullptr;
};

class QueryServer {
 public:
  QueryServer(QueryServerOptions options, QueryServerDeps deps);
  ~QueryServer();
  QueryServer(const QueryServer&) = delete;
  QueryServer& operator=(const QueryServer&) = delete;

  // Errors: the TLS server's (bad certificate files, cannot listen). A
  // requestheader configuration that cannot be read is not an error: data
  // requests answer 401 until it can (logged).
  Status Start();
  int port() const;
  void Stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace flowrun::query
