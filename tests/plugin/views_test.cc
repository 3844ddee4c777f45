// list, status and the read-API views over the JSON the apiserver and the
// read API answer (the shapes of docs/flowrun-api.md and docs/read-api.md).
#include <gtest/gtest.h>

#include "flowrun/plugin/inbox.h"
#include "flowrun/plugin/read_views.h"
#include "flowrun/plugin/status_screen.h"
#include "flowrun/rfc3339.h"

namespace flowrun::plugin {
namespace {

using nlohmann::json;

const TimePoint kNow = *ParseTime("2026-12-03T12:00:00Z");

json FlowRun(const std::string& ns, const std::string& name, const std::string& phase, json wait = nullptr) {
  json fr = {{"metadata", {{"name", name}, {"namespace", ns}, {"creationTimestamp", "2026-12-03T11:00:00Z"}}},
             {"spec", {{"flow", "research"}, {"budgetUSD", 1.0}}},
             {"status", {{"phase", phase}, {"attempt", 1}, {"cost", {{"usd", 0.0123}, {"display", "$0.012"}}}}}};
  if (!wait.is_null()) fr["status"]["wait"] = wait;
  return fr;
}

json Wait(const std::string& name, const std::string& asked, const std::string& deadline = "") {
  json w = {{"name", name}, {"question", "Proceed\nto analysis?"}, {"schema", {{"type", "boolean"}}}, {"askedAt", asked},
            {"onTimeout", "fail"}};
  if (!deadline.empty()) w["deadline"] = deadline;
  return w;
}

TEST(List, EveryRunWithWhatItWaitsFor) {
  std::vector<json> runs = {FlowRun("a", "zeta", "Running"), FlowRun("a", "alpha", "Waiting", Wait("proceed", "2026-12-03T11:50:00Z"))};
  ListOptions o;
  json rows = ListRows(runs, o);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0]["name"], "alpha");  // sorted by namespace, name
  EXPECT_EQ(RenderList(rows, o, kNow),
            "NAME    PHASE     ATTEMPT   COST     WAITING-FOR   AGE\n"
            "alpha   Waiting   1         $0.012   proceed       60m\n"
            "zeta    Running   1         $0.012                 60m\n");
}

TEST(List, TheInboxSortsByDeadlineAndSaysWhoMayAnswer) {
  json gated = FlowRun("b", "gated", "Waiting", Wait("go", "2026-12-03T11:00:00Z", "2026-12-03T13:00:00Z"));
  gated["spec"]["approvers"] = {{"users", {"alice"}}};
  std::vector<json> runs = {FlowRun("a", "late", "Waiting", Wait("proceed", "2026-12-03T11:58:00Z")), gated,
                            FlowRun("a", "busy", "Running")};
  ListOptions o{.waiting_only = true, .all_namespaces = true};
  json rows = ListRows(runs, o);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0]["name"], "gated");  // a deadline sorts before none
  EXPECT_EQ(rows[0]["whoMayAnswer"], "alice");
  EXPECT_EQ(rows[0]["wait"]["schema"], json({{"type", "boolean"}}));
  EXPECT_EQ(RenderList(rows, o, kNow),
            "NAMESPACE   NAME    WAIT      QUESTION               ASKED   DEADLINE   WHO MAY ANSWER\n"
            "b           gated   go        Proceed to analysis?   60m     in 60m     alice\n"
            "a           late    proceed   Proceed to analysis?   2m      none       anyone RBAC allows to patch flowruns/status\n");
  EXPECT_EQ(RenderListRow(FlowRun("a", "busy", "Running"), o, kNow), "");
  EXPECT_NE(RenderListRow(gated, o, kNow).find("gated"), std::string::npos);
}

