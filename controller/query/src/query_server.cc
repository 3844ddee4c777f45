#include "flowrun/query/query_server.h"

#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "flowrun/kube/client.h"
#include "flowrun/query/authorizer.h"
#include "flowrun/query/postgres_query_store.h"
#include "flowrun/query/query_api.h"
#include "flowrun/query/tls_server.h"

namespace flowrun::query {

struct QueryServer::Impl {
  Impl(QueryServerOptions o, QueryServerDeps d)
      : opts(std::move(o)),
        deps(std::move(d)),
        store(NewPostgresQueryStore({opts.database_url, opts.db_connections})),
        sar(deps.client),
        cache(&sar, opts.authz_cache_ttl, deps.clock),
        api(store.get(), &cache, ApiOptions()) {}

  QueryApiOptions ApiOptions() {
    QueryApiOptions a;
    a.max_output_bytes = opts.max_output_bytes;
    a.max_artifact_bytes = opts.max_artifact_bytes;
    a.on_error = [this](const std::string& path, const Status& st) { Log("warn", "read API request failed", path + ": " + st.ToString()); };
    return a;
  }

  void Log(const std::string& level, const std::string& msg, const std::string& detail) {
    if (deps.log) deps.log(level, msg, detail);
  }

  // Re-reads the requestheader settings; keeps the previous ones on failure.
  void Refresh() {
    StatusOr<RequestHeaderConfig> next = Status(StatusCode::kUnknown, "unset");
    if (!opts.requestheader_client_ca_file.empty()) {
      std::ifstream f(opts.requestheader_client_ca_file);
      std::stringstream ss;
      ss << f.rdbuf();
      if (!f) {
        next = InvalidArgument("cannot read --query-requestheader-client-ca-file " + opts.requestheader_client_ca_file);
      } else {
        RequestHeaderConfig c;
        c.client_ca_pem = ss.str();
        c.allowed_names = opts.requestheader_allowed_names;
        next = c;
      }
    } else {
      auto cm = deps.client->Get(kube::resources::ConfigMaps(), "kube-system", "extension-apiserver-authentication");
      if (!cm.ok()) {
        next = cm.status();
      } else {
        std::map<std::string, std::string> data;
        if ((*cm).contains("data") && (*cm)["data"].is_object())
          for (const auto& [k, v] : (*cm)["data"].items())
            if (v.is_string()) data[k] = v.get<std::string>();
        next = RequestHeaderConfigFromConfigMap(data);
        if (next.ok() && !opts.requestheader_allowed_names.empty()) next->allowed_names = opts.requestheader_allowed_names;
      }
    }
    std::lock_guard<std::mutex> l(mu);
    if (!next.ok()) {
      if (!warned) {
        Log("warn", "read API: requestheader settings unavailable; data requests answer 401 until they are",
            next.status().ToString());
        warned = true;
      }
      return;
    }
    if (!have || !(*next == config))
      Log("info", "read API: requestheader settings loaded",
          "allowed names: " + nlohmann::json(next->allowed_names).dump());
    config = *next;
    have = true;
    warned = false;
  }

  RequestHeaderConfig Current() {
    std::lock_guard<std::mutex> l(mu);
    return config;
  }

  QueryServerOptions opts;
  QueryServerDeps deps;
  std::unique_ptr<QueryStore> store;
  SubjectAccessReviewAuthorizer sar;
  CachingAuthorizer cache;
  QueryApi api;
  std::mutex mu;
  RequestHeaderConfig config;  // guarded by mu
  bool have = false, warned = false;  // guarded by mu
  std::unique_ptr<TlsServer> tls;
};

QueryServer::QueryServer(QueryServerOptions options, QueryServerDeps deps)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(deps))) {}
QueryServer::~QueryServer() { Stop(); }

Status QueryServer::Start() {
  Impl* m = impl_.get();
  m->Refresh();
  TlsServerOptions t;
  t.addr = m->opts.addr;
  t.cert_file = m->opts.cert_file;
  t.key_file = m->opts.key_file;
  t.reload_interval = m->opts.reload_interval;
  t.client_ca_pem = [m] {
    m->Refresh();
    return m->Current().client_ca_pem;
  };
  t.on_warning = [m](const std::string& w) { m->Log("warn", w, ""); };
  t.handler = [m](const HttpRequest& req, const std::optional<std::string>& cn) {
    return m->api.Handle(req, Authenticate(m->Current(), cn, req));
  };
  m->tls = std::make_unique<TlsServer>(std::move(t));
  return m->tls->Start();
}

int QueryServer::port() const { return impl_->tls ? impl_->tls->port() : 0; }

void QueryServer::Stop() {
  if (impl_->tls) impl_->tls->Stop();
}

}  // namespace flowrun::query
