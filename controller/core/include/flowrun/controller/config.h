// ControllerConfig: what the controller knows beyond the FlowRun itself —
// defaults for fields a FlowRun leaves out, the environment it passes to every
// agent, timing grace periods and the retention policy. Plain values: the
// controller's main() fills one from its flags; tests build them inline.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace flowrun::controller {

// A key of a Secret in the FlowRun's namespace.
struct SecretKeyRef {
  std::string name;
  std::string key = "url";
  bool operator==(const SecretKeyRef&) const = default;
};

// What happens to a run's rows in PostgreSQL when its FlowRun is deleted.
enum class Retention {
  kDelete,  // the finalizer deletes every row (RunAdmin::DeleteRun) — the default
  kKeep,    // rows stay (a non-terminal run is marked cancelled first)
};

struct ControllerConfig {
  // FLOWRUN_DATABASE_URL comes from this Secret unless spec.database.secretRef names another.
  SecretKeyRef database_secret{"flowrun-database", "url"};
  // Namespace assumed for a FlowRun whose metadata has none (tests, dry runs).
  std::string default_namespace = "default";

  // FLOWRUN_PRICE_TABLE passed to every agent; empty: not set (every cost "unknown").
  std::string price_table_path;
  // When non-empty, this ConfigMap is mounted read-only at the directory of
  // price_table_path (the file name is its key).
  std::string price_table_config_map;
  // OPENAI_BASE_URL: a literal, or (wins when set) a Secret key. Set only when
  // the FlowRun's template does not set the variable itself.
  std::string openai_base_url;
  std::optional<SecretKeyRef> openai_base_url_secret;
  // OPENAI_API_KEY from a Secret key (never a literal), same rule.
  std::optional<SecretKeyRef> openai_api_key_secret;

  // imagePullPolicy when spec.template.imagePullPolicy is empty.
  std::string image_pull_policy = "IfNotPresent";
  // Runtime-wide wait defaults when the FlowRun sets none
  // (FLOWRUN_WAIT_TIMEOUT_SECONDS / FLOWRUN_WAIT_ON_TIMEOUT).
  std::optional<int64_t> default_wait_timeout_seconds;
  std::string default_wait_on_timeout = "fail";
  // runAsUser for the agent container when set (Pod Security "restricted"
  // requires a non-root user; images without a numeric USER need one).
  std::optional<int64_t> run_as_user;

  Retention retention = Retention::kDelete;

  // A pod whose container waits with ImagePullBackOff, ErrImagePull,
  // CreateContainerConfigError, CreateContainerError or ErrImageNeverPull for
  // longer than this (counted from the pod's creation) fails its attempt.
  // InvalidImageName fails at once: waiting cannot fix it.
  std::chrono::seconds pod_start_grace{120};
  // A Job that the status records as created but that is not in the input for
  // longer than this (informer lag ends well before) was deleted by someone:
  // the attempt fails with reason JobDeleted.
  std::chrono::seconds job_missing_grace{60};

  // Size limits that keep the FlowRun status small (etcd, kubectl output).
  size_t max_message_bytes = 1024;   // status.message
  size_t max_condition_message_bytes = 512;  // conditions[].message
  size_t max_attempt_message_bytes = 256;    // attempts[].message
  size_t max_question_bytes = 2048;  // status.wait.question
  size_t max_schema_bytes = 8192;    // status.wait.schema (compact JSON); bigger: omitted
  size_t max_result_bytes = 4096;    // status.result
  size_t max_attempt_records = 50;   // status.attempts keeps the newest ones
};

}  // namespace flowrun::controller
