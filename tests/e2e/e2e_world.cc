#include "e2e/e2e_world.h"

#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <gtest/gtest.h>

namespace flowrun::testing {

using nlohmann::json;

namespace {

std::string TempDir() {
  const char* t = std::getenv("TMPDIR");
  std::string tmpl = std::string(t && *t ? t : "/tmp") + "/flowrun-e2e-XXXXXX";
  char* d = mkdtemp(tmpl.data());
  if (!d) throw std::runtime_error("mkdtemp failed");
  return d;
}

// The env entries every agent template gets: the fake LLM and its key.
std::string LlmEnv(const FakeLlm& llm) {
  return "    env:\n"
         "    - name: OPENAI_BASE_URL\n"
         "      value: " + llm.base_url() + "\n"
         "    - name: OPENAI_API_KEY\n"
         "      valueFrom:\n        secretKeyRef: {name: openai, key: api-key}\n"
         "    - name: FLOWRUN_LLM_MODEL\n"
         "      value: gpt-4o-mini\n";
}

}  // namespace

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

std::string Tail(const std::string& s, size_t n) { return s.size() > n ? s.substr(s.size() - n) : s; }

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  if (!out) throw std::runtime_error("cannot write " + path);
}

E2eWorld& E2eWorld::Get(const E2eWorldOptions& options) {
  static E2eWorld* w = [&] {
    auto* w = new E2eWorld();
    w->Start(options);
    return w;
  }();
  return *w;
}

void E2eWorld::Start(const E2eWorldOptions& opts) {
  options = opts;
  dir = TempDir();
  const std::string map = dir + "/image-map.yaml";
  WriteFile(map, "images:\n  \"flowrun/research-agent*\":\n    command: [\"" FLOWRUN_RESEARCH_AGENT_BIN "\"]\n");
  setenv("FLOWRUN_NODESIM_ARGS", ("--image-map=" + map).c_str(), 1);
  pg = PostgresServer::Start();
  llm = FakeLlm::Start("sk-e2e");
  cluster = &KubeCluster::Get();

  if (options.apply_crds) {
    cluster->Kubectl({"apply", "-f", FLOWRUN_SOURCE_DIR "/crds/"});
    // `kubectl wait --for=condition=Established` fails at once while the CRD
    // has no conditions yet, and Established is not yet served everywhere
    // (discovery: "no matches for kind"): retry both until flowruns list.
    if (!Eventually(
            [&] {
              return cluster->KubectlResult({"wait", "--for=condition=Established", "--timeout=10s",
                                             "crd/flowruns.flowrun.dev"}).ok() &&
                     cluster->KubectlResult({"get", "flowruns", "-A"}).ok();
            },
            std::chrono::seconds(60)))
      throw std::runtime_error("the FlowRun CRD is not served 60 s after kubectl apply -f crds/");
  }
  if (options.ns != "default") cluster->CreateNamespace(options.ns);
  Kubectl({"create", "secret", "generic", "flowrun-database", "--from-literal=url=" + pg->ConnectionString()});
  Kubectl({"create", "secret", "generic", "openai", "--from-literal=api-key=sk-e2e"});
  if (options.start_controller) StartController();
}

std::unique_ptr<ChildProcess> E2eWorld::SpawnController(const ControllerOptions& o) {
  ChildProcess::Options po;
  po.die_with_parent = true;
  po.parent_death_signal = SIGTERM;
  // FLOWRUN_E2E_CONTROLLER_BIN: run another build of the controller (e.g. a
  // sanitizer build) against the same tests.
  const char* bin = std::getenv("FLOWRUN_E2E_CONTROLLER_BIN");
  std::vector<std::string> argv = {bin && *bin ? bin : FLOWRUN_CONTROLLER_BIN,
                                   "--kubeconfig",
                                   o.kubeconfig.empty() ? cluster->admin_kubeconfig() : o.kubeconfig,
                                   "--database-url-env",
                                   "FLOWRUN_E2E_DATABASE_URL",
                                   "--workers",
                                   std::to_string(o.workers)};
  if (o.health) argv.insert(argv.end(), {"--health-addr", "127.0.0.1:0"});
  argv.insert(argv.end(), o.args.begin(), o.args.end());
  return ChildProcess::Spawn(argv, {{"FLOWRUN_E2E_DATABASE_URL", pg->ConnectionString()}}, po);
}

