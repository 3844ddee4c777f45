// `kubectl flowrun replay` and the lineage `diff` end to end (issue 14): the
// real kubectl-flowrun binary against the real control plane, the real
// flowrun-controller with its read API behind the aggregation path
// (read_api_setup.h), the test agent as pods (nodesim), PostgreSQL and the
// counting fake LLM, runs priced by examples/prices.yaml.
//
//   (a) a replay made through the plugin, then `diff` (table and -o json):
//       which checkpoints are reused (copied) and which recomputed, and the
//       cost figures equal the database's sums of flowrun.llm_calls;
//   (b) a bulk replay (-l, --phase Failed, --since) of three failed runs
//       creates exactly three FlowRuns with the replay-of and batch labels,
//       admitted (Replay Prepared) and, with the fix in --set-param,
//       Succeeded; runs of another phase or label are not replayed;
//   (c) --dry-run prints the plan from the read API (reused checkpoints,
//       their inherited cost as the database records it, what runs live)
//       and creates nothing;
//   (d) errors through the cluster: a missing source, a selector matching
//       nothing, a user who may not create FlowRuns.
//
//   ctest -L plugin
#include <chrono>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "e2e/e2e_world.h"
#include "plugin_runner.h"
#include "read_api_setup.h"

namespace flowrun::testing {
namespace {

using nlohmann::json;
using Result = PluginResult;

const int kAggregation = SetAggregationEnv();

bool Contains(const std::string& hay, const std::string& needle) { return hay.find(needle) != std::string::npos; }
double Num(const std::string& s) { return s.empty() ? -1 : std::strtod(s.c_str(), nullptr); }

std::string Chain(int steps, const std::string& prefix, const std::string& extra = "") {
  return R"({"scenario": "chain", "steps": )" + std::to_string(steps) + R"(, "prefix": ")" + prefix + "\"" + extra + "}";
}

// A test-agent run priced by examples/prices.yaml, one attempt (a failure is
// final), with `labels` (a YAML flow mapping, "" for none).
void ApplyChainRun(E2eWorld& w, const std::string& name, const std::string& params, const std::string& labels = "") {
  std::string yaml = w.TestAgentRunYaml(name, params, "  retry: {maxAttempts: 1}\n",
                                        "    - name: FLOWRUN_PRICE_TABLE\n      value: " FLOWRUN_SOURCE_DIR
                                        "/examples/prices.yaml\n");
  ASSERT_FALSE(yaml.empty());
  if (!labels.empty()) {
    const std::string head = "metadata:\n  name: " + name + "\n";
    size_t at = yaml.find(head);
    ASSERT_NE(at, std::string::npos) << yaml;
    yaml.insert(at + head.size(), "  labels: " + labels + "\n");
  }
  w.ApplyYaml(name + ".yaml", yaml);
}

// The Replay condition's "status reason" ("" when absent).
std::string ReplayCondition(E2eWorld& w, const std::string& name) {
  return w.Get(name, R"({.status.conditions[?(@.type=="Replay")].status} {.status.conditions[?(@.type=="Replay")].reason})");
}

// round(sum(cost_usd), 9) of the run's LLM calls, optionally of some checkpoints ("'a', 'b'").
std::string CallsUsd(E2eWorld& w, const std::string& uid, const std::string& checkpoints = "") {
  return w.Psql("SELECT round(coalesce(sum(cost_usd), 0)::numeric, 9) FROM flowrun.llm_calls WHERE run_uid = '" + uid +
                "'" + (checkpoints.empty() ? "" : " AND checkpoint_name IN (" + checkpoints + ")"));
}

int CountFlowRuns(E2eWorld& w) {
  std::string out = w.Kubectl({"get", "flowruns", "-o", "name"}, true);
  int n = 0;
  for (char c : out) n += c == '\n';
  return n;
}

// Names of the items of a read-API / plugin JSON list.
std::vector<std::string> Names(const json& items) {
  std::vector<std::string> out;
  if (items.is_array())
    for (const auto& i : items) out.push_back(i.value("name", std::string()));
  return out;
}

// The sources, applied at once and awaited in SetUpTestSuite:
//   rs        4 steps, Succeeded: the source of (a) and (c)
//   bf-1..3   label replay-suite=bulk, step 2 fails: Failed — the bulk sources
//   bok       label replay-suite=bulk, Succeeded: another phase, not replayed
//   bother    label replay-suite=other, Failed: another label, not replayed
class PluginReplay : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ASSERT_EQ(kAggregation, 0);
    E2eWorld& w = E2eWorld::Get({.start_controller = false});
    std::string host;
    SetUpReadApi(w, host);
    ASSERT_FALSE(HasFatalFailure());
    ApplyChainRun(w, "rs", Chain(4, "p-rs"));
    for (const std::string n : {"bf-1", "bf-2", "bf-3"})
      ApplyChainRun(w, n, Chain(3, "p-" + n, R"(, "fail_at_step": 2)"), "{replay-suite: bulk}");
    ApplyChainRun(w, "bok", Chain(3, "p-bok"), "{replay-suite: bulk}");
    ApplyChainRun(w, "bother", Chain(3, "p-bother", R"(, "fail_at_step": 2)"), "{replay-suite: other}");
    ASSERT_FALSE(HasFatalFailure());
    ASSERT_TRUE(w.WaitPhase("rs", "Succeeded"));
    ASSERT_TRUE(w.WaitPhase("bok", "Succeeded"));
    for (const std::string n : {"bf-1", "bf-2", "bf-3", "bother"}) ASSERT_TRUE(w.WaitPhase(n, "Failed"));
  }

  E2eWorld& w() { return E2eWorld::Get(); }
  std::string admin() { return w().cluster->admin_kubeconfig(); }
};

