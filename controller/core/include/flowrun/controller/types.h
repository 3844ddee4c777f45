// Typed, read-only views of the Kubernetes objects the reconcile core reads:
// a FlowRun (flowrun.dev/v1alpha1), its Jobs (batch/v1) and their Pods (v1),
// parsed from the JSON the API server returns.
//
// Parsing never throws. Malformed metadata (no name or uid) is an error: the
// object cannot be reconciled at all. A malformed spec is collected into
// FlowRunView::spec_errors with the field path ("spec.retry.maxAttempts:
// must be an integer >= 1, got \"x\"") and defaults fill the field, so
// observing, cancelling and deleting a run still work; only starting a new
// attempt is refused. The status is controller-owned: malformed entries are
// dropped and rewritten. Jobs and Pods are parsed leniently (missing fields
// are empty).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "flowrun/controller/config.h"
#include "flowrun/rfc3339.h"
#include "flowrun/status.h"
#include "flowrun/utf8.h"

namespace flowrun::controller {

using TimePoint = std::chrono::system_clock::time_point;

inline constexpr char kApiVersion[] = "flowrun.dev/v1alpha1";
inline constexpr char kKind[] = "FlowRun";
inline constexpr char kFinalizer[] = "flowrun.dev/cleanup";
inline constexpr char kLabelRun[] = "flowrun.dev/run";
inline constexpr char kLabelRunUid[] = "flowrun.dev/run-uid";
inline constexpr char kLabelAttempt[] = "flowrun.dev/attempt";
inline constexpr char kLabelFlow[] = "flowrun.dev/flow";
// On a replay (spec.replay): its source's name (LabelValue of it). Set by the
// controller when missing; kubectl flowrun replay sets it at creation.
inline constexpr char kLabelReplayOf[] = "flowrun.dev/replay-of";
// On the Job of an attempt resumed by an answer: {"wait": key, "answer": ...},
// the answer the controller recorded (answers are write-once).
inline constexpr char kAnnotationAnswer[] = "flowrun.dev/answer";
inline constexpr char kContainerName[] = "agent";
inline constexpr char kTerminationMessagePath[] = "/dev/termination-log";
// Condition the controller loop sets True when the core could not reconcile
// the FlowRun (reasons kReasonInvalidObject, kReasonInternalError); the
// core's next successful pass sets it False with reason kReasonReconciled.
inline constexpr char kCondReconcileError[] = "ReconcileError";
inline constexpr char kReasonInvalidObject[] = "InvalidObject";
inline constexpr char kReasonInternalError[] = "InternalError";
inline constexpr char kReasonReconciled[] = "Reconciled";

// Phases of status.phase.
inline constexpr char kPending[] = "Pending";
inline constexpr char kRunning[] = "Running";
inline constexpr char kWaiting[] = "Waiting";
inline constexpr char kResuming[] = "Resuming";
inline constexpr char kSucceeded[] = "Succeeded";
inline constexpr char kFailed[] = "Failed";
inline constexpr char kBudgetExceeded[] = "BudgetExceeded";
inline constexpr char kCancelled[] = "Cancelled";
bool IsTerminalPhase(const std::string& phase);  // Succeeded, Failed, Cancelled

struct ObjectMeta {
  std::string name, namespace_, uid;
  int64_t generation = 0;
  std::optional<TimePoint> creation_timestamp;
  std::optional<TimePoint> deletion_timestamp;
  std::vector<std::string> finalizers;
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> annotations;
  nlohmann::json managed_fields = nlohmann::json::array();
  bool HasFinalizer(const std::string& f) const;
};
// metadata of any API object (FlowRun, Job, Pod); missing fields stay empty.
ObjectMeta ParseMeta(const nlohmann::json& object);

struct RetryPolicy {
  int max_attempts = 3;
  int64_t backoff_seconds = 10;
  int64_t max_backoff_seconds = 300;
};

// spec.template: the agent container and its pod. JSON-valued fields are
// passed to the Job as given (after a shape check).
struct PodTemplate {
  std::string image;
  std::string image_pull_policy;  // "" = the controller's default
  std::vector<std::string> command, args;
  nlohmann::json env = nlohmann::json::array();       // [EnvVar]
  nlohmann::json env_from = nlohmann::json::array();  // [EnvFromSource]
  nlohmann::json resources = nlohmann::json::object();
  std::string service_account_name;
  nlohmann::json node_selector = nlohmann::json::object();  // {string: string}
  nlohmann::json tolerations = nlohmann::json::array();
  nlohmann::json image_pull_secrets = nlohmann::json::array();  // [{name}]
};

// A key of a ConfigMap in the FlowRun's namespace.
struct ConfigMapKeyRef {
  std::string name, key;
  bool operator==(const ConfigMapKeyRef&) const = default;
};

// spec.replay (docs/replay.md; the store's side: flowrun/replay.h).
struct ReplaySpec {
  std::string run;         // the source FlowRun's name, same namespace
  std::string checkpoint;  // the cut
  int occurrence = 1;
  std::string uid;  // "" = no pin
  std::map<std::string, nlohmann::json> outputs;         // checkpoint -> output override
  std::map<std::string, ConfigMapKeyRef> output_from;    // checkpoint -> JSON text in a ConfigMap
  std::map<std::string, nlohmann::json> answers;         // wait -> early answer
};

struct FlowRunSpec {
  PodTemplate pod;
  nlohmann::json parameters = nlohmann::json::object();
  std::string flow;  // "" = "default"
  std::optional<double> budget_usd;
  RetryPolicy retry;
  std::optional<int64_t> attempt_deadline_seconds;
  std::optional<int64_t> wait_timeout_seconds;
  std::string on_wait_timeout;  // "" | "fail" | "default"
  std::optional<int64_t> ttl_seconds_after_finished;
  std::vector<std::string> approver_users, approver_groups;  // enforced by admission policy, not here
  std::optional<SecretKeyRef> database_secret;
  bool cancel = false;
  std::optional<ReplaySpec> replay;  // absent: not a replay
};

// One entry of status.attempts.
struct AttemptStatus {
  int attempt = 0;
  std::string job;
  std::string start_time;  // RFC 3339, when the controller created the Job
  std::string end_time;    // "" while it runs
  // The agent's outcome: running (not concluded) | succeeded | waiting | budget_exceeded | failed |
  // config_error | divergence | database_unavailable | fenced | cancelled; or, when the agent reported
  // none, what the controller saw: deadline_exceeded | oom_killed | evicted | node_lost | preempted |
  // node_shutdown | killed | terminated | error | image_pull_failed | container_create_failed |
  // pod_deleted | job_deleted | no_outcome | unknown.
  std::string outcome;
  std::string reason;   // CamelCase: OOMKilled, DeadlineExceeded, ImagePullBackOff, WaitingForAnswer, ...
  std::string message;  // for outcome "waiting": the key of the wait it asked (see WaitStatus::name)
  bool concluded() const { return !end_time.empty(); }
  nlohmann::json ToJson() const;
};

// status.wait: the open question. `name` is the key a person answers under
// in status.answers: the wait's name for its first occurrence, "<name>#<n>"
// for the n-th (a wait asked again in a loop needs a fresh key).
struct WaitStatus {
  std::string name;
  std::string question;
  std::optional<nlohmann::json> schema;  // absent: too big for the status or not reported
  std::string asked_at;
  std::string deadline;                  // "" = none
  std::string on_timeout;                // fail | default
  nlohmann::json ToJson() const;
};

struct Condition {
  std::string type, status, reason, message, last_transition_time;
  int64_t observed_generation = 0;
  nlohmann::json ToJson() const;
};

// status.cost.display: a spend in USD as `kubectl get flowruns` shows it (the
// COST column), e.g. "$0.000019", "$0.012", "$0.12", "$12.35". status.cost.usd
// keeps the exact figure; this is only for reading. Under $1: two significant
// digits; from $1: cents; from $1e12: three significant digits in exponent
// form; 0 is "$0"; below $0.000001 "<$0.000001". At most 16 characters (the
// CRD's maxLength). Negative or non-finite input (never valid spend) is "".
std::string FormatUsdForDisplay(double usd);
// Money in status (status.cost, status.replay): rounded to whole nano-dollars
// (1e-9 USD, flowrun/money.h) so no float noise reaches the FlowRun, the CRD
// says so. StatusUsd for the JSON numbers (usd, savedUSD): 1.9050000000000002e-05
// becomes 1.905e-05. DecimalUsd for the decimal-text fields (inheritedUsd, the
// byModel and topCalls usd): "0.00001905", "0.0123", "12.5", "0". Negative or
// non-finite input (never a valid cost) is 0 / "0".
double StatusUsd(double usd);
std::string DecimalUsd(double usd);
// A spend or budget in a condition or Event message: four decimals, "$0.0123",
// "$2.0000" (enough to compare a spend with its budget by eye).
std::string FormatUsdInMessage(double usd);

// The controller-owned part of status (everything but status.answers).
struct FlowRunStatus {
  std::string phase;
  int attempt = 0;
  std::string current_job;
  std::vector<AttemptStatus> attempts;
  std::optional<WaitStatus> wait;
  nlohmann::json checkpoints;  // {live, cached, completed} or null
  nlohmann::json cost;         // {usd, inputTokens, ...} or null; ToJson adds display from usd
  nlohmann::json replay;       // status.replay (from RunState::replay) or null
  std::string result;
  std::string message;
  std::vector<Condition> conditions;
  int64_t observed_generation = 0;