void E2eWorld::StartController(const ControllerOptions& o) {
  if (controller_) {
    controller_->Kill(SIGKILL);
    controller_->Wait(std::chrono::seconds(10));
    previous_logs_ += controller_->Output();
  }
  controller_options_ = o;
  controller_ = SpawnController(o);
}

void E2eWorld::EnsureController() {
  if (!ControllerRunning()) StartController(controller_options_);
}

std::optional<ExitStatus> E2eWorld::StopController(std::chrono::seconds timeout) {
  if (!controller_) return std::nullopt;
  controller_->Kill(SIGTERM);
  return controller_->Wait(timeout);
}

void E2eWorld::KillController() {
  if (!controller_) return;
  controller_->Kill(SIGKILL);
  controller_->Wait(std::chrono::seconds(10));
}

bool E2eWorld::ControllerRunning() { return controller_ && controller_->Running(); }

std::string E2eWorld::ControllerLog() const {
  return previous_logs_ + (controller_ ? controller_->Output() : std::string());
}

std::vector<std::string> E2eWorld::InNamespace(std::vector<std::string> args) const {
  args.insert(args.begin(), {"-n", options.ns});
  return args;
}

std::string E2eWorld::Kubectl(std::vector<std::string> args, bool allow_failure) {
  return cluster->Kubectl(InNamespace(std::move(args)), allow_failure);
}

CommandResult E2eWorld::KubectlResult(std::vector<std::string> args) {
  return cluster->KubectlResult(InNamespace(std::move(args)));
}

void E2eWorld::ApplyYaml(const std::string& file_name, const std::string& yaml) {
  const std::string path = dir + "/" + file_name;
  WriteFile(path, yaml);
  Kubectl({"apply", "-f", path});
}

void E2eWorld::ApplyResearchRun(const std::string& name) {
  ApplyYaml(name + ".yaml", "apiVersion: flowrun.dev/v1alpha1\n"
                            "kind: FlowRun\n"
                            "metadata:\n  name: " + name + "\n"
                            "spec:\n"
                            "  template:\n"
                            "    image: flowrun/research-agent:0.1.0\n" +
                                LlmEnv(*llm) +
                                "  parameters:\n    topic: " + name + "\n"
                                "  flow: research\n"
                                "  retry:\n    maxAttempts: 3\n");
}

bool E2eWorld::HasTestAgent() {
#ifdef FLOWRUN_TEST_AGENT_BIN
  return true;
#else
  return false;
#endif
}

std::string E2eWorld::TestAgentRunYaml(const std::string& name, const std::string& parameters,
                                       const std::string& extra_spec, const std::string& extra_env) {
#ifdef FLOWRUN_TEST_AGENT_BIN
  return "apiVersion: flowrun.dev/v1alpha1\n"
         "kind: FlowRun\n"
         "metadata:\n  name: " + name + "\n"
         "spec:\n"
         "  template:\n"
         "    image: flowrun/research-agent:test\n"
         "    command: [\"" FLOWRUN_TEST_AGENT_BIN "\"]\n" +
         LlmEnv(*llm) + extra_env +
         "  parameters: " + parameters + "\n"
         "  flow: e2e\n" + extra_spec;
#else
  (void)name, (void)parameters, (void)extra_spec, (void)extra_env;
  ADD_FAILURE() << "the test agent (tests/runtime/agents) was not built";
  return "";
#endif
}

void E2eWorld::ApplyTestAgentRun(const std::string& name, const std::string& parameters,
                                 const std::string& extra_spec, const std::string& extra_env) {
  std::string yaml = TestAgentRunYaml(name, parameters, extra_spec, extra_env);
  if (!yaml.empty()) ApplyYaml(name + ".yaml", yaml);
}

std::string E2eWorld::Get(const std::string& name, const std::string& jsonpath) {
  return Trim(Kubectl({"get", "flowrun", name, "-o", "jsonpath=" + jsonpath}, true));
}

json E2eWorld::GetJson(const std::string& kind_and_name) {
  auto r = KubectlResult({"get", kind_and_name, "-o", "json"});
  if (!r.ok()) return nullptr;
  return json::parse(r.output, nullptr, false);
}

std::string E2eWorld::Diagnostics(const std::string& name) {
  return Kubectl({"get", "flowrun", name, "-o", "yaml"}, true) + "\n" +
         Kubectl({"get", "jobs,pods", "-o", "wide", "-l", "flowrun.dev/run=" + name}, true) +
         "\ncontroller log tail:\n" + Tail(ControllerLog(), 4000);
}

