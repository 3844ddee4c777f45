#include "flowrun/controller/app/flags.h"

#include <chrono>

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

}  // namespace flowrun::controller::app