  const Condition* FindCondition(const std::string& type) const;
  const AttemptStatus* FindAttempt(int attempt) const;
  // The controller-owned fields as JSON (empty ones omitted).
  nlohmann::json ToJson() const;
};

struct FlowRunView {
  ObjectMeta meta;
  FlowRunSpec spec;
  std::vector<std::string> spec_errors;  // empty: the spec is valid
  FlowRunStatus status;
  nlohmann::json answers = nlohmann::json::object();  // status.answers, as people wrote it
  nlohmann::json raw;
};

// Error only when the object is not a FlowRun with a name and uid.
StatusOr<FlowRunView> ParseFlowRun(const nlohmann::json& object);

// The status fields the controller owns, read leniently.
FlowRunStatus ParseStatus(const nlohmann::json& status);

struct JobCondition {
  std::string type, status, reason, message;
  std::optional<TimePoint> last_transition_time;
};

struct JobView {
  ObjectMeta meta;
  int attempt = 0;  // flowrun.dev/attempt label, else the "-a<N>" name suffix; 0 = not ours
  int64_t active = 0, succeeded = 0, failed = 0;
  std::optional<TimePoint> start_time, completion_time;
  std::vector<JobCondition> conditions;
  const JobCondition* TrueCondition(const std::string& type) const;
  // Complete / Failed (or their early forms SuccessCriteriaMet / FailureTarget) is True.
  bool Finished() const;
  bool FinishedOk() const;
};
JobView ParseJob(const nlohmann::json& object);

struct ContainerState {
  std::string waiting_reason, waiting_message;
  bool running = false;
  std::optional<TimePoint> started_at;
  bool terminated = false;
  int exit_code = 0;
  std::string terminated_reason, terminated_message;
  std::optional<TimePoint> finished_at;
};

struct PodView {
  ObjectMeta meta;
  std::string job_name;  // batch.kubernetes.io/job-name (or job-name) label
  std::string job_uid;   // controller ownerReference uid
  std::string phase;     // Pending | Running | Succeeded | Failed | Unknown
  std::string reason, message;  // pod-level (Evicted, NodeLost, ...)
  std::string disruption_reason;  // the DisruptionTarget condition's reason, when True
  std::string unschedulable_message;  // PodScheduled=False reason Unschedulable
  std::optional<ContainerState> agent;  // the "agent" container (else the first)
};
PodView ParsePod(const nlohmann::json& object);

// Time and text helpers shared with the runtime (flowrun/rfc3339.h, flowrun/utf8.h).
using flowrun::FormatTime;
using flowrun::ParseTime;
using flowrun::TruncateUtf8;

}  // namespace flowrun::controller
