// The flowrun-controller's command-line settings (Flags; docs/controller.md
// lists the flags) and their mapping to the reconcile core's configuration.
// Pure; thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "flowrun/controller/config.h"

namespace CLI {
class App;
}

namespace flowrun::controller::app {

struct Flags {
  std::string kubeconfig;
  std::string database_url_env = "FLOWRUN_DATABASE_URL";
  std::string ns;  // "" = all namespaces
  int workers = 4;
  bool leader_elect = false;
  std::string leader_election_namespace;
  std::string leader_election_name = "flowrun-controller";
  std::string log_level = "info";
  std::string health_addr;  // "" = no health server
  std::string metrics_addr;  // "" = no metrics server
  int64_t metrics_min_refresh_ms = 1000;
  // The read API query.flowrun.dev (docs/read-api.md), served by every
  // replica: "" = off.
  std::string query_addr;
  std::string query_tls_cert_file, query_tls_key_file;
  std::string query_requestheader_client_ca_file;  // "" : the extension-apiserver-authentication ConfigMap
  std::vector<std::string> query_requestheader_allowed_names;
  int64_t query_authz_cache_ttl_ms = 10000;
  int64_t query_max_output_bytes = 4 << 20;
  int64_t query_max_artifact_bytes = 16 << 20;
  int query_db_connections = 4;
  // ControllerConfig
  std::string database_secret = "flowrun-database";
  std::string database_secret_key = "url";
  std::string openai_base_url;
  std::string openai_api_key_secret;  // name[/key]
  std::string price_table_path;
  std::string price_table_config_map;
  std::string image_pull_policy = "IfNotPresent";
  int64_t run_as_user = -1;
  std::string retention = "delete";
  int64_t pod_start_grace_seconds = 120;
};

// "name[/key]" → {name, key} (key defaults to `default_key`); "" → nullopt.
std::optional<SecretKeyRef> ParseSecretRef(const std::string& s, const std::string& default_key);

// Registers every flag on `app`, writing into `f` (which must outlive the
// parse). Names, defaults and checks are the command-line contract
// (docs/controller.md lists them).
void AddFlags(CLI::App& app, Flags& f);

// The core's configuration for these flags: secrets parsed, retention
// ("keep" → kKeep, anything else kDelete: CLI11 already refused other
// values), run_as_user only when >= 0, default_namespace = --namespace.
ControllerConfig ToControllerConfig(const Flags& flags);

}  // namespace flowrun::controller::app
