// End to end, like a user: the CRDs applied with kubectl, flowrun-controller
// running as a child process, a FlowRun for the research agent applied with
// kubectl, the wait answered with `kubectl patch --subresource=status`.
// nodesim maps the agent's image to build/examples/research-agent.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "kube/kube_cluster.h"
#include "support/child_process.h"
#include "support/fake_llm.h"
#include "support/postgres_server.h"

namespace flowrun::testing {
namespace {

using nlohmann::json;

std::string TempDir() {
  const char* t = std::getenv("TMPDIR");
  std::string tmpl = std::string(t && *t ? t : "/tmp") + "/flowrun-e2e-XXXXXX";
  char* d = mkdtemp(tmpl.data());
  if (!d) throw std::runtime_error("mkdtemp failed");
  return d;
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
}

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// Everything the tests share: started once, in the main thread, by the first test.
struct World {
  std::string dir;
  std::unique_ptr<PostgresServer> pg;
  std::unique_ptr<FakeLlm> llm;
  std::unique_ptr<ChildProcess> controller;
  KubeCluster* cluster = nullptr;

  static World& Get() {
    static World* w = [] {
      auto* w = new World();
      w->Start();
      return w;
    }();
    return *w;
  }

  void Start() {
    dir = TempDir();
    const std::string map = dir + "/image-map.yaml";
    WriteFile(map, "images:\n  \"flowrun/research-agent*\":\n    command: [\"" FLOWRUN_RESEARCH_AGENT_BIN "\"]\n");
    setenv("FLOWRUN_NODESIM_ARGS", ("--image-map=" + map).c_str(), 1);
    pg = PostgresServer::Start();
    llm = FakeLlm::Start("sk-e2e");
    cluster = &KubeCluster::Get();

    cluster->Kubectl({"apply", "-f", FLOWRUN_SOURCE_DIR "/crds/"});
    cluster->Kubectl({"wait", "--for=condition=Established", "--timeout=60s", "crd/flowruns.flowrun.dev"});
    cluster->Kubectl({"create", "secret", "generic", "flowrun-database", "--from-literal=url=" + pg->ConnectionString()});
    cluster->Kubectl({"create", "secret", "generic", "openai", "--from-literal=api-key=sk-e2e"});

    controller = SpawnController({});
  }