json WaitingRun() {
  json fr = FlowRun("team-a", "research-1", "Waiting", Wait("proceed", "2026-12-03T11:55:00Z", "2026-12-04T11:55:00Z"));
  fr["status"]["message"] = "waiting for an answer to 'proceed'";
  fr["status"]["cost"] = {{"usd", 0.0123}, {"display", "$0.012"}, {"savedUSD", 0.004}, {"llmCalls", 2},
                          {"inputTokens", 100}, {"outputTokens", 20}, {"cachedTokens", 0}};
  fr["status"]["checkpoints"] = {{"live", 1}, {"cached", 0}, {"completed", 1}};
  fr["status"]["attempts"] = json::array({{{"attempt", 1}, {"job", "research-1-a1"}, {"startTime", "2026-12-03T11:54:00Z"},
                                           {"endTime", "2026-12-03T11:55:00Z"}, {"outcome", "waiting"},
                                           {"reason", "WaitingForAnswer"}, {"message", "proceed"}}});
  fr["status"]["conditions"] = json::array({{{"type", "Completed"}, {"status", "False"}, {"reason", "WaitingForAnswer"},
                                             {"message", "waiting"}, {"lastTransitionTime", "2026-12-03T11:55:00Z"}}});
  return fr;
}

TEST(Status, OneScreenWithoutTheReadApi) {
  StatusInput in;
  in.flowrun = WaitingRun();
  in.summary_note = "read API unavailable";
  in.events = {{{"type", "Normal"}, {"reason", "Waiting"}, {"message", "waiting for 'proceed'"},
                {"lastTimestamp", "2026-12-03T11:55:00Z"}},
               {{"type", "Normal"}, {"reason", "Started"}, {"message", "attempt 1"}, {"lastTimestamp", "2026-12-03T11:54:00Z"},
                {"count", 2}}};
  std::string s = RenderStatus(in, kNow, false);
  EXPECT_NE(s.find("Phase:       Waiting — waiting for an answer to 'proceed'"), std::string::npos) << s;
  EXPECT_NE(s.find("Cost:        spent $0.012 (0.0123), saved by the cache $0.0040, budget $1.00 (1% used)"), std::string::npos) << s;
  EXPECT_NE(s.find("Top call:    unknown (read API unavailable)"), std::string::npos) << s;
  EXPECT_NE(s.find("Open wait:   proceed"), std::string::npos) << s;
  EXPECT_NE(s.find("  Answer:    boolean"), std::string::npos) << s;
  EXPECT_NE(s.find("deadline in 23h"), std::string::npos) << s;
  EXPECT_NE(s.find("  Answer it: kubectl flowrun answer research-1 proceed true"), std::string::npos) << s;
  EXPECT_NE(s.find("research-1-a1   waiting   WaitingForAnswer"), std::string::npos) << s;
  EXPECT_NE(s.find("Conditions:"), std::string::npos) << s;
  // Events oldest first, counts shown.
  auto started = s.find("Started"), waiting = s.find("waiting for 'proceed'");
  ASSERT_NE(started, std::string::npos);
  EXPECT_LT(started, waiting);
  EXPECT_NE(s.find("attempt 1 (x2)"), std::string::npos) << s;
  json doc = StatusDocument(in, 1);
  EXPECT_EQ(doc["events"].size(), 1u);
  EXPECT_EQ(doc["events"][0]["reason"], "Waiting");
}

TEST(Status, TheSummaryGivesExactTotalsAndTheTopCall) {
  StatusInput in;
  in.flowrun = WaitingRun();
  in.summary = json::parse(R"({"kind":"FlowRunSummary","totals":{"spentUSD":"0.01230000","savedUSD":"0.0041","budgetUSD":"1.00"},
    "mostExpensiveCall":{"epoch":1,"seq":4,"model":"gpt-4o","checkpoint":"analyze","occurrence":1,"usd":"0.0051"}})");
  std::string s = RenderStatus(in, kNow, false);
  EXPECT_NE(s.find("spent $0.012 (0.01230000), saved by the cache $0.0041"), std::string::npos) << s;
  EXPECT_NE(s.find("Top call:    gpt-4o in analyze: $0.0051"), std::string::npos) << s;
  // Without a summary, status.cost.topCalls (when the controller writes it) answers.
  StatusInput plain;
  plain.flowrun = WaitingRun();
  plain.flowrun["status"]["cost"]["topCalls"] = json::parse(
      R"([{"model":"gpt-4o-mini","checkpoint":"research","occurrence":2,"usd":"0.002","inputTokens":10,"outputTokens":5}])");
  EXPECT_EQ(MostExpensiveCall(plain), "gpt-4o-mini in research#2: $0.0020 (10 tokens in, 5 out)");
}

