// E2eWorld: the shared setup of the end-to-end suites (library
// flowrun_e2e_support; include as "e2e/e2e_world.h").
//
// Starts, once per test process, everything a FlowRun needs on the real
// control plane: a private PostgreSQL (PostgresServer), the fake LLM
// (FakeLlm, API key "sk-e2e"), the test cluster (KubeCluster; nodesim's
// --image-map maps `flowrun/research-agent*` to the research agent binary),
// optionally the CRDs and policies of crds/ (kubectl apply), the Secrets
// `flowrun-database` (key url) and `openai` (key api-key) in the runs'
// namespace, and optionally flowrun-controller as a child process. Everything
// is then driven like a user would: the real kubectl, kubectl wait.
//
//   auto& w = E2eWorld::Get();                       // defaults: CRDs + controller
//   w.ApplyResearchRun("r1");
//   ASSERT_TRUE(w.WaitPhase("r1", "Waiting"));
//
//   // A suite that installs CRDs and RBAC itself (helm) and runs the
//   // controller under a ServiceAccount:
//   auto& w = E2eWorld::Get({.apply_crds = false, .start_controller = false});
//   ... helm install ...
//   w.StartController({.kubeconfig = w.cluster->ServiceAccountKubeconfig("flowrun", "flowrun-controller"),
//                      .args = {"--namespace", "default"}});
//   w.ExpectResearchLifecycle("r1");
//
// The options of the first Get() win (later calls' options are ignored): one
// world per process. The controller always gets --kubeconfig, --database-url-env
// (the URL is passed in an environment variable, never as a flag),
// --workers 2 and --health-addr 127.0.0.1:0 unless ControllerOptions say
// otherwise; `args` are appended (e.g. --metrics-addr 127.0.0.1:0).
//
// Ownership: the world lives until the process exits (its servers and the
// controller get a parent-death signal; the cluster is stopped by
// KubeClusterEnvironment). Get() must first be called from the main thread
// (parent-death signals follow the spawning thread).
//
// Thread safety: the query helpers (Kubectl, Get, WaitPhase, Psql) may be
// called from several threads; StartController / StopController /
// KillController / controller() must not race with each other.
//
// Errors: setup failures throw std::runtime_error (gtest reports them);
// helpers that check something ADD_FAILURE() with the FlowRun, its Jobs and
// Pods and the controller's log tail, and return false.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kube/kube_cluster.h"
#include "support/child_process.h"
#include "support/eventually.h"
#include "support/fake_llm.h"
#include "support/local_http.h"
#include "support/postgres_server.h"

namespace flowrun::testing {

struct E2eWorldOptions {
  bool apply_crds = true;        // kubectl apply -f crds/ (false: the suite installs them, e.g. helm)
  bool start_controller = true;  // start flowrun-controller with the default ControllerOptions
  std::string ns = "default";    // namespace of the Secrets and of the FlowRuns the helpers apply
};

struct ControllerOptions {
  std::string kubeconfig;         // empty: the cluster's admin kubeconfig
  std::vector<std::string> args;  // appended to the default flags
  bool health = true;             // --health-addr 127.0.0.1:0
  int workers = 2;
};

class E2eWorld {
 public:
  static E2eWorld& Get(const E2eWorldOptions& options = {});

  // Spawns a controller and returns it (the world does not keep it: for
  // several controllers at once, e.g. leader election).
  std::unique_ptr<ChildProcess> SpawnController(const ControllerOptions& options = {});
  // Starts the world's controller (replacing a stopped one). If one runs, it
  // is SIGKILLed first.
  void StartController(const ControllerOptions& options = {});
  // Starts the controller with the last options unless it runs.
  void EnsureController();
  // SIGTERM, then waits up to `timeout`; the exit status (nullopt: did not exit).
  std::optional<ExitStatus> StopController(std::chrono::seconds timeout = std::chrono::seconds(30));
  // SIGKILL and reap: the process gets no chance to clean up.
  void KillController();
  bool ControllerRunning();
  // The world's current controller (null before the first start).
  ChildProcess* controller() { return controller_.get(); }
  // The controller's whole log so far ("" when none ran). Logs of controllers
  // replaced by StartController are kept in front.
  std::string ControllerLog() const;

