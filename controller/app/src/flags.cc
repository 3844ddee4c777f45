#include "flowrun/controller/app/flags.h"

#include <chrono>

#include <CLI/CLI.hpp>

namespace flowrun::controller::app {

std::optional<SecretKeyRef> ParseSecretRef(const std::string& s, const std::string& default_key) {
  if (s.empty()) return std::nullopt;
  auto slash = s.find('/');
  if (slash == std::string::npos) return SecretKeyRef{s, default_key};
  return SecretKeyRef{s.substr(0, slash), s.substr(slash + 1)};
}

ControllerConfig ToControllerConfig(const Flags& f) {
  ControllerConfig config;
  if (auto ref = ParseSecretRef(f.database_secret, "url")) config.database_secret = *ref;
  config.openai_base_url = f.openai_base_url;
  config.openai_api_key_secret = ParseSecretRef(f.openai_api_key_secret, "api-key");
  config.price_table_path = f.price_table_path;
  config.price_table_config_map = f.price_table_config_map;
  config.image_pull_policy = f.image_pull_policy;
  if (f.run_as_user >= 0) config.run_as_user = f.run_as_user;
  config.retention = f.retention == "keep" ? Retention::kKeep : Retention::kDelete;
  config.pod_start_grace = std::chrono::seconds(f.pod_start_grace_seconds);
  if (!f.ns.empty()) config.default_namespace = f.ns;
  return config;
}

void AddFlags(CLI::App& app, Flags& f) {
  app.add_option("--kubeconfig", f.kubeconfig, "kubeconfig file (default: in-cluster, then $KUBECONFIG/~/.kube/config)");
  app.add_option("--database-url-env", f.database_url_env, "environment variable holding the PostgreSQL URL")
      ->capture_default_str();
  app.add_option("--namespace", f.ns, "watch only this namespace (default: all)");
  app.add_option("--workers", f.workers, "concurrent reconciles")->capture_default_str()->check(CLI::Range(1, 256));
  app.add_flag("--leader-elect", f.leader_elect, "elect a leader with a Lease before reconciling");
  app.add_option("--leader-election-namespace", f.leader_election_namespace,
                 "namespace of the Lease (default: the pod's namespace, else default)");
  app.add_option("--leader-election-name", f.leader_election_name, "name of the Lease")->capture_default_str();
  app.add_option("--health-addr", f.health_addr, "serve /healthz and /readyz on host:port (default: off)");
  app.add_option("--metrics-addr", f.metrics_addr,
                 "serve Prometheus /metrics on host:port (port 0: pick a free one; default: off)");
  app.add_option("--metrics-min-refresh-ms", f.metrics_min_refresh_ms,
                 "least time between two reads of the totals from PostgreSQL")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{3600000}));
  app.add_option("--query-addr", f.query_addr,
                 "serve the read API query.flowrun.dev over HTTPS on host:port (docs/read-api.md; default: off)");
  app.add_option("--query-tls-cert-file", f.query_tls_cert_file, "the read API's serving certificate (PEM)");
  app.add_option("--query-tls-key-file", f.query_tls_key_file, "the read API's serving key (PEM)");
  app.add_option("--query-requestheader-client-ca-file", f.query_requestheader_client_ca_file,
                 "CA of kube-apiserver's front-proxy client certificate (default: from the ConfigMap "
                 "kube-system/extension-apiserver-authentication)");
  app.add_option("--query-requestheader-allowed-names", f.query_requestheader_allowed_names,
                 "CNs the front-proxy certificate may have (comma-separated; default: the ConfigMap's)")
      ->delimiter(',');
  app.add_option("--query-authz-cache-ttl-ms", f.query_authz_cache_ttl_ms,
                 "how long a SubjectAccessReview's answer is reused")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{600000}));
  app.add_option("--query-max-output-bytes", f.query_max_output_bytes, "largest checkpoint output served (413 above)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 30));
  app.add_option("--query-max-artifact-bytes", f.query_max_artifact_bytes, "largest artifact served (413 above)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 30));
  app.add_option("--query-db-connections", f.query_db_connections, "database connections of the read API")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  app.add_option("--log-level", f.log_level, "debug|info|warn")->capture_default_str();
  app.add_option("--database-secret", f.database_secret, "Secret (name[/key]) passed to agents as FLOWRUN_DATABASE_URL")
      ->capture_default_str();
  app.add_option("--openai-base-url", f.openai_base_url, "OPENAI_BASE_URL for agents whose template sets none");
  app.add_option("--openai-api-key-secret", f.openai_api_key_secret, "Secret name[/key] with OPENAI_API_KEY");
  app.add_option("--price-table-path", f.price_table_path, "FLOWRUN_PRICE_TABLE passed to agents");
  app.add_option("--price-table-configmap", f.price_table_config_map, "ConfigMap mounted at the price table's directory");
  app.add_option("--image-pull-policy", f.image_pull_policy, "default imagePullPolicy")->capture_default_str();
  app.add_option("--run-as-user", f.run_as_user, "runAsUser for agent containers (-1: unset)")->capture_default_str();
  app.add_option("--retention", f.retention, "delete|keep: a deleted FlowRun's database rows")
      ->check(CLI::IsMember({"delete", "keep"}))
      ->capture_default_str();
  app.add_option("--pod-start-grace-seconds", f.pod_start_grace_seconds, "image pull / container create grace")
      ->capture_default_str();
}

}  // namespace flowrun::controller::app