TEST(Status, AnObjectWaitsExampleNamesItsProperties) {
  StatusInput in;
  in.flowrun = WaitingRun();
  in.flowrun["status"]["wait"]["schema"] = {{"type", "object"},
                                            {"properties", {{"approve", {{"type", "boolean"}}}, {"score", {{"type", "integer"}}}}}};
  std::string s = RenderStatus(in, kNow, false);
  EXPECT_NE(s.find("answer research-1 proceed approve=true score=1"), std::string::npos) << s;
  in.flowrun["status"]["answers"] = {{"proceed", {{"approve", true}}}};
  s = RenderStatus(in, kNow, false);
  EXPECT_NE(s.find("Note:      FlowRun research-1: 'proceed' was already answered"), std::string::npos) << s;
}

// The read API's documented examples (docs/read-api.md).
TEST(ReadViews, Checkpoints) {
  json list = json::parse(R"({"apiVersion":"query.flowrun.dev/v1alpha1","kind":"FlowRunCheckpointList",
   "metadata":{"name":"research-1","namespace":"team-a","uid":"u","continue":"abc"},
   "items":[{"name":"research","occurrence":1,"kind":"step","status":"completed","origin":"cached","attempt":1,"epoch":1,
     "starts":1,"reexecutions":0,"startedAt":"2026-12-03T11:50:00.123456Z","finishedAt":"2026-12-03T11:50:01.655956Z",
     "durationMs":1532.5,"llmCalls":3,"inputTokens":1200,"outputTokens":300,"cachedTokens":0,"usd":"0.0031","unpricedCalls":0,"error":""},
    {"name":"iterate","occurrence":2,"kind":"step","status":"failed","origin":"live","attempt":2,"durationMs":12.0,
     "llmCalls":0,"inputTokens":0,"outputTokens":0,"usd":"0.00","error":"boom"}]})");
  std::string t = RenderCheckpoints(list, false, kNow);
  EXPECT_EQ(t,
            "CHECKPOINT   KIND   STATUS      ORIGIN   ATTEMPT   TOOK   CALLS   TOKENS IN/OUT   USD\n"
            "research     step   completed   cached   1         1.5s   3       1200/300        $0.0031\n"
            "iterate#2    step   failed      live     2         12ms   0       0/0             $0\n"
            "(more rows exist: use --limit or --all)\n");
  EXPECT_NE(RenderCheckpoints(list, true, kNow).find("boom"), std::string::npos);
  EXPECT_EQ(RenderCheckpoints(json::parse(R"({"items":[]})"), false, kNow), "no checkpoints recorded\n");
}

TEST(ReadViews, CostsByModelCheckpointAndCall) {
  json costs = json::parse(R"({"kind":"FlowRunCosts","spentUSD":"0.0123","savedUSD":"0.0041","budgetUSD":"1.00","llmCalls":12,
   "unpricedCalls":1,
   "byModel":[{"model":"gpt-4o","llmCalls":8,"inputTokens":4000,"outputTokens":700,"cachedTokens":0,"usd":"0.0101","unpricedCalls":0},
              {"model":"gpt-4o-mini","llmCalls":4,"inputTokens":100,"outputTokens":50,"cachedTokens":10,"usd":"0.0022","unpricedCalls":0}],
   "byCheckpoint":[{"checkpoint":"analyze","occurrence":1,"llmCalls":2,"inputTokens":2000,"outputTokens":400,"cachedTokens":0,
                    "usd":"0.0070","unpricedCalls":0},
                   {"checkpoint":null,"occurrence":null,"llmCalls":1,"inputTokens":5,"outputTokens":5,"cachedTokens":0,
                    "usd":"0.0001","unpricedCalls":0}],
   "byCheckpointTruncated":true})");
  json calls = json::parse(R"({"kind":"FlowRunCallList","items":[
    {"epoch":1,"seq":4,"attempt":1,"model":"gpt-4o","checkpoint":"analyze","occurrence":1,"inputTokens":1000,"outputTokens":200,
     "cachedTokens":0,"usd":"0.0051","latencyMs":812.0,"priceSource":"table","at":"2026-12-03T11:50:00Z"}]})");
  std::string all = RenderCosts(costs, calls, CostsBy::kAll, 0, false);
  EXPECT_NE(all.find("Spent $0.012 (0.0123) in 12 LLM calls, 1 without a price (not counted); saved by the cache $0.0041; budget $1.00"),
            std::string::npos) << all;
  EXPECT_NE(all.find("gpt-4o        8       4000"), std::string::npos) << all;
  EXPECT_NE(all.find("(outside checkpoints)"), std::string::npos) << all;
  EXPECT_NE(all.find("(more checkpoints exist: raise --top)"), std::string::npos) << all;
  EXPECT_NE(all.find("Most expensive calls:\n#   MODEL    CHECKPOINT"), std::string::npos) << all;
  EXPECT_NE(all.find("1   gpt-4o   analyze      1         1000        200          0        $0.0051   812ms"), std::string::npos) << all;
  std::string model = RenderCosts(costs, nullptr, CostsBy::kModel, 1, false);
  EXPECT_EQ(model.find("gpt-4o-mini"), std::string::npos) << model;  // --top 1
  EXPECT_EQ(model.find("By checkpoint"), std::string::npos);
  EXPECT_NE(RenderCosts(costs, nullptr, CostsBy::kModel, 0, true).find("0.0101"), std::string::npos);
  EXPECT_EQ(*ParseCostsBy("call"), CostsBy::kCall);
  EXPECT_FALSE(ParseCostsBy("tokens").has_value());
}