  // kubectl in the runs' namespace (the cluster's admin kubeconfig).
  std::string Kubectl(std::vector<std::string> args, bool allow_failure = false);
  CommandResult KubectlResult(std::vector<std::string> args);
  // Writes `yaml` to a file in the world's directory and `kubectl apply`s it.
  void ApplyYaml(const std::string& file_name, const std::string& yaml);

  // A FlowRun of the research agent (waits for 'proceed', two LLM calls).
  void ApplyResearchRun(const std::string& name);
  // A FlowRun running tests/runtime/agents/test_agent (through the template's
  // command under the research agent's image). `parameters` is a JSON
  // object; `extra_spec` / `extra_env` YAML fragments indented for their
  // place ("  retry: ..." / "    - name: X ..."). Fails the test when the
  // test agent was not built.
  void ApplyTestAgentRun(const std::string& name, const std::string& parameters, const std::string& extra_spec = "",
                         const std::string& extra_env = "");
  // The manifest ApplyTestAgentRun applies ("" and a test failure without the test agent).
  std::string TestAgentRunYaml(const std::string& name, const std::string& parameters,
                               const std::string& extra_spec = "", const std::string& extra_env = "");
  static bool HasTestAgent();

  // `kubectl get flowrun name -o jsonpath=...`, trimmed; "" when missing.
  std::string Get(const std::string& name, const std::string& jsonpath);
  // The FlowRun as JSON (null when it does not exist).
  nlohmann::json GetJson(const std::string& kind_and_name);
  // kubectl wait for status.phase; on failure ADD_FAILURE()s with diagnostics.
  bool WaitPhase(const std::string& name, const std::string& phase, const std::string& timeout = "180s");
  // The FlowRun, its Jobs and Pods, and the controller's log tail: for failure messages.
  std::string Diagnostics(const std::string& name);
  // Sets status.answers[wait] = answer (JSON text) with kubectl patch --subresource=status.
  void Answer(const std::string& name, const std::string& wait, const std::string& answer_json);
  // Names of the run's Jobs with their attempt label, "name attempt" per line, sorted.
  std::vector<std::string> JobsOf(const std::string& name);

  // SQL against the world's database (psql -At; '|' between columns).
  std::string Psql(const std::string& sql) const { return pg->Psql("postgres", sql); }
  std::string Uid(const std::string& name) { return Get(name, "{.metadata.uid}"); }

  // The research agent's whole lifecycle with gtest assertions: apply →
  // Waiting on 'proceed' → answer true → Succeeded; the fake LLM saw each of
  // its two prompts once; Jobs <name>-a1 and <name>-a2; the database names
  // the answerer `kubernetes:kubectl-patch`. Returns false on the first
  // failed assertion.
  bool ExpectResearchLifecycle(const std::string& name);

  std::string dir;  // the world's temporary directory
  E2eWorldOptions options;
  std::unique_ptr<PostgresServer> pg;
  std::unique_ptr<FakeLlm> llm;
  KubeCluster* cluster = nullptr;

 private:
  E2eWorld() = default;
  void Start(const E2eWorldOptions& options);
  std::vector<std::string> InNamespace(std::vector<std::string> args) const;

  ControllerOptions controller_options_;
  std::unique_ptr<ChildProcess> controller_;
  std::string previous_logs_;
};

// Helpers for tests of the controller's process.
std::string Trim(std::string s);
std::string Tail(const std::string& s, size_t n);
void WriteFile(const std::string& path, const std::string& text);
// The first JSON log line of `process` whose msg is `msg`, waiting up to
// `timeout` for it (null if none appeared).
nlohmann::json WaitForLogLine(ChildProcess& process, const std::string& msg,
                              std::chrono::milliseconds timeout = std::chrono::seconds(10));
// The health server's port, from the controller's "health server listening" line (0: none).
int HealthPort(ChildProcess& controller);
// The sum of controller_runtime_reconcile_total over its labels, from the
// controller's /metrics (its "metrics server listening" line names the port;
// start it with --metrics-addr 127.0.0.1:0). -1: no metrics server. Evidence
// that the controller looked at a change, even one that needed no action.
int64_t ReconcileTotal(ChildProcess& controller);
// Polls /readyz until 200 or the timeout.
bool WaitReady(int port, std::chrono::milliseconds timeout = std::chrono::seconds(20));
// Successful fake-LLM requests whose prompt starts with `prefix`.
int64_t CountPromptsStartingWith(const nlohmann::json& stats, const std::string& prefix);

}  // namespace flowrun::testing