// (c) first, while rs has no replay yet: the plan names rs-r1.
TEST_F(PluginReplay, DryRunPrintsThePlanFromTheReadApiAndCreatesNothing) {
  const std::string uid = w().Uid("rs");
  const int before = CountFlowRuns(w());

  Result table = Plugin(w(), admin(), {"replay", "rs", "--from", "step-3", "--dry-run"});
  ASSERT_EQ(table.exit_code, 0) << table.err;
  const std::string inherited = CallsUsd(w(), uid, "'step-1', 'step-2'");
  const std::string live = CallsUsd(w(), uid, "'step-3', 'step-4'");
  ASSERT_GT(Num(inherited), 0) << "the runs must be priced";
  EXPECT_TRUE(Contains(table.out, "Replay of rs from checkpoint step-3 (an estimate")) << table.out;
  EXPECT_TRUE(Contains(table.out, "Reused from the source (copied, no new cost): 2 checkpoints")) << table.out;
  EXPECT_FALSE(Contains(table.out, "warning:")) << "rs did ask for step-3\n" << table.out;
  EXPECT_TRUE(Contains(table.out, "would create FlowRun rs-r1 (server-side dry run accepted it; nothing was created)"))
      << table.out;

  Result j = Plugin(w(), admin(), {"replay", "rs", "--from", "step-3", "--dry-run", "-o", "json"});
  ASSERT_EQ(j.exit_code, 0) << j.err;
  json doc = json::parse(j.out);
  ASSERT_EQ(doc["items"].size(), 1u) << doc.dump();
  const json& item = doc["items"][0];
  EXPECT_EQ(item["name"], "rs-r1");
  EXPECT_EQ(item["dryRun"], true);
  EXPECT_FALSE(item.contains("uid")) << "nothing was created";
  const json& plan = item["plan"];
  EXPECT_EQ(plan["cutFound"], true);
  EXPECT_EQ(Names(plan["reused"]), (std::vector<std::string>{"step-1", "step-2"})) << plan.dump();
  EXPECT_EQ(Names(plan["live"]), (std::vector<std::string>{"step-3", "step-4"})) << plan.dump();
  // The inherited cost is what the database recorded for the reused prefix.
  EXPECT_EQ(Num(plan["inheritedUSD"].get<std::string>()), Num(inherited)) << plan.dump();
  EXPECT_EQ(Num(plan["sourceLiveUSD"].get<std::string>()), Num(live)) << plan.dump();
  for (const auto& r : plan["reused"])
    EXPECT_EQ(Num(r["usd"].get<std::string>()),
              Num(CallsUsd(w(), uid, "'" + r["name"].get<std::string>() + "'")))
        << r.dump();

  // A bulk dry run: one plan per failed source; the failed step runs live.
  Result bulk = Plugin(w(), admin(), {"replay", "-l", "replay-suite=bulk", "--phase", "Failed", "--from", "step-2",
                                      "--dry-run", "-o", "json"});
  ASSERT_EQ(bulk.exit_code, 0) << bulk.err;
  json bd = json::parse(bulk.out);
  ASSERT_EQ(bd["items"].size(), 3u) << bd.dump();
  for (const auto& i : bd["items"]) {
    EXPECT_EQ(Names(i["plan"]["reused"]), std::vector<std::string>{"step-1"}) << i.dump();
    ASSERT_FALSE(i["plan"]["live"].empty()) << i.dump();
    EXPECT_EQ(i["plan"]["live"][0]["name"], "step-2") << i.dump();
    EXPECT_EQ(i["plan"]["live"][0]["status"], "failed") << i.dump();
    EXPECT_EQ(Num(i["plan"]["inheritedUSD"].get<std::string>()),
              Num(CallsUsd(w(), w().Uid(i["source"].get<std::string>()), "'step-1'")))
        << i.dump();
  }

  // Nothing was created, by either.
  EXPECT_EQ(CountFlowRuns(w()), before) << w().Kubectl({"get", "flowruns"}, true);
  EXPECT_EQ(Trim(w().Kubectl({"get", "flowruns", "-l", "flowrun.dev/replay-of", "-o", "name"}, true)), "");
}