bool E2eWorld::WaitPhase(const std::string& name, const std::string& phase, const std::string& timeout) {
  auto r = KubectlResult({"wait", "--for=jsonpath={.status.phase}=" + phase, "--timeout=" + timeout,
                          "flowrun/" + name});
  if (!r.ok()) ADD_FAILURE() << "FlowRun " << name << " did not reach " << phase << ": " << r.output << "\n"
                             << Diagnostics(name);
  return r.ok();
}

void E2eWorld::Answer(const std::string& name, const std::string& wait, const std::string& answer_json) {
  Kubectl({"patch", "flowrun", name, "--subresource=status", "--type=merge", "-p",
           R"({"status":{"answers":{")" + wait + "\":" + answer_json + "}}}"});
}

std::vector<std::string> E2eWorld::JobsOf(const std::string& name) {
  std::string out = Kubectl({"get", "jobs", "-l", "flowrun.dev/run=" + name, "-o",
                             "jsonpath={range .items[*]}{.metadata.name}{\" \"}{.metadata.labels.flowrun\\.dev/"
                             "attempt}{\"\\n\"}{end}"});
  std::vector<std::string> jobs;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) jobs.push_back(line);
  std::sort(jobs.begin(), jobs.end());
  return jobs;
}

bool E2eWorld::ExpectResearchLifecycle(const std::string& name) {
  const int64_t research_before = CountPromptsStartingWith(llm->Stats(), "Research the topic '" + name + "'");
  EXPECT_EQ(research_before, 0) << "the fake LLM already saw run " << name;
  ApplyResearchRun(name);
  if (!WaitPhase(name, "Waiting")) return false;
  EXPECT_EQ(Get(name, "{.status.wait.name}"), "proceed");
  EXPECT_NE(Get(name, "{.status.wait.question}").find("Proceed to analysis?"), std::string::npos);
  Answer(name, "proceed", "true");
  if (!WaitPhase(name, "Succeeded")) return false;

  json stats = llm->Stats();
  EXPECT_EQ(CountPromptsStartingWith(stats, "Research the topic '" + name + "'"), 1) << stats.dump();
  EXPECT_EQ(CountPromptsStartingWith(stats, "Analyze these research notes and give a recommendation: reply to: "
                                            "Research the topic '" + name + "'"),
            1)
      << stats.dump();
  EXPECT_EQ(JobsOf(name), (std::vector<std::string>{name + "-a1 1", name + "-a2 2"}));
  EXPECT_EQ(Psql("SELECT answered_by FROM flowrun.waits WHERE run_uid = '" + Uid(name) + "'"),
            "kubernetes:kubectl-patch");
  return !::testing::Test::HasFailure();
}

json WaitForLogLine(ChildProcess& process, const std::string& msg, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  do {
    std::istringstream in(process.Output());
    for (std::string line; std::getline(in, line);) {
      if (line.find(msg) == std::string::npos) continue;
      json j = json::parse(line, nullptr, false);
      if (j.is_object() && j.value("msg", "") == msg) return j;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  } while (std::chrono::steady_clock::now() < deadline);
  return nullptr;
}

int HealthPort(ChildProcess& controller) {
  json line = WaitForLogLine(controller, "health server listening");
  return line.is_object() ? line.value("port", 0) : 0;
}

int64_t ReconcileTotal(ChildProcess& controller) {
  json line = WaitForLogLine(controller, "metrics server listening", std::chrono::seconds(10));
  int port = line.is_object() ? line.value("port", 0) : 0;
  if (port <= 0) return -1;
  std::istringstream body(HttpGetBody(port, "/metrics"));
  double total = 0;
  for (std::string l; std::getline(body, l);) {
    if (l.rfind("controller_runtime_reconcile_total", 0) != 0) continue;
    size_t sp = l.rfind(' ');
    if (sp != std::string::npos) total += std::strtod(l.c_str() + sp + 1, nullptr);
  }
  return static_cast<int64_t>(total);
}

bool WaitReady(int port, std::chrono::milliseconds timeout) {
  return Eventually([&] { return HttpGetStatus(port, "/readyz") == 200; }, timeout);
}

int64_t CountPromptsStartingWith(const json& stats, const std::string& prefix) {
  int64_t n = 0;
  if (stats.contains("by_prompt"))
    for (auto it = stats["by_prompt"].begin(); it != stats["by_prompt"].end(); ++it)
      if (it.key().rfind(prefix, 0) == 0) n += it.value().get<int64_t>();
  return n;
}

}  // namespace flowrun::testing