  std::unique_ptr<ChildProcess> SpawnController(const std::vector<std::string>& extra) {
    ChildProcess::Options o;
    o.die_with_parent = true;
    o.parent_death_signal = SIGTERM;
    std::vector<std::string> argv = {FLOWRUN_CONTROLLER_BIN, "--kubeconfig", cluster->admin_kubeconfig(),
                                     "--database-url-env", "FLOWRUN_E2E_DATABASE_URL", "--workers", "2",
                                     "--health-addr", "127.0.0.1:0"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return ChildProcess::Spawn(argv, {{"FLOWRUN_E2E_DATABASE_URL", pg->ConnectionString()}}, o);
  }

  // Applies a FlowRun of the research agent named `name`.
  void ApplyResearchRun(const std::string& name) {
    const std::string path = dir + "/" + name + ".yaml";
    WriteFile(path, "apiVersion: flowrun.dev/v1alpha1\n"
                    "kind: FlowRun\n"
                    "metadata:\n  name: " + name + "\n"
                    "spec:\n"
                    "  template:\n"
                    "    image: flowrun/research-agent:0.1.0\n"
                    "    env:\n"
                    "    - name: OPENAI_BASE_URL\n"
                    "      value: " + llm->base_url() + "\n"
                    "    - name: OPENAI_API_KEY\n"
                    "      valueFrom:\n        secretKeyRef: {name: openai, key: api-key}\n"
                    "    - name: FLOWRUN_LLM_MODEL\n"
                    "      value: gpt-4o-mini\n"
                    "  parameters:\n    topic: " + name + "\n"
                    "  flow: research\n"
                    "  retry:\n    maxAttempts: 3\n");
    cluster->Kubectl({"apply", "-f", path});
  }

  std::string Get(const std::string& name, const std::string& jsonpath) {
    return Trim(cluster->Kubectl({"get", "flowrun", name, "-o", "jsonpath=" + jsonpath}, true));
  }

  // kubectl wait for a phase; on failure adds the FlowRun and the controller's log tail.
  bool WaitPhase(const std::string& name, const std::string& phase, const std::string& timeout = "180s") {
    auto r = cluster->KubectlResult({"wait", "--for=jsonpath={.status.phase}=" + phase, "--timeout=" + timeout,
                                     "flowrun/" + name});
    if (!r.ok()) {
      ADD_FAILURE() << "FlowRun " << name << " did not reach " << phase << ": " << r.output << "\n"
                    << cluster->Kubectl({"get", "flowrun", name, "-o", "yaml"}, true) << "\n"
                    << cluster->Kubectl({"get", "jobs,pods", "-o", "wide"}, true) << "\ncontroller log tail:\n"
                    << Tail(controller->Output(), 4000);
    }
    return r.ok();
  }

  static std::string Tail(const std::string& s, size_t n) { return s.size() > n ? s.substr(s.size() - n) : s; }
};

// GET `path` from 127.0.0.1:port; the HTTP status code (0: no answer).
int HttpGetStatus(int port, const std::string& path) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
  int code = 0;
  if (connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0) {
    std::string req = "GET " + path + " HTTP/1.0\r\n\r\n";
    (void)!send(fd, req.data(), req.size(), 0);
    char buf[256] = {0};
    ssize_t n = recv(fd, buf, sizeof buf - 1, MSG_WAITALL);
    std::string resp(buf, n > 0 ? n : 0);
    if (resp.rfind("HTTP/1.0 ", 0) == 0) code = std::atoi(resp.c_str() + 9);
  }
  close(fd);
  return code;
}

// The health server's port, from the controller's log line.
int HealthPort(ChildProcess& controller) {
  for (int i = 0; i < 100; ++i) {
    std::string out = controller.Output();
    for (std::istringstream in(out); ;) {
      std::string line;
      if (!std::getline(in, line)) break;
      if (line.find("health server listening") == std::string::npos) continue;
      return json::parse(line).value("port", 0);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return 0;
}

int64_t CountPromptsStartingWith(const json& stats, const std::string& prefix) {
  int64_t n = 0;
  if (stats.contains("by_prompt"))
    for (auto it = stats["by_prompt"].begin(); it != stats["by_prompt"].end(); ++it)
      if (it.key().rfind(prefix, 0) == 0) n += it.value().get<int64_t>();
  return n;
}

TEST(E2eLifecycle, ResearchAgentWaitsForApprovalThenSucceeds) {
  World& w = World::Get();
  ASSERT_TRUE(w.controller->Running()) << w.controller->Output();
  w.llm->Reset();
  // /healthz answers at once; /readyz once the informers synced.
  int port = HealthPort(*w.controller);
  ASSERT_GT(port, 0) << w.controller->Output();
  EXPECT_EQ(HttpGetStatus(port, "/healthz"), 200);
  int ready = 0;
  for (int i = 0; i < 100 && ready != 200; ++i) {
    ready = HttpGetStatus(port, "/readyz");
    if (ready != 200) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(ready, 200);
  EXPECT_EQ(HttpGetStatus(port, "/nope"), 404);

  w.ApplyResearchRun("research-1");

  ASSERT_TRUE(w.WaitPhase("research-1", "Waiting"));
  EXPECT_EQ(w.Get("research-1", "{.status.wait.name}"), "proceed");
  EXPECT_NE(w.Get("research-1", "{.status.wait.question}").find("Proceed to analysis?"), std::string::npos);

  w.cluster->Kubectl({"patch", "flowrun", "research-1", "--subresource=status", "--type=merge", "-p",
                      R"({"status":{"answers":{"proceed":true}}})"});
  ASSERT_TRUE(w.WaitPhase("research-1", "Succeeded"));

  json stats = w.llm->Stats();
  EXPECT_EQ(CountPromptsStartingWith(stats, "Research the topic 'research-1'"), 1) << stats.dump();
  EXPECT_EQ(CountPromptsStartingWith(stats, "Analyze these research notes"), 1) << stats.dump();

  std::string jobs = Trim(w.cluster->Kubectl(
      {"get", "jobs", "-l", "flowrun.dev/run=research-1", "-o", "jsonpath={range .items[*]}{.metadata.name}{\" \"}{.metadata.labels.flowrun\\.dev/attempt}{\"\\n\"}{end}"}));
  EXPECT_NE(jobs.find("research-1-a1 1"), std::string::npos) << jobs;
  EXPECT_NE(jobs.find("research-1-a2 2"), std::string::npos) << jobs;
  EXPECT_EQ(std::count(jobs.begin(), jobs.end(), '\n'), 1) << jobs;

  // Who answered is recorded from the FlowRun's managedFields.
  std::string uid = w.Get("research-1", "{.metadata.uid}");
  EXPECT_EQ(w.pg->Psql("postgres", "SELECT answered_by FROM flowrun.waits WHERE run_uid = '" + uid + "'"),
            "kubernetes:kubectl-patch");
}

// An answer that does not match the wait's schema is refused visibly; a valid
// one replaces it; deleting the FlowRun deletes its Jobs and its rows.
TEST(E2eLifecycle, InvalidAnswerIsRefusedThenDeletionCleansUp) {
  World& w = World::Get();
  w.ApplyResearchRun("research-2");
  ASSERT_TRUE(w.WaitPhase("research-2", "Waiting"));
  std::string uid = w.Get("research-2", "{.metadata.uid}");
  ASSERT_FALSE(uid.empty());

  w.cluster->Kubectl({"patch", "flowrun", "research-2", "--subresource=status", "--type=merge", "-p",
                      R"({"status":{"answers":{"proceed":"yes"}}})"});
  auto r = w.cluster->KubectlResult(
      {"wait", "--timeout=60s", "flowrun/research-2",
       R"(--for=jsonpath={.status.conditions[?(@.type=="AnswerAccepted")].reason}=InvalidAnswer)"});
  ASSERT_TRUE(r.ok()) << r.output << w.cluster->Kubectl({"get", "flowrun", "research-2", "-o", "yaml"}, true);
  EXPECT_EQ(w.Get("research-2", "{.status.phase}"), "Waiting");
  EXPECT_FALSE(w.Get("research-2", "{.status.message}").empty());
  EXPECT_NE(w.cluster->Kubectl({"get", "events", "--field-selector", "involvedObject.name=research-2"}, true)
                .find("InvalidAnswer"),
            std::string::npos);
  // Nothing was recorded in the database: only one Job.
  EXPECT_EQ(Trim(w.cluster->Kubectl({"get", "jobs", "-l", "flowrun.dev/run=research-2", "-o", "name"})),
            "job.batch/research-2-a1");

  w.cluster->Kubectl({"patch", "flowrun", "research-2", "--subresource=status", "--type=merge", "-p",
                      R"({"status":{"answers":{"proceed":true}}})"});
  ASSERT_TRUE(w.WaitPhase("research-2", "Succeeded"));
  EXPECT_EQ(w.pg->Psql("postgres", "SELECT count(*) FROM flowrun.runs WHERE run_uid = '" + uid + "'"), "1");

  // Deletion: the finalizer deletes the rows, then the Jobs go (Background).
  w.cluster->Kubectl({"delete", "flowrun", "research-2", "--timeout=60s"});
  auto gone = w.cluster->KubectlResult(
      {"wait", "--for=delete", "job", "-l", "flowrun.dev/run=research-2", "--timeout=60s"});
  EXPECT_TRUE(gone.ok()) << gone.output;
  EXPECT_EQ(Trim(w.cluster->Kubectl({"get", "jobs", "-l", "flowrun.dev/run=research-2", "-o", "name"})), "");
  EXPECT_EQ(w.pg->Psql("postgres", "SELECT count(*) FROM flowrun.runs WHERE run_uid = '" + uid + "'"), "0");
  EXPECT_EQ(w.pg->Psql("postgres", "SELECT count(*) FROM flowrun.waits WHERE run_uid = '" + uid + "'"), "0");
}

// spec.cancel while waiting: the run ends Cancelled, in the database too.
TEST(E2eLifecycle, CancelWhileWaiting) {
  World& w = World::Get();
  w.ApplyResearchRun("research-4");
  ASSERT_TRUE(w.WaitPhase("research-4", "Waiting"));
  std::string uid = w.Get("research-4", "{.metadata.uid}");
  w.cluster->Kubectl({"patch", "flowrun", "research-4", "--type=merge", "-p", R"({"spec":{"cancel":true}})"});
  ASSERT_TRUE(w.WaitPhase("research-4", "Cancelled", "60s"));
  EXPECT_EQ(w.pg->Psql("postgres", "SELECT status FROM flowrun.runs WHERE run_uid = '" + uid + "'"), "cancelled");
}

// SIGTERM: the controller stops informers, drains its queue and exits 0.
TEST(E2eLifecycle, ZShutdownOnSigterm) {
  World& w = World::Get();
  ASSERT_TRUE(w.controller->Running());
  w.controller->Kill(SIGTERM);
  auto st = w.controller->Wait(std::chrono::seconds(30));
  ASSERT_TRUE(st.has_value()) << "controller did not exit";
  EXPECT_TRUE(st->ok()) << st->ToString() << "\n" << World::Tail(w.controller->Output(), 2000);
  EXPECT_NE(w.controller->Output().find("controller stopped"), std::string::npos);
  if (std::getenv("FLOWRUN_E2E_VERBOSE")) std::cerr << "controller log:\n" << w.controller->Output();
}

// Two controllers with --leader-elect: one leads (ready), the other waits
// (not ready, reconciles nothing); when the leader stops it releases the
// Lease and the other takes over and finishes the run.
TEST(E2eLifecycle, ZzLeaderElectionHandsOver) {
  World& w = World::Get();
  ASSERT_FALSE(w.controller->Running());  // ZShutdownOnSigterm stopped the first one
  auto a = w.SpawnController({"--leader-elect"});
  int pa = HealthPort(*a);
  ASSERT_GT(pa, 0) << a->Output();
  for (int i = 0; i < 100 && HttpGetStatus(pa, "/readyz") != 200; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ASSERT_EQ(HttpGetStatus(pa, "/readyz"), 200) << a->Output();
  EXPECT_NE(a->Output().find("became leader"), std::string::npos);

  auto b = w.SpawnController({"--leader-elect"});
  int pb = HealthPort(*b);
  ASSERT_GT(pb, 0) << b->Output();
  std::this_thread::sleep_for(std::chrono::seconds(2));
  EXPECT_EQ(HttpGetStatus(pb, "/healthz"), 200);
  EXPECT_EQ(HttpGetStatus(pb, "/readyz"), 503);

  w.ApplyResearchRun("research-3");
  ASSERT_TRUE(w.WaitPhase("research-3", "Waiting"));
  EXPECT_EQ(b->Output().find("\"reconcile\""), std::string::npos) << "the follower reconciled";

  a->Kill(SIGTERM);
  auto st = a->Wait(std::chrono::seconds(30));
  ASSERT_TRUE(st.has_value() && st->ok()) << World::Tail(a->Output(), 2000);
  for (int i = 0; i < 200 && HttpGetStatus(pb, "/readyz") != 200; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ASSERT_EQ(HttpGetStatus(pb, "/readyz"), 200) << World::Tail(b->Output(), 2000);

  w.cluster->Kubectl({"patch", "flowrun", "research-3", "--subresource=status", "--type=merge", "-p",
                      R"({"status":{"answers":{"proceed":true}}})"});
  w.controller = std::move(b);  // for WaitPhase's log tail
  ASSERT_TRUE(w.WaitPhase("research-3", "Succeeded"));
  w.controller->Kill(SIGTERM);
  auto sb = w.controller->Wait(std::chrono::seconds(30));
  EXPECT_TRUE(sb.has_value() && sb->ok());
}


// ---- test_agent scenarios (tests/runtime/agents/test_agent.cc) ----
// The image maps to research-agent in nodesim's image map; the template's
// command replaces it with the test agent, whose scenario the parameters choose.
// These run after ZzLeaderElectionHandsOver stopped the controllers, so each
// starts a fresh one when none runs.

void EnsureController(World& w) {
  if (!w.controller || !w.controller->Running()) w.controller = w.SpawnController({});
}

#ifdef FLOWRUN_TEST_AGENT_BIN
// Applies a FlowRun running test_agent; `parameters`, `extra_spec` and
// `extra_env` are YAML fragments (indented for their place).
void ApplyTestAgentRun(World& w, const std::string& name, const std::string& parameters,
                       const std::string& extra_spec = "", const std::string& extra_env = "") {
  const std::string path = w.dir + "/" + name + ".yaml";
  WriteFile(path, "apiVersion: flowrun.dev/v1alpha1\n"
                  "kind: FlowRun\n"
                  "metadata:\n  name: " + name + "\n"
                  "spec:\n"
                  "  template:\n"
                  "    image: flowrun/research-agent:test\n"
                  "    command: [\"" FLOWRUN_TEST_AGENT_BIN "\"]\n"
                  "    env:\n"
                  "    - name: OPENAI_BASE_URL\n"
                  "      value: " + w.llm->base_url() + "\n"
                  "    - name: OPENAI_API_KEY\n"
                  "      valueFrom:\n        secretKeyRef: {name: openai, key: api-key}\n"
                  "    - name: FLOWRUN_LLM_MODEL\n"
                  "      value: gpt-4o-mini\n" + extra_env +
                  "  parameters: " + parameters + "\n"
                  "  flow: e2e\n" + extra_spec);
  w.cluster->Kubectl({"apply", "-f", path});
}

std::string CompletedSteps(World& w, const std::string& uid) {
  return w.pg->Psql("postgres", "SELECT count(*) FROM flowrun.checkpoints WHERE run_uid = '" + uid +
                                    "' AND status = 'completed'");
}

// A pod killed mid-run: the controller retries after the backoff and the retry
// takes the completed checkpoints from the cache: no completed step's LLM call
// is paid twice.
TEST(E2eLifecycle, ZzzKilledPodIsRetriedFromTheCache) {
  World& w = World::Get();
  EnsureController(w);
  const std::string name = "kill-1";
  ApplyTestAgentRun(w, name, R"({"scenario": "chain", "steps": 8, "sleep_ms": 300, "prefix": "killstep"})",
                    "  retry:\n    maxAttempts: 3\n    backoffSeconds: 1\n");
  ASSERT_TRUE(w.WaitPhase(name, "Running", "120s"));
  std::string uid = w.Get(name, "{.metadata.uid}");
  ASSERT_FALSE(uid.empty());
  int done = 0;
  for (int i = 0; i < 300 && done < 2; ++i) {
    done = std::atoi(CompletedSteps(w, uid).c_str());
    if (done < 2) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_GE(done, 2) << w.cluster->Kubectl({"get", "flowrun", name, "-o", "yaml"}, true);
  ASSERT_LT(done, 8) << "the run finished before the kill";
  // Steps 1..done are completed now: their prompts must never be sent again.
  std::string pod = Trim(w.cluster->Kubectl(
      {"get", "pods", "-l", "flowrun.dev/run=" + name + ",flowrun.dev/attempt=1", "-o", "name"}));
  ASSERT_NE(pod, "");
  w.cluster->Kubectl({"delete", pod, "--wait=false"});

  ASSERT_TRUE(w.WaitPhase(name, "Succeeded", "180s"));
  std::string jobs = Trim(w.cluster->Kubectl({"get", "jobs", "-l", "flowrun.dev/run=" + name, "-o", "name"}));
  EXPECT_GE(std::count(jobs.begin(), jobs.end(), '\n'), 1) << jobs;
  std::string first_outcome = w.Get(name, "{.status.attempts[0].outcome}");
  EXPECT_NE(first_outcome, "");
  EXPECT_NE(first_outcome, "succeeded");
  EXPECT_NE(w.Get(name, "{.status.attempts[0].reason}"), "");
  EXPECT_EQ(w.Get(name, "{.status.attempts[0].attempt}"), "1");
  EXPECT_EQ(w.Get(name, "{.status.attempts[-1].outcome}"), "succeeded");

  json stats = w.llm->Stats();
  int64_t total = 0;
  for (int i = 1; i <= 8; ++i) {
    int64_t n = CountPromptsStartingWith(stats, "killstep " + std::to_string(i) + " of run ");
    total += n;
    if (i <= done) EXPECT_EQ(n, 1) << "step " << i << " " << stats.dump();
    else EXPECT_TRUE(n == 1 || n == 2) << "step " << i << " " << stats.dump();
  }
  EXPECT_LE(total, 9) << stats.dump();  // at most the step in flight at the kill repeated
  EXPECT_EQ(CompletedSteps(w, uid), "8");
  if (std::getenv("FLOWRUN_E2E_VERBOSE"))
    std::cerr << "killed after " << done << " steps; attempts: " << w.Get(name, "{.status.attempts}")
              << "\ncheckpoints: " << w.Get(name, "{.status.checkpoints}") << "\nLLM calls: " << total << "\n";
}

// A wait's deadline with nobody answering: policy default continues with the
// default answer; policy fail fails the run with WaitTimedOut.
TEST(E2eLifecycle, ZzzWaitDeadlineUnderBothPolicies) {
  World& w = World::Get();
  EnsureController(w);
  ApplyTestAgentRun(w, "timeout-default", R"({"scenario": "wait_timeout", "timeout_s": 2, "policy": "default"})");
  ApplyTestAgentRun(w, "timeout-fail", R"({"scenario": "wait_timeout", "timeout_s": 2, "policy": "fail"})");

  ASSERT_TRUE(w.WaitPhase("timeout-default", "Succeeded", "120s"));
  EXPECT_NE(w.Get("timeout-default", "{.status.result}").find("fallback"), std::string::npos)
      << w.Get("timeout-default", "{.status}");
  EXPECT_EQ(w.Get("timeout-default", "{.status.answers}"), "");

  ASSERT_TRUE(w.WaitPhase("timeout-fail", "Failed", "120s"));
  EXPECT_EQ(w.Get("timeout-fail", R"({.status.conditions[?(@.type=="Succeeded")].reason})"), "WaitTimedOut")
      << w.Get("timeout-fail", "{.status}");
  EXPECT_FALSE(w.Get("timeout-fail", "{.status.message}").empty());
  std::string uid = w.Get("timeout-fail", "{.metadata.uid}");
  EXPECT_EQ(w.pg->Psql("postgres", "SELECT status FROM flowrun.runs WHERE run_uid = '" + uid + "'"), "failed");
}

// spec.budgetUSD too small: BudgetExceeded with nothing lost; raising it
// resumes the run and no LLM call is repeated.
TEST(E2eLifecycle, ZzzBudgetExceededThenRaised) {
  World& w = World::Get();
  EnsureController(w);
  const std::string prices = w.dir + "/prices.yaml";
  WriteFile(prices, "models:\n  gpt-4o-mini: {input: 5.0, output: 5.0}\n");
  w.llm->Reset();
  w.llm->Configure({{"usage", {{"prompt_tokens", 1000}, {"completion_tokens", 1000}, {"cached_tokens", 0}}}});
  const std::string name = "budget-1";
  // $0.01 per call: the 4th call is refused.
  ApplyTestAgentRun(w, name, R"({"scenario": "budget", "steps": 5})", "  budgetUSD: 0.025\n",
                    "    - name: FLOWRUN_PRICE_TABLE\n      value: " + prices + "\n");
  bool exceeded = w.WaitPhase(name, "BudgetExceeded", "120s");
  if (exceeded) {
    EXPECT_EQ(w.llm->Total(), 3);
    EXPECT_FALSE(w.Get(name, "{.status.message}").empty());
    w.cluster->Kubectl({"patch", "flowrun", name, "--type=merge", "-p", R"({"spec":{"budgetUSD":1}})"});
    EXPECT_TRUE(w.WaitPhase(name, "Succeeded", "120s"));
    EXPECT_EQ(w.llm->Total(), 5);
    for (int i = 1; i <= 5; ++i) EXPECT_EQ(w.llm->CountForPrompt("spend " + std::to_string(i)), 1) << i;
    EXPECT_EQ(w.Get(name, "{.status.checkpoints.cached}"), "3") << w.Get(name, "{.status}");
  }
  w.llm->Configure({{"usage", nullptr}});
}

#endif  // FLOWRUN_TEST_AGENT_BIN

// Answers that must not be taken: one for a wait nobody asked (UnknownWait,
// kept, the run stays Waiting) and one patched onto a finished run (ignored).
TEST(E2eLifecycle, ZzzUnknownWaitAndLateAnswersChangeNothing) {
  World& w = World::Get();
  EnsureController(w);
  const std::string name = "research-5";
  w.ApplyResearchRun(name);
  ASSERT_TRUE(w.WaitPhase(name, "Waiting"));
  std::string uid = w.Get(name, "{.metadata.uid}");

  w.cluster->Kubectl({"patch", "flowrun", name, "--subresource=status", "--type=merge", "-p",
                      R"({"status":{"answers":{"nosuch":true}}})"});
  auto r = w.cluster->KubectlResult(
      {"wait", "--timeout=60s", "flowrun/" + name,
       R"(--for=jsonpath={.status.conditions[?(@.type=="AnswerAccepted")].reason}=UnknownWait)"});
  ASSERT_TRUE(r.ok()) << r.output << w.cluster->Kubectl({"get", "flowrun", name, "-o", "yaml"}, true);
  EXPECT_EQ(w.Get(name, "{.status.phase}"), "Waiting");
  EXPECT_EQ(w.Get(name, "{.status.wait.name}"), "proceed");
  EXPECT_EQ(w.Get(name, "{.status.answers.nosuch}"), "true");
  EXPECT_EQ(Trim(w.cluster->Kubectl({"get", "jobs", "-l", "flowrun.dev/run=" + name, "-o", "name"})),
            "job.batch/" + name + "-a1");

  w.cluster->Kubectl({"patch", "flowrun", name, "--subresource=status", "--type=merge", "-p",
                      R"({"status":{"answers":{"proceed":true}}})"});
  ASSERT_TRUE(w.WaitPhase(name, "Succeeded"));
  const std::string result = w.Get(name, "{.status.result}");
  const std::string rv_jobs = Trim(w.cluster->Kubectl({"get", "jobs", "-l", "flowrun.dev/run=" + name, "-o", "name"}));
  const int64_t calls = w.llm->Total();
  const std::string answer_sql = "SELECT answer::text FROM flowrun.waits WHERE run_uid = '" + uid + "' AND name = 'proceed'";
  EXPECT_EQ(w.pg->Psql("postgres", answer_sql), "true");

  // A changed answer on a finished run: nothing happens.
  w.cluster->Kubectl({"patch", "flowrun", name, "--subresource=status", "--type=merge", "-p",
                      R"({"status":{"answers":{"proceed":false}}})"});
  std::this_thread::sleep_for(std::chrono::seconds(3));
  EXPECT_EQ(w.Get(name, "{.status.phase}"), "Succeeded");
  EXPECT_EQ(w.Get(name, "{.status.result}"), result);
  EXPECT_EQ(Trim(w.cluster->Kubectl({"get", "jobs", "-l", "flowrun.dev/run=" + name, "-o", "name"})), rv_jobs);
  EXPECT_EQ(w.llm->Total(), calls);
  EXPECT_EQ(w.pg->Psql("postgres", answer_sql), "true");
  EXPECT_EQ(w.pg->Psql("postgres", "SELECT status FROM flowrun.runs WHERE run_uid = '" + uid + "'"), "succeeded");
}

}  // namespace
}  // namespace flowrun::testing
