// BuildJob, JobName, LabelValue: the Job the controller creates for one
// attempt of a FlowRun.
#include <cctype>
#include <cstdint>
#include <cstdio>
#include <set>

#include "flowrun/controller/reconcile.h"

namespace flowrun::controller {

using nlohmann::json;

namespace {

constexpr size_t kMaxNameLength = 63;

std::string Hash8(const std::string& s) {
  uint32_t h = 2166136261u;  // FNV-1a
  for (unsigned char c : s) {
    h ^= c;
    h *= 16777619u;
  }
  char buf[9];
  std::snprintf(buf, sizeof buf, "%08x", h);
  return buf;
}

bool Alnum(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; }

// Strips characters that may not end a name segment before a "-".
std::string TrimEnd(std::string s) {
  while (!s.empty() && !Alnum(s.back())) s.pop_back();
  return s;
}

// The environment variables the controller owns: a template's own value for
// one of these is dropped (the contract wins).
const std::set<std::string>& ContractVariables() {
  static const std::set<std::string> k = {
      "FLOWRUN_RUN_UID",     "FLOWRUN_RUN_NAME",         "FLOWRUN_RUN_NAMESPACE",
      "FLOWRUN_FLOW",        "FLOWRUN_ATTEMPT",          "FLOWRUN_PARAMETERS",
      "FLOWRUN_DATABASE_URL", "FLOWRUN_TERMINATION_MESSAGE_PATH", "FLOWRUN_BUDGET_USD",
      "FLOWRUN_WAIT_TIMEOUT_SECONDS", "FLOWRUN_WAIT_ON_TIMEOUT"};
  return k;
}

json Literal(const std::string& name, const std::string& value) { return {{"name", name}, {"value", value}}; }

json FromSecret(const std::string& name, const SecretKeyRef& ref) {
  return {{"name", name}, {"valueFrom", {{"secretKeyRef", {{"name", ref.name}, {"key", ref.key}}}}}};
}

std::string Dirname(const std::string& path) {
  auto pos = path.rfind('/');
  if (pos == std::string::npos || pos == 0) return "/";
  return path.substr(0, pos);
}

std::string Basename(const std::string& path) {
  auto pos = path.rfind('/');
  return pos == std::string::npos ? path : path.substr(pos + 1);
}

}  // namespace

std::string JobName(const std::string& flowrun_name, int attempt) {
  std::string suffix = "-a" + std::to_string(attempt);
  if (flowrun_name.size() + suffix.size() <= kMaxNameLength) return flowrun_name + suffix;
  std::string hash = Hash8(flowrun_name);
  size_t keep = kMaxNameLength - suffix.size() - hash.size() - 1;
  std::string prefix = TrimEnd(flowrun_name.substr(0, keep));
  return (prefix.empty() ? "" : prefix + "-") + hash + suffix;
}

std::string LabelValue(const std::string& s) {
  auto valid = [](const std::string& v) {
    if (v.empty()) return true;
    if (v.size() > kMaxNameLength || !Alnum(v.front()) || !Alnum(v.back())) return false;
    for (char c : v)
      if (!Alnum(c) && c != '-' && c != '_' && c != '.') return false;
    return true;
  };
  if (valid(s)) return s;
  std::string cleaned;
  for (char c : s) cleaned += (Alnum(c) || c == '-' || c == '_' || c == '.') ? c : '-';
  size_t start = 0;
  while (start < cleaned.size() && !Alnum(cleaned[start])) ++start;
  cleaned = cleaned.substr(start);
  std::string hash = Hash8(s);
  std::string prefix = TrimEnd(cleaned.substr(0, std::min(cleaned.size(), kMaxNameLength - hash.size() - 1)));
  return prefix.empty() ? hash : prefix + "-" + hash;
}

json BuildJob(const FlowRunView& fr, int attempt, const ControllerConfig& cfg) {
  const FlowRunSpec& spec = fr.spec;
  const std::string ns = fr.meta.namespace_.empty() ? cfg.default_namespace : fr.meta.namespace_;
  const std::string flow = spec.flow.empty() ? "default" : spec.flow;
  const std::string name = JobName(fr.meta.name, attempt);

  json labels = {{kLabelRun, LabelValue(fr.meta.name)},
                 {kLabelRunUid, LabelValue(fr.meta.uid)},
                 {kLabelAttempt, std::to_string(attempt)},
                 {kLabelFlow, LabelValue(flow)},
                 {"app.kubernetes.io/managed-by", "flowrun-controller"}};

  // The environment contract (docs/environment.md), then the template's own
  // variables minus the ones the contract owns.
  json env = json::array();
  env.push_back(Literal("FLOWRUN_RUN_UID", fr.meta.uid));
  env.push_back(Literal("FLOWRUN_RUN_NAME", fr.meta.name));
  env.push_back(Literal("FLOWRUN_RUN_NAMESPACE", ns));
  env.push_back(Literal("FLOWRUN_FLOW", flow));
  env.push_back(Literal("FLOWRUN_ATTEMPT", std::to_string(attempt)));
  env.push_back(Literal("FLOWRUN_PARAMETERS", spec.parameters.dump(-1, ' ', false, json::error_handler_t::replace)));
  env.push_back(FromSecret("FLOWRUN_DATABASE_URL", spec.database_secret.value_or(cfg.database_secret)));
  env.push_back(Literal("FLOWRUN_TERMINATION_MESSAGE_PATH", kTerminationMessagePath));
  if (spec.budget_usd) env.push_back(Literal("FLOWRUN_BUDGET_USD", json(*spec.budget_usd).dump()));
  std::optional<int64_t> wait_timeout = spec.wait_timeout_seconds ? spec.wait_timeout_seconds
                                                                  : cfg.default_wait_timeout_seconds;
  if (wait_timeout) env.push_back(Literal("FLOWRUN_WAIT_TIMEOUT_SECONDS", std::to_string(*wait_timeout)));
  std::string on_timeout = spec.on_wait_timeout.empty() ? cfg.default_wait_on_timeout : spec.on_wait_timeout;
  if (!on_timeout.empty()) env.push_back(Literal("FLOWRUN_WAIT_ON_TIMEOUT", on_timeout));

  std::set<std::string> user_names;
  json user_env = json::array();
  for (const auto& e : spec.pod.env) {
    std::string n = e.value("name", "");
    if (ContractVariables().count(n)) continue;
    user_names.insert(n);
    user_env.push_back(e);
  }
  // Runtime-wide defaults, unless the template sets them.
  if (!cfg.price_table_path.empty() && !user_names.count("FLOWRUN_PRICE_TABLE"))
    env.push_back(Literal("FLOWRUN_PRICE_TABLE", cfg.price_table_path));
  if (!user_names.count("OPENAI_BASE_URL")) {
    if (cfg.openai_base_url_secret) env.push_back(FromSecret("OPENAI_BASE_URL", *cfg.openai_base_url_secret));
    else if (!cfg.openai_base_url.empty()) env.push_back(Literal("OPENAI_BASE_URL", cfg.openai_base_url));
  }
  if (cfg.openai_api_key_secret && !user_names.count("OPENAI_API_KEY"))
    env.push_back(FromSecret("OPENAI_API_KEY", *cfg.openai_api_key_secret));
  for (auto& e : user_env) env.push_back(std::move(e));

  json container_sc = {{"allowPrivilegeEscalation", false},
                       {"capabilities", {{"drop", json::array({"ALL"})}}},
                       {"runAsNonRoot", true},
                       {"seccompProfile", {{"type", "RuntimeDefault"}}}};
  if (cfg.run_as_user) container_sc["runAsUser"] = *cfg.run_as_user;

  json container = {{"name", kContainerName},
                    {"image", spec.pod.image},
                    {"imagePullPolicy", spec.pod.image_pull_policy.empty() ? cfg.image_pull_policy
                                                                           : spec.pod.image_pull_policy},
                    {"env", env},
                    {"terminationMessagePath", kTerminationMessagePath},
                    {"terminationMessagePolicy", "FallbackToLogsOnError"},
                    {"securityContext", container_sc}};
  if (!spec.pod.command.empty()) container["command"] = spec.pod.command;
  if (!spec.pod.args.empty()) container["args"] = spec.pod.args;
  if (!spec.pod.env_from.empty()) container["envFrom"] = spec.pod.env_from;
  if (!spec.pod.resources.empty()) container["resources"] = spec.pod.resources;

  json pod_sc = {{"runAsNonRoot", true}, {"seccompProfile", {{"type", "RuntimeDefault"}}}};
  if (cfg.run_as_user) pod_sc["runAsUser"] = *cfg.run_as_user;
  json pod = {{"restartPolicy", "Never"},
              {"enableServiceLinks", false},
              {"securityContext", pod_sc},
              {"containers", json::array()}};
  if (spec.pod.service_account_name.empty()) pod["automountServiceAccountToken"] = false;
  else pod["serviceAccountName"] = spec.pod.service_account_name;
  if (!spec.pod.node_selector.empty()) pod["nodeSelector"] = spec.pod.node_selector;
  if (!spec.pod.tolerations.empty()) pod["tolerations"] = spec.pod.tolerations;
  if (!spec.pod.image_pull_secrets.empty()) pod["imagePullSecrets"] = spec.pod.image_pull_secrets;
  if (!cfg.price_table_config_map.empty() && !cfg.price_table_path.empty()) {
    pod["volumes"] = json::array({{{"name", "flowrun-prices"},
                                   {"configMap", {{"name", cfg.price_table_config_map},
                                                  {"items", json::array({{{"key", Basename(cfg.price_table_path)},
                                                                          {"path", Basename(cfg.price_table_path)}}})}}}}});
    container["volumeMounts"] = json::array(
        {{{"name", "flowrun-prices"}, {"mountPath", Dirname(cfg.price_table_path)}, {"readOnly", true}}});
  }
  pod["containers"].push_back(container);

  json job_spec = {{"backoffLimit", 0},
                   {"completions", 1},
                   {"parallelism", 1},
                   {"podReplacementPolicy", "Failed"},
                   {"template", {{"metadata", {{"labels", labels}}}, {"spec", pod}}}};
  if (spec.attempt_deadline_seconds) job_spec["activeDeadlineSeconds"] = *spec.attempt_deadline_seconds;

  return {{"apiVersion", "batch/v1"},
          {"kind", "Job"},
          {"metadata",
           {{"name", name},
            {"namespace", ns},
            {"labels", labels},
            {"ownerReferences", json::array({{{"apiVersion", kApiVersion},
                                              {"kind", kKind},
                                              {"name", fr.meta.name},
                                              {"uid", fr.meta.uid},
                                              {"controller", true},
                                              {"blockOwnerDeletion", true}}})}}},
          {"spec", job_spec}};
}

StatusOr<json> BuildJob(const json& flowrun, int attempt, const ControllerConfig& cfg) {
  if (attempt < 1) return InvalidArgument("attempt must be >= 1, got " + std::to_string(attempt));
  auto fr = ParseFlowRun(flowrun);
  if (!fr.ok()) return fr.status();
  if (!fr->spec_errors.empty()) {
    std::string all;
    for (const auto& e : fr->spec_errors) all += (all.empty() ? "" : "; ") + e;
    return InvalidArgument("FlowRun " + fr->meta.name + " has an invalid spec: " + all);
  }
  return BuildJob(*fr, attempt, cfg);
}

}  // namespace flowrun::controller