TEST(ReadViews, Artifacts) {
  json list = json::parse(R"({"kind":"FlowRunArtifactList","items":[{"name":"report.md","version":2,"contentType":"text/markdown",
    "sizeBytes":1830,"sha256":"9f86d0","checkpoint":"write","epoch":2,"createdAt":"2026-12-03T11:00:00Z"}]})");
  EXPECT_EQ(RenderArtifacts(list, false, kNow),
            "NAME        VERSION   CONTENT TYPE    SIZE      CHECKPOINT   CREATED\n"
            "report.md   2         text/markdown   1.8 KiB   write        60m ago\n");
  EXPECT_NE(RenderArtifacts(list, true, kNow).find("9f86d0"), std::string::npos);
  EXPECT_EQ(FormatBytes(532), "532 B");
  EXPECT_EQ(FormatBytes(3 * 1048576 + 209715), "3.2 MiB");
}

TEST(ReadViews, DiffListsWhatChangedAndCountsTheSame) {
  json diff = json::parse(R"({"kind":"FlowRunDiff","metadata":{"name":"run-47","namespace":"team-a","uid":"u"},
   "other":{"name":"run-46","uid":"v"},"spentUSD":{"this":"0.0123","other":"0.0200","delta":"-0.0077"},
   "checkpoints":[
     {"name":"analyze","occurrence":1,"state":"changed","this":{"status":"completed","usd":"0.0070"},
      "other":{"status":"completed","usd":"0.0100"},"outputEqual":false,"usdDelta":"-0.0030"},
     {"name":"research","occurrence":1,"state":"same","this":{"status":"completed","usd":"0.0010"},
      "other":{"status":"completed","usd":"0.0010"},"outputEqual":true,"usdDelta":"0.00"},
     {"name":"extra","occurrence":1,"state":"onlyInThis","this":{"status":"completed","usd":"0.0001"},"other":null,
      "outputEqual":null,"usdDelta":"0.0001"}],
   "truncated":false,
   "artifacts":[{"name":"report.md","state":"same","thisVersion":2,"otherVersion":1,"thisSha256":"9f","otherSha256":"9f"}],
   "artifactsTruncated":false})");
  std::string d = RenderDiff(diff, false);
  EXPECT_NE(d.find("run-47 vs run-46: spent $0.012 vs $0.020 (delta -0.0077)"), std::string::npos) << d;
  EXPECT_NE(d.find("analyze      changed      completed $0.0070    completed $0.010   differs   -0.0030"), std::string::npos) << d;
  EXPECT_NE(d.find("extra        onlyInThis   completed $0.00010   -                  -         0.0001"), std::string::npos) << d;
  EXPECT_EQ(d.find("research "), std::string::npos) << d;
  EXPECT_NE(d.find("(1 checkpoint the same; -o wide lists them)"), std::string::npos) << d;
  EXPECT_NE(d.find("report.md   same    2              1"), std::string::npos) << d;
  EXPECT_NE(RenderDiff(diff, true).find("research"), std::string::npos);
}

