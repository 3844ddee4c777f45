// End to end, like a user: the CRDs applied with kubectl, flowrun-controller
// running as a child process, a FlowRun for the research agent applied with
// kubectl, the wait answered with `kubectl patch --subresource=status`.
// nodesim maps the agent's image to build/examples/research-agent.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "e2e/e2e_world.h"
#include "flowrun/money.h"

namespace flowrun::testing {
namespace {

using nlohmann::json;

TEST(E2eLifecycle, ResearchAgentWaitsForApprovalThenSucceeds) {
  E2eWorld& w = E2eWorld::Get();
  w.EnsureController();
  ASSERT_TRUE(w.ControllerRunning()) << w.ControllerLog();
  w.llm->Reset();
  // /healthz answers at once; /readyz once the informers synced.
  int port = HealthPort(*w.controller());
  ASSERT_GT(port, 0) << w.ControllerLog();
  EXPECT_EQ(HttpGetStatus(port, "/healthz"), 200);
  EXPECT_TRUE(WaitReady(port));
  EXPECT_EQ(HttpGetStatus(port, "/nope"), 404);

  // Apply, Waiting, answer, Succeeded; each LLM call once; who answered is
  // recorded from the FlowRun's managedFields.
  w.ExpectResearchLifecycle("research-1");
}

// An answer that does not match the wait's schema is refused visibly; a valid
// one replaces it; deleting the FlowRun deletes its Jobs and its rows.
TEST(E2eLifecycle, InvalidAnswerIsRefusedThenDeletionCleansUp) {
  E2eWorld& w = E2eWorld::Get();
  w.EnsureController();
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
  EXPECT_EQ(w.Psql("SELECT count(*) FROM flowrun.runs WHERE run_uid = '" + uid + "'"), "1");

  // Deletion: the finalizer deletes the rows, then the Jobs go (Background).
  w.cluster->Kubectl({"delete", "flowrun", "research-2", "--timeout=60s"});
  auto gone = w.cluster->KubectlResult(
      {"wait", "--for=delete", "job", "-l", "flowrun.dev/run=research-2", "--timeout=60s"});
  EXPECT_TRUE(gone.ok()) << gone.output;
  EXPECT_EQ(Trim(w.cluster->Kubectl({"get", "jobs", "-l", "flowrun.dev/run=research-2", "-o", "name"})), "");
  EXPECT_EQ(w.Psql("SELECT count(*) FROM flowrun.runs WHERE run_uid = '" + uid + "'"), "0");
  EXPECT_EQ(w.Psql("SELECT count(*) FROM flowrun.waits WHERE run_uid = '" + uid + "'"), "0");
}

// spec.cancel while waiting: the run ends Cancelled, in the database too.
TEST(E2eLifecycle, CancelWhileWaiting) {
  E2eWorld& w = E2eWorld::Get();
  w.EnsureController();
  w.ApplyResearchRun("research-4");
  ASSERT_TRUE(w.WaitPhase("research-4", "Waiting"));
  std::string uid = w.Get("research-4", "{.metadata.uid}");
  w.cluster->Kubectl({"patch", "flowrun", "research-4", "--type=merge", "-p", R"({"spec":{"cancel":true}})"});
  ASSERT_TRUE(w.WaitPhase("research-4", "Cancelled", "60s"));
  EXPECT_EQ(w.Psql("SELECT status FROM flowrun.runs WHERE run_uid = '" + uid + "'"), "cancelled");
}

// SIGTERM: the controller stops informers, drains its queue and exits 0.
TEST(E2eLifecycle, ShutdownOnSigterm) {
  E2eWorld& w = E2eWorld::Get();
  w.EnsureController();
  ASSERT_TRUE(w.ControllerRunning()) << w.ControllerLog();
  auto st = w.StopController();
  ASSERT_TRUE(st.has_value()) << "controller did not exit";
  EXPECT_TRUE(st->ok()) << st->ToString() << "\n" << Tail(w.ControllerLog(), 2000);
  EXPECT_NE(w.ControllerLog().find("controller stopped"), std::string::npos);
  if (std::getenv("FLOWRUN_E2E_VERBOSE")) std::cerr << "controller log:\n" << w.ControllerLog();
}

// Two controllers with --leader-elect: one leads (ready), the other waits
// (not ready, reconciles nothing); when the leader stops it releases the
// Lease and the other takes over and finishes the run.
TEST(E2eLifecycle, LeaderElectionHandsOver) {
  E2eWorld& w = E2eWorld::Get();
  // Its own precondition: no other controller (without --leader-elect) runs.
  if (w.ControllerRunning()) ASSERT_TRUE(w.StopController().has_value()) << "controller did not exit";
  ASSERT_FALSE(w.ControllerRunning());
  auto a = w.SpawnController({.args = {"--leader-elect"}});
  int pa = HealthPort(*a);
  ASSERT_GT(pa, 0) << a->Output();
  ASSERT_TRUE(WaitReady(pa)) << a->Output();
  EXPECT_NE(a->Output().find("became leader"), std::string::npos);

  auto b = w.SpawnController({.args = {"--leader-elect"}});
  int pb = HealthPort(*b);
  ASSERT_GT(pb, 0) << b->Output();
  EXPECT_EQ(HttpGetStatus(pb, "/healthz"), 200);
  EXPECT_EQ(HttpGetStatus(pb, "/readyz"), 503);

  // While the leader takes a run all the way to Waiting (a Job, a pod, the
  // agent's checkpoints), the follower stays a follower: not ready, no
  // reconcile. The run's progress is the signal that enough happened, not a
  // sleep.
  w.ApplyResearchRun("research-3");
  ASSERT_TRUE(w.WaitPhase("research-3", "Waiting"));
  EXPECT_EQ(b->Output().find("\"reconcile\""), std::string::npos) << "the follower reconciled";
  EXPECT_EQ(HttpGetStatus(pb, "/readyz"), 503);
  EXPECT_EQ(HttpGetStatus(pa, "/readyz"), 200);

  a->Kill(SIGTERM);
  auto st = a->Wait(std::chrono::seconds(30));
  ASSERT_TRUE(st.has_value() && st->ok()) << Tail(a->Output(), 2000);
  ASSERT_TRUE(WaitReady(pb)) << Tail(b->Output(), 2000);

  w.cluster->Kubectl({"patch", "flowrun", "research-3", "--subresource=status", "--type=merge", "-p",
                      R"({"status":{"answers":{"proceed":true}}})"});
  ASSERT_TRUE(w.WaitPhase("research-3", "Succeeded")) << "follower's log:\n" << Tail(b->Output(), 4000);
  b->Kill(SIGTERM);
  auto sb = b->Wait(std::chrono::seconds(30));
  EXPECT_TRUE(sb.has_value() && sb->ok());
}


// ---- test_agent scenarios (tests/runtime/agents/test_agent.cc) ----
// The image maps to research-agent in nodesim's image map; the template's
// command replaces it with the test agent, whose scenario the parameters choose.
// Each starts a controller when none runs (LeaderElectionHandsOver, for
// one, ends with none).

#ifdef FLOWRUN_TEST_AGENT_BIN
std::string CompletedSteps(E2eWorld& w, const std::string& uid) {
  return w.Psql("SELECT count(*) FROM flowrun.checkpoints WHERE run_uid = '" + uid +
                                    "' AND status = 'completed'");
}

// A pod killed mid-run: the controller retries after the backoff and the retry
// takes the completed checkpoints from the cache: no completed step's LLM call
// is paid twice, and the step the kill interrupted counts as re-executed.
//
// The first attempt hangs inside step 3 (before its LLM call) until killed, so
// the kill lands at a known point whatever the machine's speed. (It used to
// kill a running chain "soon after step 2", racing the rest of the chain: on a
// loaded machine the two kubectl calls and nodesim's reaction can outlast it,
// and the run succeeds before the kill lands.)
TEST(E2eLifecycle, KilledPodIsRetriedFromTheCache) {
  E2eWorld& w = E2eWorld::Get();
  w.EnsureController();
  static int repetition = 0;  // a fresh FlowRun per --gtest_repeat iteration
  const std::string name = "kill-" + std::to_string(++repetition);
  constexpr int kSteps = 8, kHangAt = 3;
  w.ApplyTestAgentRun(name,
                      json{{"scenario", "chain"}, {"steps", kSteps}, {"sleep_ms", 50}, {"hang_at_step", kHangAt},
                           {"prefix", "killstep"}}
                          .dump(),
                      "  retry:\n    maxAttempts: 3\n    backoffSeconds: 1\n");
  ASSERT_TRUE(w.WaitPhase(name, "Running", "120s"));
  std::string uid = w.Get(name, "{.metadata.uid}");
  ASSERT_FALSE(uid.empty());
  // The positive signal that attempt 1 is where the test wants it: steps 1-2
  // completed, step 3 started and not completed.
  const std::string at_gate = std::to_string(kHangAt - 1) + " 1";
  std::string progress;
  ASSERT_TRUE(Eventually(
      [&] {
        progress = w.Psql("SELECT count(*) FILTER (WHERE status = 'completed') || ' ' ||"
                          " count(*) FILTER (WHERE name = 'step-" + std::to_string(kHangAt) + "' AND status = 'running')"
                          " FROM flowrun.checkpoints WHERE run_uid = '" + uid + "'");
        return progress == at_gate;
      },
      std::chrono::seconds(120), std::chrono::milliseconds(100)))
      << "completed, step " << kHangAt << " running: " << progress << "\n" << w.Diagnostics(name);
  std::string pod = Trim(w.cluster->Kubectl(
      {"get", "pods", "-l", "flowrun.dev/run=" + name + ",flowrun.dev/attempt=1", "-o", "name"}));
  ASSERT_NE(pod, "");
  w.cluster->Kubectl({"delete", pod, "--wait=false"});

  ASSERT_TRUE(w.WaitPhase(name, "Succeeded", "180s"));
  std::string jobs = Trim(w.cluster->Kubectl({"get", "jobs", "-l", "flowrun.dev/run=" + name, "-o", "name"}));
  // The retry's Job, and the killed attempt's unless the controller deleted it
  // as stale: the agent answers the SIGTERM at once ("terminated"), the next
  // attempt starts without a backoff, and a Job of an older attempt that the
  // Job controller has not marked finished yet is stopped (it could start a
  // replacement pod). Never a third Job.
  EXPECT_NE(jobs.find("job.batch/" + name + "-a2"), std::string::npos) << jobs;
  EXPECT_LE(std::count(jobs.begin(), jobs.end(), '\n'), 1) << jobs;
  std::string first_outcome = w.Get(name, "{.status.attempts[0].outcome}");
  EXPECT_NE(first_outcome, "");
  EXPECT_NE(first_outcome, "succeeded");
  EXPECT_NE(w.Get(name, "{.status.attempts[0].reason}"), "") << w.Get(name, "{.status.attempts}") << "\n"
                                                              << w.Diagnostics(name);
  EXPECT_EQ(w.Get(name, "{.status.attempts[0].attempt}"), "1");
  EXPECT_EQ(w.Get(name, "{.status.attempts[-1].outcome}"), "succeeded");
  EXPECT_EQ(w.Get(name, "{.status.attempts[-1].attempt}"), "2");

  // Every step's prompt exactly once: steps 1-2 came from the cache, step 3's
  // body never reached its call in attempt 1.
  json stats = w.llm->Stats();
  int64_t total = 0;
  for (int i = 1; i <= kSteps; ++i) {
    int64_t n = CountPromptsStartingWith(stats, "killstep " + std::to_string(i) + " of run " + uid);
    total += n;
    EXPECT_EQ(n, 1) << "step " << i << " " << stats.dump();
  }
  EXPECT_EQ(total, kSteps) << stats.dump();
  EXPECT_EQ(CompletedSteps(w, uid), std::to_string(kSteps));
  EXPECT_EQ(w.Psql("SELECT string_agg(name || '=' || reexecutions, ',' ORDER BY name) FROM flowrun.checkpoints"
                   " WHERE run_uid = '" + uid + "' AND reexecutions > 0"),
            "step-" + std::to_string(kHangAt) + "=1");
  // The killed attempt never finished, so the totals are the retry's.
  EXPECT_EQ(w.Get(name, "{.status.checkpoints.cached}"), std::to_string(kHangAt - 1)) << w.Get(name, "{.status}");
  EXPECT_EQ(w.Get(name, "{.status.checkpoints.live}"), std::to_string(kSteps - (kHangAt - 1)));
  if (std::getenv("FLOWRUN_E2E_VERBOSE"))
    std::cerr << "attempts: " << w.Get(name, "{.status.attempts}")
              << "\ncheckpoints: " << w.Get(name, "{.status.checkpoints}") << "\nLLM calls: " << total << "\n";
}

// A wait's deadline with nobody answering: policy default continues with the
// default answer; policy fail fails the run with WaitTimedOut.
TEST(E2eLifecycle, WaitDeadlineUnderBothPolicies) {
  E2eWorld& w = E2eWorld::Get();
  w.EnsureController();
  w.ApplyTestAgentRun("timeout-default", R"({"scenario": "wait_timeout", "timeout_s": 2, "policy": "default"})");
  w.ApplyTestAgentRun("timeout-fail", R"({"scenario": "wait_timeout", "timeout_s": 2, "policy": "fail"})");

  ASSERT_TRUE(w.WaitPhase("timeout-default", "Succeeded", "120s"));
  EXPECT_NE(w.Get("timeout-default", "{.status.result}").find("fallback"), std::string::npos)
      << w.Get("timeout-default", "{.status}");
  EXPECT_EQ(w.Get("timeout-default", "{.status.answers}"), "");

  ASSERT_TRUE(w.WaitPhase("timeout-fail", "Failed", "120s"));
  EXPECT_EQ(w.Get("timeout-fail", R"({.status.conditions[?(@.type=="Succeeded")].reason})"), "WaitTimedOut")
      << w.Get("timeout-fail", "{.status}");
  EXPECT_FALSE(w.Get("timeout-fail", "{.status.message}").empty());
  std::string uid = w.Get("timeout-fail", "{.metadata.uid}");
  EXPECT_EQ(w.Psql("SELECT status FROM flowrun.runs WHERE run_uid = '" + uid + "'"), "failed");
}

// spec.budgetUSD too small: BudgetExceeded with nothing lost; raising it
// resumes the run and no LLM call is repeated.
TEST(E2eLifecycle, BudgetExceededThenRaised) {
  E2eWorld& w = E2eWorld::Get();
  w.EnsureController();
  const std::string prices = w.dir + "/prices.yaml";
  WriteFile(prices, "models:\n  gpt-4o-mini: {input: 5.0, output: 5.0}\n");
  w.llm->Reset();
  w.llm->Configure({{"usage", {{"prompt_tokens", 1000}, {"completion_tokens", 1000}, {"cached_tokens", 0}}}});
  const std::string name = "budget-1";
  // $0.01 per call: the 4th call is refused.
  w.ApplyTestAgentRun(name, R"({"scenario": "budget", "steps": 5})", "  budgetUSD: 0.025\n",
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

// status.cost's summaries for plain kubectl (issue 12): byModel and topCalls
// of a real run match flowrun.llm_calls, and no USD figure in the status
// carries float noise (per-token prices of 1.5e-7 / 6e-7 make noisy sums).
TEST(E2eLifecycle, CostSummariesInStatusMatchTheDatabase) {
  E2eWorld& w = E2eWorld::Get();
  w.EnsureController();
  const std::string prices = w.dir + "/prices-summaries.yaml";
  WriteFile(prices, "models:\n  gpt-4o-mini: {input: 0.15, output: 0.6}\n");
  w.llm->Reset();
  const std::string name = "summaries-1";
  w.ApplyTestAgentRun(name, R"({"scenario": "chain", "steps": 12})", "",
                      "    - name: FLOWRUN_PRICE_TABLE\n      value: " + prices + "\n");
  ASSERT_TRUE(w.WaitPhase(name, "Succeeded", "120s"));
  const std::string uid = w.Uid(name);
  const std::string calls = "FROM flowrun.llm_calls WHERE run_uid = '" + uid + "' AND state = 'completed'";
  ASSERT_EQ(w.Psql("SELECT count(*) " + calls), "12");
  // The controller's status may lag the last call by a reconcile.
  json cost;
  Eventually([&] {
    cost = w.GetJson("flowrun/" + name)["status"]["cost"];
    return cost.is_object() && cost.value("llmCalls", 0) == 12 && cost.contains("topCalls");
  }, std::chrono::seconds(60));
  ASSERT_TRUE(cost.is_object()) << w.Diagnostics(name);
  const auto is_decimal = [](const json& v) {
    if (!v.is_string()) return false;
    const std::string t = v.get<std::string>();
    const auto dot = t.find('.');
    return !t.empty() && t.find_first_not_of("0123456789.") == std::string::npos &&
           (dot == std::string::npos || t.size() - dot - 1 <= 9);
  };
  // byModel: one model, every completed call.
  ASSERT_TRUE(cost["byModel"].is_array() && cost["byModel"].size() == 1) << cost.dump();
  const json& m = cost["byModel"][0];
  EXPECT_EQ(m["model"].get<std::string>() + " " + std::to_string(m["llmCalls"].get<int64_t>()) + " " +
                std::to_string(m["inputTokens"].get<int64_t>()) + " " + std::to_string(m["outputTokens"].get<int64_t>()),
            w.Psql("SELECT model || ' ' || count(*) || ' ' || sum(input_tokens) || ' ' || sum(output_tokens) " + calls +
                   " GROUP BY model"));
  EXPECT_TRUE(is_decimal(m["usd"])) << m.dump();
  const double db_total = std::stod(w.Psql("SELECT sum(cost_usd) " + calls));
  EXPECT_NEAR(std::stod(m["usd"].get<std::string>()), db_total, 6e-10);
  EXPECT_FALSE(cost.contains("omittedModels")) << cost.dump();
  // topCalls: the three most expensive calls, in the database's order.
  ASSERT_TRUE(cost["topCalls"].is_array() && cost["topCalls"].size() == 3) << cost.dump();
  std::string seen;
  for (const json& c : cost["topCalls"]) {
    EXPECT_TRUE(is_decimal(c["usd"])) << c.dump();
    seen += c.value("checkpoint", std::string("-")) + "#" + std::to_string(c.value("occurrence", 0)) + " " +
            c.value("model", std::string()) + " " + std::to_string(c.value("inputTokens", int64_t{-1})) + "/" +
            std::to_string(c.value("outputTokens", int64_t{-1})) + " a" + std::to_string(c.value("attempt", 0)) + " " +
            UsdDecimal(std::stod(c["usd"].get<std::string>())) + ";";
  }
  std::string want, line;
  for (std::istringstream rows(w.Psql("SELECT checkpoint_name || '#' || occurrence || ' ' || model || ' ' || input_tokens || '/' ||"
                    " output_tokens || ' a' || attempt || ' ' || cost_usd " + calls +
                    " AND cost_usd IS NOT NULL ORDER BY cost_usd DESC, epoch, seq LIMIT 3"));
       std::getline(rows, line);) {
    auto sp = line.rfind(' ');
    want += line.substr(0, sp + 1) + UsdDecimal(std::stod(line.substr(sp + 1))) + ";";
  }
  EXPECT_EQ(seen, want);
  EXPECT_GE(std::stod(cost["topCalls"][0]["usd"].get<std::string>()),
            std::stod(cost["topCalls"][2]["usd"].get<std::string>()));
  // The same read through plain kubectl: the most expensive call's checkpoint.
  EXPECT_EQ(w.Get(name, "{.status.cost.topCalls[0].checkpoint}"), cost["topCalls"][0]["checkpoint"]);
  // status.cost.usd: the database's sum rounded to 1e-9 USD, a short number.
  ASSERT_TRUE(cost["usd"].is_number()) << cost.dump();
  EXPECT_NEAR(cost["usd"].get<double>(), db_total, 6e-10);
  const double nanos = cost["usd"].get<double>() * 1e9;
  EXPECT_NEAR(nanos, std::round(nanos), 1e-3) << cost["usd"].dump();
  EXPECT_LE(cost["usd"].dump().size(), 12u) << cost["usd"].dump();
  const std::string raw = w.Get(name, "{.status.cost}");
  EXPECT_EQ(raw.find("0000000"), std::string::npos) << "float noise in status.cost: " << raw;
  EXPECT_EQ(raw.find("9999999"), std::string::npos) << "float noise in status.cost: " << raw;
}

#endif  // FLOWRUN_TEST_AGENT_BIN

// Answers that must not be taken: one for a wait nobody asked (UnknownWait,
// kept, the run stays Waiting) and one patched onto a finished run (ignored).
TEST(E2eLifecycle, UnknownWaitAndLateAnswersChangeNothing) {
  E2eWorld& w = E2eWorld::Get();
  // With a metrics server: its reconcile counter shows when the controller
  // has looked at the late answer (a reconcile without actions logs nothing).
  w.StartController({.args = {"--metrics-addr", "127.0.0.1:0"}});
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
  EXPECT_EQ(w.Psql(answer_sql), "true");

  // A changed answer on a finished run: nothing happens, once the controller
  // has reconciled the change (not merely a few seconds later).
  const int64_t reconciles = ReconcileTotal(*w.controller());
  ASSERT_GE(reconciles, 0) << "no metrics server";
  w.cluster->Kubectl({"patch", "flowrun", name, "--subresource=status", "--type=merge", "-p",
                      R"({"status":{"answers":{"proceed":false}}})"});
  ASSERT_TRUE(Eventually([&] { return ReconcileTotal(*w.controller()) > reconciles; }, std::chrono::seconds(60)))
      << "the controller never reconciled the late answer";
  EXPECT_EQ(w.Get(name, "{.status.phase}"), "Succeeded");
  EXPECT_EQ(w.Get(name, "{.status.result}"), result);
  EXPECT_EQ(Trim(w.cluster->Kubectl({"get", "jobs", "-l", "flowrun.dev/run=" + name, "-o", "name"})), rv_jobs);
  EXPECT_EQ(w.llm->Total(), calls);
  EXPECT_EQ(w.Psql(answer_sql), "true");
  EXPECT_EQ(w.Psql("SELECT status FROM flowrun.runs WHERE run_uid = '" + uid + "'"), "succeeded");
}

}  // namespace
}  // namespace flowrun::testing
