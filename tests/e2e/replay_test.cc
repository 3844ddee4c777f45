// Replay end to end (issue 14, label e2e): FlowRuns with spec.replay on the
// real control plane, the real controller, the test agent as pods (nodesim),
// a real PostgreSQL and the counting fake LLM. The replay is prepared before
// its first Job; a missing or re-created source is reported in the Replay
// condition and starts nothing; a replay does not depend on its source once
// prepared; a SIGKILLed controller neither copies twice nor double-counts;
// and the headline: a 40-checkpoint run replayed from checkpoint 30 with a
// changed prompt pays for the live tail only (fake LLM, status, database,
// Prometheus counter), with an overridden output and a pre-answered wait.
#include <gtest/gtest.h>

#include <cmath>
#include <set>
#include <sstream>

#include "e2e/e2e_world.h"
#include "support/local_http.h"

namespace flowrun::testing {
namespace {

using nlohmann::json;
using std::chrono::seconds;

// One world for the suite: a controller with a metrics server and a price
// table (every call costs the same: fixed usage), so spend is known exactly.
struct Suite {
  E2eWorld* w = nullptr;
  std::vector<std::string> args;
};

Suite& S() {
  static Suite s;
  if (!s.w) {
    s.w = &E2eWorld::Get({.start_controller = false});
    WriteFile(s.w->dir + "/prices.yaml", "models:\n  gpt-4o-mini: {input: 5.0, output: 5.0}\n");
    s.args = {"--metrics-addr", "127.0.0.1:0", "--metrics-min-refresh-ms", "200", "--price-table-path",
              s.w->dir + "/prices.yaml"};
    s.w->llm->Configure({{"usage", {{"prompt_tokens", 1000}, {"completion_tokens", 1000}, {"cached_tokens", 0}}}});
    s.w->StartController({.args = s.args});
  }
  if (!s.w->ControllerRunning()) s.w->StartController({.args = s.args});
  return s;
}

std::string Chain(int steps, const std::string& prefix, const std::string& extra = "") {
  return R"({"scenario": "chain", "steps": )" + std::to_string(steps) + R"(, "prefix": ")" + prefix + "\"" + extra + "}";
}

// The spec lines of a replay: "  replay: ..." (a YAML flow mapping).
std::string ReplaySpec(const std::string& source, const std::string& cut, const std::string& more = "") {
  return "  replay: {from: {run: " + source + ", checkpoint: " + cut + "}" + more + "}\n";
}

// The Replay condition's "status reason" ("" when absent).
std::string ReplayCondition(E2eWorld& w, const std::string& name) {
  return w.Get(name, R"({.status.conditions[?(@.type=="Replay")].status} {.status.conditions[?(@.type=="Replay")].reason})");
}

bool WaitReplayCondition(E2eWorld& w, const std::string& name, const std::string& want,
                         std::chrono::milliseconds timeout = std::chrono::seconds(120)) {
  bool ok = Eventually([&] { return ReplayCondition(w, name) == want; }, timeout);
  if (!ok) ADD_FAILURE() << name << ": Replay condition is '" << ReplayCondition(w, name) << "', want '" << want
                         << "'\n" << w.Diagnostics(name);
  return ok;
}

double Num(const std::string& s) { return s.empty() ? -1 : std::stod(s); }

// Sum of a counter over its labels from the controller's /metrics, for one flow.
double MetricSum(ChildProcess& controller, const std::string& metric, const std::string& flow) {
  json line = WaitForLogLine(controller, "metrics server listening", std::chrono::seconds(10));
  int port = line.is_object() ? line.value("port", 0) : 0;
  if (port <= 0) return -1;
  std::istringstream body(HttpGetBody(port, "/metrics"));
  double total = 0;
  for (std::string l; std::getline(body, l);) {
    if (l.rfind(metric + "{", 0) != 0 || l.find("flow=\"" + flow + "\"") == std::string::npos) continue;
    size_t sp = l.rfind(' ');
    if (sp != std::string::npos) total += std::strtod(l.c_str() + sp + 1, nullptr);
  }
  return total;
}

// Prompts the fake LLM answered for run `uid`: step number -> prompt.
std::map<int, std::string> PromptsOf(E2eWorld& w, const std::string& uid) {
  std::map<int, std::string> out;
  json stats = w.llm->Stats();
  if (!stats.contains("by_prompt")) return out;
  for (auto it = stats["by_prompt"].begin(); it != stats["by_prompt"].end(); ++it) {
    const std::string& p = it.key();
    size_t at = p.find(" of run " + uid);
    if (at == std::string::npos) continue;
    size_t sp = p.rfind(' ', at - 1);
    int step = std::atoi(p.c_str() + (sp == std::string::npos ? 0 : sp + 1));
    for (int64_t n = it.value().get<int64_t>(); n > 0; --n) {
      if (out.count(step)) step = -step;  // a second call for a step: visible as a negative key
      out[step] = p;
    }
  }
  return out;
}

std::string RunSource(E2eWorld& w, const std::string& name, int steps, const std::string& extra = "") {
  w.ApplyTestAgentRun(name, Chain(steps, "p-" + name, extra), "  retry: {maxAttempts: 3, backoffSeconds: 1}\n");
  EXPECT_TRUE(w.WaitPhase(name, "Succeeded"));
  return w.Uid(name);
}

// ---------------------------------------------------------------------------

// First in the binary: the spend counter is compared with the database while
// no run has been deleted yet.
// The headline of issue 14.
TEST(E2eReplay, FortyCheckpointsReplayedFromThirtyPayOnlyForTheLiveTail) {
  Suite& s = S();
  E2eWorld& w = *s.w;
  const std::string flow = "e2e";
  std::string src_uid = RunSource(w, "h-src", 40, R"(, "feed_previous": true)");
  ASSERT_EQ(PromptsOf(w, src_uid).size(), 40u);
  double source_prefix = Num(w.Psql("SELECT sum(cost_usd) FROM flowrun.llm_calls WHERE run_uid = '" + src_uid +
                                    "' AND checkpoint_name IN (" + [] {
                                      std::string in;
                                      for (int i = 1; i <= 29; ++i) in += (i > 1 ? ", 'step-" : "'step-") + std::to_string(i) + "'";
                                      return in;
                                    }() + ")"));
  ASSERT_GT(source_prefix, 0);
  // The spend counter once the source's spend is in it.
  double source_total = Num(w.Psql("SELECT sum(cost_usd) FROM flowrun.llm_calls"));
  double before = -1;
  ASSERT_TRUE(Eventually([&] { return std::fabs((before = MetricSum(*w.controller(), "flowrun_cost_usd_total", flow)) -
                                                source_total) < 1e-9; },
                         std::chrono::seconds(30)))
      << "flowrun_cost_usd_total " << before << " vs the database's " << source_total;

  // New code: the prompt changes from step 30 on, a wait after step 35; the
  // output of step 29 (reused) is overridden and the wait is answered ahead.
  w.ApplyTestAgentRun(
      "h-r1", Chain(40, "p-h-src", R"(, "feed_previous": true, "live_prefix_from": 30, "live_prefix": "NEW", "wait_after": 35)"),
      ReplaySpec("h-src", "step-30", R"(, outputs: {step-29: "EDITED-29"}, answers: {proceed: true})"));
  ASSERT_TRUE(w.WaitPhase("h-r1", "Succeeded", "300s"));
  std::string uid = w.Uid("h-r1");

  // The fake LLM saw exactly steps 30..40 of the replay, with the new prompt.
  auto prompts = PromptsOf(w, uid);
  std::set<int> steps;
  for (const auto& [step, prompt] : prompts) {
    steps.insert(step);
    EXPECT_EQ(prompt.rfind("NEW ", 0), 0u) << prompt;
  }
  std::set<int> tail;
  for (int i = 30; i <= 40; ++i) tail.insert(i);
  EXPECT_EQ(steps, tail);
  // The override is what the first live checkpoint received.
  ASSERT_TRUE(prompts.count(30));
  EXPECT_NE(prompts[30].find("after: EDITED-29"), std::string::npos) << prompts[30];
  // The pre-answered wait did not stop the run: one attempt, never Waiting.
  EXPECT_EQ(w.Get("h-r1", "{.status.attempt} {.status.attempts[0].outcome}"), "1 succeeded");
  EXPECT_EQ(w.Get("h-r1", "{.status.replay.answers[0]} {.status.replay.outputs[0]}"), "proceed step-29");

  // Spent = the tail's calls; inherited = the source's spend for 1..29.
  double tail_spent = Num(w.Psql("SELECT sum(cost_usd) FROM flowrun.llm_calls WHERE run_uid = '" + uid + "'"));
  EXPECT_EQ(w.Psql("SELECT count(*) FROM flowrun.llm_calls WHERE run_uid = '" + uid + "'"), "11");
  EXPECT_NEAR(Num(w.Get("h-r1", "{.status.cost.usd}")), tail_spent, 1e-9);  // status rounds to 1e-9 USD
  EXPECT_EQ(w.Get("h-r1", "{.status.cost.llmCalls}"), "11");
  EXPECT_NEAR(Num(w.Get("h-r1", "{.status.replay.inheritedUsd}")), source_prefix, 1e-9);
  EXPECT_EQ(w.Get("h-r1", "{.status.replay.copiedCheckpoints} {.status.replay.cutReached}"), "29 true");
  EXPECT_EQ(ReplayCondition(w, "h-r1"), "True Prepared");

  // Prometheus: the spend counter rose by the tail only, never by the inherited prefix.
  double after = -1;
  EXPECT_TRUE(Eventually([&] { return std::fabs((after = MetricSum(*w.controller(), "flowrun_cost_usd_total", flow)) -
                                                (before + tail_spent)) < 1e-9; },
                         std::chrono::seconds(30)))
      << "before " << before << ", after " << after << ", tail " << tail_spent << ", inherited " << source_prefix;
}

TEST(E2eReplay, PreparedBeforeTheFirstJobWithStatusLabelAndCondition) {
  Suite& s = S();
  E2eWorld& w = *s.w;
  std::string src_uid = RunSource(w, "a-src", 5);
  w.ApplyTestAgentRun("a-r1", Chain(5, "p-a-src"), ReplaySpec("a-src", "step-3"));
  ASSERT_TRUE(w.WaitPhase("a-r1", "Succeeded"));
  EXPECT_EQ(ReplayCondition(w, "a-r1"), "True Prepared");
  EXPECT_EQ(w.Get("a-r1", "{.metadata.labels.flowrun\\.dev/replay-of}"), "a-src");
  EXPECT_EQ(w.Get("a-r1", "{.status.replay.sourceName} {.status.replay.sourceUid} {.status.replay.cut.checkpoint} "
                          "{.status.replay.cut.occurrence} {.status.replay.snapshotCheckpoints} "
                          "{.status.replay.copiedCheckpoints} {.status.replay.cutReached}"),
            "a-src " + src_uid + " step-3 1 5 2 true");
  EXPECT_EQ(w.Get("a-r1", "{.metadata.ownerReferences}"), "") << "no ownerReference to the source";
  // Prepared before the Job: the database's preparation is not later than the Job's creation.
  std::string prepared = w.Get("a-r1", "{.status.replay.preparedAt}");
  std::string job_created = Trim(w.Kubectl({"get", "job", "a-r1-a1", "-o", "jsonpath={.metadata.creationTimestamp}"}));
  ASSERT_FALSE(prepared.empty());
  EXPECT_LE(prepared, job_created) << "RFC 3339 UTC strings compare as times";
  // The prefix was copied (inherited), the tail paid.
  EXPECT_EQ(w.Get("a-r1", "{.status.cost.llmCalls}"), "3");
  EXPECT_GT(Num(w.Get("a-r1", "{.status.cost.inheritedUsd}")), 0);
  EXPECT_EQ(PromptsOf(w, w.Uid("a-r1")).size(), 3u);
}

TEST(E2eReplay, SourceMissingThenCreatedAndUidPinRefusesARecreatedSource) {
  Suite& s = S();
  E2eWorld& w = *s.w;
  // No source yet: condition, Warning Event, no Job.
  w.ApplyTestAgentRun("b-r1", Chain(3, "p-b-src"), ReplaySpec("b-src", "step-2"));
  ASSERT_TRUE(WaitReplayCondition(w, "b-r1", "False SourceNotFound"));
  EXPECT_TRUE(w.JobsOf("b-r1").empty());
  EXPECT_EQ(w.Get("b-r1", "{.status.phase}"), "Pending");
  EXPECT_TRUE(Eventually(
      [&] {
        return w.Kubectl({"get", "events", "--field-selector", "involvedObject.name=b-r1,reason=SourceNotFound", "-o",
                          "name"}, true)
                   .find("event") != std::string::npos;
      },
      std::chrono::seconds(30)))
      << w.Kubectl({"get", "events"}, true);
  // The source appears later: the replay is prepared once it has a run and proceeds.
  RunSource(w, "b-src", 3);
  ASSERT_TRUE(WaitReplayCondition(w, "b-r1", "True Prepared", std::chrono::seconds(240)));
  ASSERT_TRUE(w.WaitPhase("b-r1", "Succeeded"));

  // Pinned to a uid: the source deleted and created again under the same name is refused.
  std::string old_uid = RunSource(w, "b-pin", 3);
  w.Kubectl({"delete", "flowrun", "b-pin", "--wait=true", "--timeout=60s"});
  w.ApplyTestAgentRun("b-pin", Chain(3, "p-b-pin"));
  ASSERT_TRUE(w.WaitPhase("b-pin", "Succeeded"));
  ASSERT_NE(w.Uid("b-pin"), old_uid);
  w.ApplyTestAgentRun("b-r2", Chain(3, "p-b-pin"), "  replay: {from: {run: b-pin, checkpoint: step-2, uid: " + old_uid + "}}\n");
  ASSERT_TRUE(WaitReplayCondition(w, "b-r2", "False SourceUidMismatch"));
  EXPECT_NE(w.Get("b-r2", R"({.status.conditions[?(@.type=="Replay")].message})").find(old_uid), std::string::npos);
  EXPECT_TRUE(w.JobsOf("b-r2").empty());
  EXPECT_EQ(w.Psql("SELECT count(*) FROM flowrun.replays WHERE run_uid = '" + w.Uid("b-r2") + "'"), "0");
}

TEST(E2eReplay, SourceDeletedWhileTheReplayRunsTheReplayCompletes) {
  Suite& s = S();
  E2eWorld& w = *s.w;
  RunSource(w, "c-src", 6);
  // The live tail is slow, so the source is deleted while it runs.
  w.ApplyTestAgentRun("c-r1", Chain(6, "p-c-src", R"(, "sleep_ms": 700)"), ReplaySpec("c-src", "step-3"));
  ASSERT_TRUE(w.WaitPhase("c-r1", "Running"));
  w.Kubectl({"delete", "flowrun", "c-src", "--wait=true", "--timeout=60s"});
  EXPECT_EQ(w.Psql("SELECT count(*) FROM flowrun.runs WHERE name = 'c-src'"), "0") << "the source's rows are gone";
  ASSERT_TRUE(w.WaitPhase("c-r1", "Succeeded"));
  EXPECT_EQ(w.Get("c-r1", "{.status.replay.copiedCheckpoints} {.status.replay.cutReached}"), "2 true");
  EXPECT_EQ(ReplayCondition(w, "c-r1"), "True Prepared");
  EXPECT_EQ(w.Get("c-r1", "{.status.cost.llmCalls}"), "4");
}

TEST(E2eReplay, ControllerSigkilledDuringPreparationAndFirstAttemptNoDuplicateCopyNoDoubleInheritance) {
  Suite& s = S();
  E2eWorld& w = *s.w;
  std::string src_uid = RunSource(w, "d-src", 6);
  double source_prefix = Num(w.Psql("SELECT sum(cost_usd) FROM flowrun.checkpoints WHERE run_uid = '" + src_uid +
                                    "' AND name IN ('step-1', 'step-2', 'step-3')"));
  ASSERT_GT(source_prefix, 0);
  w.ApplyTestAgentRun("d-r1", Chain(6, "p-d-src", R"(, "sleep_ms": 300)"), ReplaySpec("d-src", "step-4"));
  // Killed as soon as the replay is seen (label or condition written), again
  // once its first Job exists, again while the first attempt runs.
  ASSERT_TRUE(Eventually([&] { return !w.Get("d-r1", "{.metadata.labels}").empty(); }, std::chrono::seconds(60)));
  w.KillController();
  w.StartController({.args = s.args});
  ASSERT_TRUE(Eventually([&] { return !w.JobsOf("d-r1").empty(); }, std::chrono::seconds(60))) << w.Diagnostics("d-r1");
  w.KillController();
  w.StartController({.args = s.args});
  ASSERT_TRUE(w.WaitPhase("d-r1", "Running"));
  w.KillController();
  w.StartController({.args = s.args});
  ASSERT_TRUE(w.WaitPhase("d-r1", "Succeeded"));
  std::string uid = w.Uid("d-r1");
  EXPECT_EQ(w.Psql("SELECT count(*) FROM flowrun.replays WHERE run_uid = '" + uid + "'"), "1");
  EXPECT_EQ(w.Psql("SELECT count(*) FROM flowrun.replay_checkpoints WHERE run_uid = '" + uid + "'"), "6")
      << "one snapshot of the six completed source checkpoints";
  EXPECT_EQ(w.Psql("SELECT count(*) FROM flowrun.checkpoints WHERE run_uid = '" + uid + "' AND copied"), "3");
  EXPECT_EQ(w.Get("d-r1", "{.status.replay.copiedCheckpoints}"), "3");
  EXPECT_NEAR(Num(w.Get("d-r1", "{.status.replay.inheritedUsd}")), source_prefix, 1e-9) << "not double-counted";
  EXPECT_EQ(w.Get("d-r1", "{.status.cost.inheritedUsd}"), w.Get("d-r1", "{.status.replay.inheritedUsd}"));
  EXPECT_EQ(w.Get("d-r1", "{.status.attempt}"), "1");
  EXPECT_EQ(PromptsOf(w, uid).size(), 3u);
}

TEST(E2eReplay, CutNeverReachedIsReportedAtTheEnd) {
  Suite& s = S();
  E2eWorld& w = *s.w;
  RunSource(w, "e-src", 3);
  w.ApplyTestAgentRun("e-r1", Chain(3, "p-e-src"), ReplaySpec("e-src", "no-such-step"));
  ASSERT_TRUE(w.WaitPhase("e-r1", "Succeeded"));
  ASSERT_TRUE(WaitReplayCondition(w, "e-r1", "False CutNotReached"));
  EXPECT_EQ(w.Get("e-r1", "{.status.replay.cutReached} {.status.replay.copiedCheckpoints}"), "false 3");
}

}  // namespace
}  // namespace flowrun::testing