// (a) A replay through the plugin, then the lineage diff.
TEST_F(PluginReplay, DiffShowsReusedVsRecomputedAndTheCostDeltaOfTheDatabase) {
  const std::string src_uid = w().Uid("rs");
  // New code from step 3 on: a changed prompt (other tokens, another cost).
  Result r = Plugin(w(), admin(), {"replay", "rs", "--from", "step-3", "--set-param", "live_prefix_from=3",
                                   "--set-param", "live_prefix=changed prompt"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "flowrun.flowrun.dev/rs-r1 created (replay of rs from step-3)\n");
  ASSERT_TRUE(w().WaitPhase("rs-r1", "Succeeded"));
  EXPECT_EQ(ReplayCondition(w(), "rs-r1"), "True Prepared");
  const std::string uid = w().Uid("rs-r1");
  EXPECT_EQ(w().Get("rs-r1", "{.metadata.labels.flowrun\\.dev/replay-of} {.spec.replay.from.uid}"), "rs " + src_uid);
  // The counting fake LLM saw the live tail only, with the new prompt.
  EXPECT_EQ(w().Psql("SELECT string_agg(checkpoint_name, ',' ORDER BY checkpoint_name) FROM flowrun.llm_calls "
                     "WHERE run_uid = '" + uid + "'"),
            "step-3,step-4");
  json stats = w().llm->Stats();
  EXPECT_EQ(CountPromptsStartingWith(stats, "changed prompt 3 of run " + uid), 1) << stats.dump();
  EXPECT_EQ(CountPromptsStartingWith(stats, "p-rs 1 of run " + uid), 0) << "step-1 was copied, not called";

  // The database's figures.
  const std::string src_spent = CallsUsd(w(), src_uid), spent = CallsUsd(w(), uid);
  const std::string inherited = CallsUsd(w(), src_uid, "'step-1', 'step-2'");
  const std::string src_tail = CallsUsd(w(), src_uid, "'step-3', 'step-4'");
  const std::string tail = CallsUsd(w(), uid, "'step-3', 'step-4'");
  auto minus = [&](const std::string& a, const std::string& b) {
    return w().Psql("SELECT round(" + a + "::numeric - " + b + "::numeric, 9)");
  };
  ASSERT_GT(Num(spent), 0);
  ASSERT_NE(Num(tail), Num(src_tail)) << "the changed prompt must cost something else";
  // The FlowRun's status carries the same figures (inheritedUsd: decimal text, exact).
  EXPECT_EQ(Num(w().Get("rs-r1", "{.status.replay.inheritedUsd}")), Num(inherited))
      << w().Get("rs-r1", "{.status.replay}");
  EXPECT_EQ(Num(w().Get("rs-r1", "{.status.cost.inheritedUsd}")), Num(inherited)) << w().Get("rs-r1", "{.status.cost}");
  // status.cost.usd is a JSON number rounded to 1e-9 USD (docs/flowrun-api.md), as the query rounds.
  EXPECT_NEAR(Num(w().Get("rs-r1", "{.status.cost.usd}")), Num(spent), 1e-12) << w().Get("rs-r1", "{.status.cost}");

  Result j = Plugin(w(), admin(), {"diff", "rs", "rs-r1", "-o", "json"});
  ASSERT_EQ(j.exit_code, 0) << j.err;
  json d = json::parse(j.out);
  EXPECT_EQ(Num(d["spentUSD"]["this"].get<std::string>()), Num(src_spent)) << d.dump();
  EXPECT_EQ(Num(d["spentUSD"]["other"].get<std::string>()), Num(spent)) << d.dump();
  EXPECT_EQ(Num(d["spentUSD"]["delta"].get<std::string>()), Num(minus(src_spent, spent))) << d.dump();
  EXPECT_EQ(Num(d["inheritedUSD"]["this"].get<std::string>()), 0) << d.dump();
  EXPECT_EQ(Num(d["inheritedUSD"]["other"].get<std::string>()), Num(inherited)) << d.dump();
  const json& l = d["lineage"];
  ASSERT_TRUE(l.is_object()) << d.dump();
  EXPECT_EQ(l["replay"], "other");
  EXPECT_EQ(l["replayName"], "rs-r1");
  EXPECT_EQ(l["sourceName"], "rs");
  EXPECT_EQ(l["cut"], json({{"checkpoint", "step-3"}, {"occurrence", 1}}));
  EXPECT_EQ(l["cutReached"], true);
  EXPECT_EQ(l["reusedCheckpoints"], 2);
  EXPECT_EQ(Num(l["inheritedUSD"].get<std::string>()), Num(inherited)) << l.dump();
  EXPECT_EQ(l["recomputedCheckpoints"], 2);
  EXPECT_EQ(Num(l["recomputedUSD"]["replay"].get<std::string>()), Num(tail)) << l.dump();
  EXPECT_EQ(Num(l["recomputedUSD"]["source"].get<std::string>()), Num(src_tail)) << l.dump();
  EXPECT_EQ(Num(l["recomputedUSD"]["delta"].get<std::string>()), Num(minus(tail, src_tail))) << l.dump();
  std::map<std::string, json> rows;
  for (const auto& c : d["checkpoints"]) rows[c["name"].get<std::string>()] = c;
  ASSERT_EQ(rows.size(), 4u) << d.dump();
  for (const std::string n : {"step-1", "step-2"}) {
    EXPECT_EQ(rows[n]["reuse"], "reused") << rows[n].dump();
    EXPECT_EQ(rows[n]["state"], "same") << rows[n].dump();
    EXPECT_EQ(rows[n]["other"]["copied"], true) << rows[n].dump();
    EXPECT_EQ(rows[n]["this"]["copied"], false) << rows[n].dump();
    // A copy carries the source's recorded cost (inherited), so no delta.
    EXPECT_EQ(Num(rows[n]["other"]["usd"].get<std::string>()), Num(CallsUsd(w(), src_uid, "'" + n + "'")));
    EXPECT_EQ(Num(rows[n]["usdDelta"].get<std::string>()), 0) << rows[n].dump();
  }
  for (const std::string n : {"step-3", "step-4"}) {
    EXPECT_EQ(rows[n]["reuse"], "recomputed") << rows[n].dump();
    EXPECT_EQ(rows[n]["state"], "changed") << rows[n].dump();
    EXPECT_EQ(rows[n]["other"]["copied"], false) << rows[n].dump();
    EXPECT_EQ(rows[n]["outputEqual"], false) << rows[n].dump();
    EXPECT_EQ(Num(rows[n]["usdDelta"].get<std::string>()),
              Num(minus(CallsUsd(w(), src_uid, "'" + n + "'"), CallsUsd(w(), uid, "'" + n + "'"))))
        << rows[n].dump();
  }

  // The table says the same for people; either order finds the lineage.
  Result t = Plugin(w(), admin(), {"diff", "rs", "rs-r1"});
  ASSERT_EQ(t.exit_code, 0) << t.err;
  EXPECT_TRUE(Contains(t.out, "rs vs rs-r1: spent ")) << t.out;
  EXPECT_TRUE(Contains(t.out, "inherited (copied from a source, not spent): $0 vs ")) << t.out;
  EXPECT_TRUE(Contains(t.out, "rs-r1 replays rs from step-3: reused 2 checkpoint(s), inherited ")) << t.out;
  EXPECT_TRUE(Contains(t.out, "; recomputed 2: ")) << t.out;
  EXPECT_TRUE(Contains(t.out, "(delta " + d["lineage"]["recomputedUSD"]["delta"].get<std::string>() + ")")) << t.out;
  EXPECT_TRUE(Contains(t.out, "REUSE")) << t.out;
  std::istringstream lines(t.out);
  std::map<std::string, std::string> line_of;
  for (std::string line; std::getline(lines, line);)
    if (line.rfind("step-", 0) == 0) line_of[line.substr(0, line.find(' '))] = line;
  ASSERT_EQ(line_of.size(), 4u) << t.out;
  for (const std::string n : {"step-1", "step-2"}) {
    EXPECT_TRUE(Contains(line_of[n], " reused ")) << line_of[n];
    EXPECT_TRUE(Contains(line_of[n], "(copied)")) << line_of[n];
  }
  for (const std::string n : {"step-3", "step-4"}) {
    EXPECT_TRUE(Contains(line_of[n], " recomputed ")) << line_of[n];
    EXPECT_FALSE(Contains(line_of[n], "(copied)")) << line_of[n];
  }
  Result back = Plugin(w(), admin(), {"diff", "rs-r1", "rs", "-o", "json"});
  ASSERT_EQ(back.exit_code, 0) << back.err;
  json bd = json::parse(back.out);
  EXPECT_EQ(bd["lineage"]["replay"], "this") << bd.dump();
  EXPECT_EQ(Num(bd["spentUSD"]["delta"].get<std::string>()), Num(minus(spent, src_spent))) << bd.dump();
  EXPECT_EQ(Num(bd["lineage"]["recomputedUSD"]["delta"].get<std::string>()), Num(minus(tail, src_tail)));
}

// A replay of a replay, through the plugin: the next free name, the direct
// source in the label, the copies of the first replay reused with the
// original recorded cost as inherited.
TEST_F(PluginReplay, AReplayOfAReplayReusesItsCopiesAtTheOriginalCost) {
  ASSERT_EQ(w().Get("rs-r1", "{.status.phase}"), "Succeeded") << "needs the replay of the diff test";
  Result dry = Plugin(w(), admin(), {"replay", "rs", "--from", "step-3", "--dry-run"});
  EXPECT_TRUE(Contains(dry.out, "would create FlowRun rs-r2 ")) << "the first free <source>-r<N>\n" << dry.out;

  Result r = Plugin(w(), admin(), {"replay", "rs-r1", "--from", "step-4", "-o", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json doc = json::parse(r.out);
  ASSERT_EQ(doc["items"].size(), 1u) << doc.dump();
  EXPECT_EQ(doc["items"][0]["name"], "rs-r1-r1");
  EXPECT_EQ(doc["items"][0]["source"], "rs-r1");
  EXPECT_EQ(doc["items"][0]["uid"], w().Uid("rs-r1-r1"));
  ASSERT_TRUE(w().WaitPhase("rs-r1-r1", "Succeeded"));
  EXPECT_EQ(ReplayCondition(w(), "rs-r1-r1"), "True Prepared");
  EXPECT_EQ(w().Get("rs-r1-r1", "{.metadata.labels.flowrun\\.dev/replay-of} {.status.replay.copiedCheckpoints}"),
            "rs-r1 3");
  const std::string src = w().Uid("rs"), mid = w().Uid("rs-r1"), uid = w().Uid("rs-r1-r1");
  // step-1 and 2 as rs recorded them (copied twice), step-3 as rs-r1 paid for it.
  const std::string inherited = w().Psql("SELECT round(((SELECT sum(cost_usd) FROM flowrun.llm_calls WHERE run_uid = '" +
                                         src + "' AND checkpoint_name IN ('step-1', 'step-2')) + (SELECT sum(cost_usd) "
                                         "FROM flowrun.llm_calls WHERE run_uid = '" + mid +
                                         "' AND checkpoint_name = 'step-3'))::numeric, 9)");
  EXPECT_EQ(Num(w().Get("rs-r1-r1", "{.status.replay.inheritedUsd}")), Num(inherited));
  EXPECT_EQ(w().Psql("SELECT string_agg(checkpoint_name, ',') FROM flowrun.llm_calls WHERE run_uid = '" + uid + "'"),
            "step-4");
  Result d = Plugin(w(), admin(), {"diff", "rs-r1", "rs-r1-r1", "-o", "json"});
  ASSERT_EQ(d.exit_code, 0) << d.err;
  json diff = json::parse(d.out);
  EXPECT_EQ(diff["lineage"]["sourceName"], "rs-r1") << diff.dump();
  EXPECT_EQ(diff["lineage"]["reusedCheckpoints"], 3) << diff.dump();
  EXPECT_EQ(diff["lineage"]["recomputedCheckpoints"], 1) << diff.dump();
  EXPECT_EQ(Num(diff["lineage"]["inheritedUSD"].get<std::string>()), Num(inherited)) << diff.dump();
  // rs and its grandchild are not one hop apart: the plain diff.
  Result far = Plugin(w(), admin(), {"diff", "rs", "rs-r1-r1", "-o", "json"});
  ASSERT_EQ(far.exit_code, 0) << far.err;
  EXPECT_TRUE(json::parse(far.out)["lineage"].is_null()) << far.out;
}

// (b) Three failed runs replayed at once, the broken step fixed by a parameter.
TEST_F(PluginReplay, BulkReplayOfThreeFailedRunsCreatesThreeLabelledFlowRuns) {
  const int before = CountFlowRuns(w());
  Result r = Plugin(w(), admin(), {"replay", "-l", "replay-suite=bulk", "--phase", "Failed", "--since", "1h", "--from",
                                   "step-2", "--set-param", "fail_at_step=0"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // "batch <id> (label flowrun.dev/replay-batch=<id>): 3 of 3 source(s)"
  ASSERT_EQ(r.out.rfind("batch ", 0), 0u) << r.out;
  const std::string batch = r.out.substr(6, r.out.find(' ', 6) - 6);
  ASSERT_FALSE(batch.empty()) << r.out;
  EXPECT_TRUE(Contains(r.out, "batch " + batch + " (label flowrun.dev/replay-batch=" + batch + "): 3 of 3 source(s)\n"))
      << r.out;
  for (const std::string n : {"bf-1", "bf-2", "bf-3"})
    EXPECT_TRUE(Contains(r.out, "flowrun.flowrun.dev/" + n + "-r1 created (replay of " + n + " from step-2)\n")) << r.out;
  EXPECT_TRUE(Contains(r.out, "follow them with: kubectl flowrun list -l flowrun.dev/replay-batch=" + batch)) << r.out;

  // Exactly three new FlowRuns, all in the batch; bok (Succeeded) and bother
  // (another label) have no replay.
  EXPECT_EQ(CountFlowRuns(w()), before + 3) << w().Kubectl({"get", "flowruns", "--show-labels"}, true);
  json list = json::parse(w().Kubectl({"get", "flowruns", "-l", "flowrun.dev/replay-batch=" + batch, "-o", "json"}));
  ASSERT_EQ(list["items"].size(), 3u) << list.dump();
  std::set<std::string> names;
  for (const auto& fr : list["items"]) {
    const std::string name = fr["metadata"]["name"];
    names.insert(name);
    const std::string source = name.substr(0, name.size() - 3);
    const json& labels = fr["metadata"]["labels"];
    EXPECT_EQ(labels.value("flowrun.dev/replay-of", ""), source) << labels.dump();
    EXPECT_EQ(labels.value("flowrun.dev/replay-batch", ""), batch) << labels.dump();
    EXPECT_EQ(labels.value("replay-suite", ""), "bulk") << "the source's own labels are kept";
    const json& from = fr["spec"]["replay"]["from"];
    EXPECT_EQ(from.value("run", ""), source) << from.dump();
    EXPECT_EQ(from.value("uid", ""), w().Uid(source)) << from.dump();
    EXPECT_EQ(from.value("checkpoint", ""), "step-2") << from.dump();
    EXPECT_EQ(fr["spec"]["parameters"]["fail_at_step"], 0) << fr["spec"].dump();
    EXPECT_FALSE(fr["metadata"].contains("ownerReferences"));
  }
  EXPECT_EQ(names, (std::set<std::string>{"bf-1-r1", "bf-2-r1", "bf-3-r1"}));
  EXPECT_EQ(Trim(w().Kubectl({"get", "flowruns", "-l", "flowrun.dev/replay-of in (bok,bother)", "-o", "name"}, true)),
            "");

  // Admitted: the controller prepared each (Replay Prepared), and the fix holds.
  for (const auto& n : names) {
    EXPECT_TRUE(Eventually([&] { return ReplayCondition(w(), n) == "True Prepared"; }, std::chrono::seconds(120)))
        << ReplayCondition(w(), n) << "\n" << w().Diagnostics(n);
    ASSERT_TRUE(w().WaitPhase(n, "Succeeded"));
    EXPECT_EQ(w().Get(n, "{.status.replay.copiedCheckpoints} {.status.replay.cutReached}"), "1 true");
  }
  // The printed follow-up command works and shows the lineage.
  Result follow = Plugin(w(), admin(), {"list", "-l", "flowrun.dev/replay-batch=" + batch, "-o", "wide"});
  ASSERT_EQ(follow.exit_code, 0) << follow.err;
  EXPECT_TRUE(Contains(follow.out, "REPLAY-OF")) << follow.out;
  for (const std::string n : {"bf-1", "bf-2", "bf-3"}) EXPECT_TRUE(Contains(follow.out, n + "-r1 ")) << follow.out;
}

// (d) Errors through the cluster: clear messages, non-zero exits, nothing created.
TEST_F(PluginReplay, ErrorsAreClearAndCreateNothing) {
  const int before = CountFlowRuns(w());
  Result missing = Plugin(w(), admin(), {"replay", "no-such-run", "--from", "step-1"});
  EXPECT_EQ(missing.exit_code, 3) << missing.err;
  EXPECT_TRUE(Contains(missing.err, "FlowRun no-such-run not found in namespace default")) << missing.err;
  Result missing_dry = Plugin(w(), admin(), {"replay", "no-such-run", "--from", "step-1", "--dry-run"});
  EXPECT_EQ(missing_dry.exit_code, 3) << missing_dry.err;

  Result none = Plugin(w(), admin(), {"replay", "-l", "replay-suite=nothing-here", "--from", "step-1"});
  EXPECT_EQ(none.exit_code, 3) << none.err;
  EXPECT_TRUE(Contains(none.err, "no FlowRun in namespace default matches -l replay-suite=nothing-here; nothing replayed"))
      << none.err;
  EXPECT_EQ(none.out, "");
  // The selector matches, the phase does not.
  Result phase = Plugin(w(), admin(), {"replay", "-l", "replay-suite=other", "--phase", "Succeeded", "--from", "step-1"});
  EXPECT_EQ(phase.exit_code, 3) << phase.err;
  EXPECT_TRUE(Contains(phase.err, "matches -l replay-suite=other --phase Succeeded; nothing replayed")) << phase.err;

  // A phase in another case is the CRD's phase; a phase that is none is a usage error, not an empty selection.
  Result lower = Plugin(w(), admin(), {"replay", "-l", "replay-suite=bulk", "--phase", "failed", "--from", "step-2",
                                       "--dry-run", "-o", "json"});
  ASSERT_EQ(lower.exit_code, 0) << lower.err;
  EXPECT_EQ(json::parse(lower.out)["items"].size(), 3u) << lower.out;
  Result typo = Plugin(w(), admin(), {"replay", "-l", "replay-suite=bulk", "--phase", "Faild", "--from", "step-2"});
  EXPECT_EQ(typo.exit_code, 2) << typo.err;
  EXPECT_TRUE(Contains(typo.err, "--phase takes a FlowRun phase (Pending, Running, Waiting, Resuming, Succeeded, "
                                 "Failed, BudgetExceeded, Cancelled), not 'Faild'"))
      << typo.err;

  // A user who may read FlowRuns but not create them: refused by RBAC, told what is missing.
  w().Kubectl({"create", "role", "replay-reader", "--verb=get,list", "--resource=flowruns"});
  w().Kubectl({"create", "rolebinding", "replay-reader", "--role=replay-reader", "--user=rita"});
  std::string rita = w().cluster->MintUser("rita");
  Result denied = Plugin(w(), rita, {"replay", "rs", "--from", "step-3"});
  EXPECT_EQ(denied.exit_code, 4) << denied.err;
  EXPECT_TRUE(Contains(denied.err, "creating a replay needs 'create' on flowruns.flowrun.dev")) << denied.err;

  // Usage errors need no cluster.
  EXPECT_EQ(Plugin(w(), admin(), {"replay", "rs"}).exit_code, 2) << "--from is required";
  EXPECT_EQ(Plugin(w(), admin(), {"replay", "rs", "-l", "a=b", "--from", "x"}).exit_code, 2);
  EXPECT_EQ(CountFlowRuns(w()), before) << w().Kubectl({"get", "flowruns"}, true);
}

}  // namespace
}  // namespace flowrun::testing