TEST(ReadViews, DiffOfAReplayMarksReusedAndRecomputed) {
  json diff = json::parse(R"({"kind":"FlowRunDiff","metadata":{"name":"research-1"},
   "other":{"name":"research-1-r1"},"spentUSD":{"this":"0.50","other":"0.125","delta":"0.375"},
   "inheritedUSD":{"this":"0.00","other":"0.25"},
   "lineage":{"replay":"other","replayName":"research-1-r1","sourceName":"research-1",
              "cut":{"checkpoint":"analyze","occurrence":1},"cutReached":true,"reusedCheckpoints":1,
              "inheritedUSD":"0.25","recomputedCheckpoints":1,
              "recomputedUSD":{"replay":"0.125","source":"0.25","delta":"-0.125"}},
   "checkpoints":[
     {"name":"analyze","occurrence":1,"state":"changed","reuse":"recomputed",
      "this":{"status":"completed","usd":"0.25","copied":false},"other":{"status":"completed","usd":"0.125","copied":false},
      "outputEqual":false,"usdDelta":"0.125"},
     {"name":"research","occurrence":1,"state":"same","reuse":"reused",
      "this":{"status":"completed","usd":"0.25","copied":false},"other":{"status":"completed","usd":"0.25","copied":true},
      "outputEqual":true,"usdDelta":"0.00"}],
   "truncated":false,"artifacts":[],"artifactsTruncated":false})");
  std::string d = RenderDiff(diff, false);
  EXPECT_NE(d.find("inherited (copied from a source, not spent): $0 vs $0.25\n"), std::string::npos) << d;
  EXPECT_NE(d.find("research-1-r1 replays research-1 from analyze: reused 1 checkpoint(s), inherited $0.25; "
                   "recomputed 1: $0.12 now vs $0.25 in the source (delta -0.125)\n"), std::string::npos) << d;
  EXPECT_NE(d.find("CHECKPOINT   STATE     REUSE        THIS              OTHER"), std::string::npos) << d;
  EXPECT_NE(d.find("analyze      changed   recomputed   completed $0.25   completed $0.12   "), std::string::npos) << d;
  // A reused checkpoint is listed even though it is the same, marked copied.
  EXPECT_NE(d.find("research     same      reused       completed $0.25   completed $0.25 (copied)   equal"),
            std::string::npos) << d;
}

TEST(Status, AReplayShowsItsLineageAndInheritedCost) {
  StatusInput in;
  in.flowrun = FlowRun("a", "research-1-r1", "Running");
  in.flowrun["spec"]["replay"] = {{"from", {{"run", "research-1"}, {"checkpoint", "analyze"}}}};
  std::string before = RenderStatus(in, kNow, false, 0);
  EXPECT_NE(before.find("Replay of:   research-1 from analyze (not prepared yet)\n"), std::string::npos) << before;
  in.summary = json::parse(R"({"totals":{"spentUSD":"0.125","savedUSD":"0.00","inheritedUSD":"0.25"},
    "replay":{"sourceName":"research-1","cut":{"checkpoint":"analyze","occurrence":2},"copiedCheckpoints":3,
              "inheritedUSD":"0.25","cutReached":true}})");
  std::string s = RenderStatus(in, kNow, false, 0);
  EXPECT_NE(s.find("Replay of:   research-1 from analyze#2: 3 checkpoint(s) copied, inherited $0.25, cut reached\n"),
            std::string::npos) << s;
  EXPECT_NE(s.find("inherited $0.25 (copied from the source, not spent)"), std::string::npos) << s;
}

TEST(List, WideShowsWhatARunReplays) {
  json fr = FlowRun("a", "research-1-r1", "Running");
  fr["metadata"]["labels"] = {{"flowrun.dev/replay-of", "research-1"}};
  ListOptions o;
  o.wide = true;
  json rows = ListRows({fr}, o);
  EXPECT_EQ(rows[0]["replayOf"], "research-1");
  std::string t = RenderList(rows, o, kNow);
  EXPECT_NE(t.find("REPLAY-OF"), std::string::npos) << t;
  EXPECT_NE(t.find("research-1\n"), std::string::npos) << t;
}

}  // namespace
}  // namespace flowrun::plugin
