// kubectl flowrun replay's pure core: --output/--answer values
// (json_value.h), the new FlowRun, its name and the bulk selection
// (replay_flowrun.h), and the dry-run plan (replay_plan.h).
#include <gtest/gtest.h>

#include "flowrun/plugin/json_value.h"
#include "flowrun/plugin/replay_flowrun.h"
#include "flowrun/plugin/replay_plan.h"
#include "flowrun/rfc3339.h"

namespace flowrun::plugin {
namespace {

using nlohmann::json;

const TimePoint kNow = *ParseTime("2026-12-03T12:00:00Z");

ReadFileFn Files(std::map<std::string, std::string> files) {
  return [files](const std::string& path) -> StatusOr<std::string> {
    auto it = files.find(path);
    if (it == files.end()) return NotFound("cannot read " + path);
    return it->second;
  };
}

TEST(ReplayValues, JsonInlineOrFromAFile) {
  auto f = Files({{"notes.json", "{\"text\": \"edited\"}\n"}});
  auto a = ParseNamedJson("proceed=true", "--answer", f);
  ASSERT_TRUE(a.ok()) << a.status().message();
  EXPECT_EQ(a->first, "proceed");
  EXPECT_EQ(a->second, json(true));
  auto s = ParseNamedJson("research=\"edited notes\"", "--output", f);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->second, json("edited notes"));
  auto file = ParseNamedJson("research=@notes.json", "--output", f);
  ASSERT_TRUE(file.ok()) << file.status().message();
  EXPECT_EQ(file->second, json({{"text", "edited"}}));
  // The value may itself contain '=': only the first one splits.
  auto eq = ParseNamedJson("k=\"a=b\"", "--output", f);
  ASSERT_TRUE(eq.ok());
  EXPECT_EQ(eq->second, json("a=b"));
}

TEST(ReplayValues, ABareWordIsRefusedWithTheQuotesToUse) {
  auto f = Files({{"bad.json", "{not json"}});
  auto w = ParseNamedJson("research=edited", "--output", f);
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(w.status().message().find("--output research: 'edited' is not JSON"), std::string::npos) << w.status().message();
  EXPECT_NE(w.status().message().find("'\"edited\"'"), std::string::npos) << w.status().message();
  auto bad = ParseNamedJson("research=@bad.json", "--output", f);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("(bad.json)"), std::string::npos) << bad.status().message();
  EXPECT_EQ(ParseNamedJson("research=@missing.json", "--output", f).status().code(), StatusCode::kNotFound);
  EXPECT_FALSE(ParseNamedJson("research", "--output", f).ok());
  EXPECT_FALSE(ParseNamedJson("=1", "--output", f).ok());
  EXPECT_FALSE(ParseNamedJson("k=@", "--output", f).ok());
}

TEST(ReplayOptions, CutRequiredAndValuesCapped) {
  ReplaySpecOptions o;
  EXPECT_FALSE(ValidateReplayOptions(o).ok());
  o.checkpoint = "analyze";
  EXPECT_TRUE(ValidateReplayOptions(o).ok());
  o.outputs["research"] = std::string(kMaxReplayValueBytes - 2, 'x');  // plus two quotes: exactly the cap
  EXPECT_TRUE(ValidateReplayOptions(o).ok());
  o.outputs["research"] = std::string(kMaxReplayValueBytes - 1, 'x');
  Status s = ValidateReplayOptions(o);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("--output research: 262145 bytes"), std::string::npos) << s.message();
  o.outputs.clear();
  o.answers["proceed"] = std::string(kMaxReplayValueBytes, 'y');
  EXPECT_NE(ValidateReplayOptions(o).message().find("--answer proceed"), std::string::npos);
}

json Source() {
  return json::parse(R"({
    "apiVersion": "flowrun.dev/v1alpha1", "kind": "FlowRun",
    "metadata": {"name": "research-1", "namespace": "team-a", "uid": "u-123", "resourceVersion": "77",
                 "creationTimestamp": "2026-12-03T10:00:00Z",
                 "labels": {"flowrun.dev/flow": "research", "team": "a", "flowrun.dev/replay-batch": "old"},
                 "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
    "spec": {"template": {"image": "flowrun/research-agent:0.1.0", "env": [{"name": "X", "value": "1"}]},
             "parameters": {"topic": "cats", "depth": {"max": 2}}, "flow": "research", "budgetUSD": 1.5,
             "database": {"secretRef": {"name": "flowrun-db"}}, "cancel": true, "approvers": ["alice"]},
    "status": {"phase": "Failed", "attempt": 2}})");
}

TEST(ReplayFlowRun, TheSourceSpecWithTheReplayAndItsLineage) {
  ReplaySpecOptions o;
  o.checkpoint = "analyze";
  o.image = "flowrun/research-agent:0.2.0";
  o.set_params = {"topic=dogs", "depth.max=5", "fresh=true"};
  o.outputs["research"] = "edited notes";
  o.answers["proceed"] = true;
  auto fr = BuildReplayFlowRun(Source(), o, "research-1-r1");
  ASSERT_TRUE(fr.ok()) << fr.status().message();
  const json& spec = (*fr)["spec"];
  EXPECT_EQ(spec["template"]["image"], "flowrun/research-agent:0.2.0");
  EXPECT_EQ(spec["template"]["env"][0]["name"], "X");
  EXPECT_EQ(spec["parameters"], json({{"topic", "dogs"}, {"depth", {{"max", 5}}}, {"fresh", true}}));
  EXPECT_EQ(spec["budgetUSD"], 1.5);
  EXPECT_EQ(spec["database"]["secretRef"]["name"], "flowrun-db");
  EXPECT_EQ(spec["approvers"], json({"alice"}));
  EXPECT_FALSE(spec.contains("cancel"));
  EXPECT_EQ(spec["replay"], json::parse(R"({"from": {"run": "research-1", "checkpoint": "analyze", "uid": "u-123"},
                                            "outputs": {"research": "edited notes"}, "answers": {"proceed": true}})"));
  const json& meta = (*fr)["metadata"];
  EXPECT_EQ(meta["name"], "research-1-r1");
  EXPECT_EQ(meta["namespace"], "team-a");
  EXPECT_EQ(meta["labels"], json({{"flowrun.dev/flow", "research"}, {"team", "a"}, {"flowrun.dev/replay-of", "research-1"}}));
  EXPECT_FALSE(meta.contains("annotations"));
  EXPECT_FALSE(meta.contains("uid"));
  EXPECT_FALSE(meta.contains("resourceVersion"));
  EXPECT_FALSE(meta.contains("ownerReferences"));  // deleting the source never deletes the replay
  EXPECT_FALSE(fr->contains("status"));
}

TEST(ReplayFlowRun, OccurrenceBatchAndAReplayOfAReplay) {
  json src = Source();
  src["spec"]["replay"] = {{"from", {{"run", "research-0"}, {"checkpoint", "x"}}}};
  src["metadata"]["labels"]["flowrun.dev/replay-of"] = "research-0";
  ReplaySpecOptions o;
  o.checkpoint = "analyze";
  o.occurrence = 3;
  o.batch = "20261203-120000-abcd";
  auto fr = BuildReplayFlowRun(src, o, "research-1-r2");
  ASSERT_TRUE(fr.ok());
  EXPECT_EQ((*fr)["spec"]["replay"]["from"],
            json({{"run", "research-1"}, {"checkpoint", "analyze"}, {"uid", "u-123"}, {"occurrence", 3}}));
  EXPECT_FALSE((*fr)["spec"]["replay"].contains("outputs"));
  EXPECT_EQ((*fr)["spec"]["parameters"], src["spec"]["parameters"]);
  EXPECT_EQ((*fr)["spec"]["template"]["image"], "flowrun/research-agent:0.1.0");
  EXPECT_EQ((*fr)["metadata"]["labels"]["flowrun.dev/replay-of"], "research-1");  // the direct source
  EXPECT_EQ((*fr)["metadata"]["labels"]["flowrun.dev/replay-batch"], "20261203-120000-abcd");
}

TEST(ReplayFlowRun, BadParamsAndSourcesAreRefused) {
  ReplaySpecOptions o;
  o.checkpoint = "analyze";
  o.set_params = {"novalue"};
  auto bad = BuildReplayFlowRun(Source(), o, "n");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("--set-param"), std::string::npos) << bad.status().message();
  o.set_params = {"topic.sub=1"};  // "cats" is a string: nothing can be set inside it
  EXPECT_FALSE(BuildReplayFlowRun(Source(), o, "n").ok());
  o.set_params.clear();
  json no_uid = Source();
  no_uid["metadata"].erase("uid");
  EXPECT_FALSE(BuildReplayFlowRun(no_uid, o, "n").ok());
}

TEST(ReplayName, FirstFreeNumber) {
  EXPECT_EQ(ReplayName("research-1", 1), "research-1-r1");
  EXPECT_EQ(FirstFreeReplayNumber("research-1", {}), 1);
  EXPECT_EQ(FirstFreeReplayNumber("research-1", {"research-1", "research-1-r1", "research-1-r2", "research-1-r4"}), 3);
  // After an AlreadyExists on N, the next try starts above N.
  EXPECT_EQ(FirstFreeReplayNumber("research-1", {"research-1-r1", "research-1-r4"}, 4), 5);
}

TEST(ReplayBulk, SinceParsesDurations) {
  EXPECT_EQ(ParseSince("2h")->count(), 7200);
  EXPECT_EQ(ParseSince("1h30m")->count(), 5400);
  EXPECT_EQ(ParseSince("90s")->count(), 90);
  EXPECT_EQ(ParseSince("1d")->count(), 86400);
  for (const char* bad : {"", "2", "h", "2x", "-1h", "0s", "1.5h"}) EXPECT_FALSE(ParseSince(bad).has_value()) << bad;
}

json FlowRunAt(const std::string& name, const std::string& phase, const std::string& created, const std::string& ended = "") {
  json fr = {{"metadata", {{"name", name}, {"creationTimestamp", created}}}, {"status", {{"phase", phase}}}};
  if (!ended.empty()) fr["status"]["attempts"] = json::array({{{"attempt", 1}, {"endTime", ended}}});
  return fr;
}

TEST(ReplayBulk, PhaseAndSinceSelectTheSources) {
  std::vector<json> items = {FlowRunAt("c", "Failed", "2026-12-03T11:00:00Z"), FlowRunAt("a", "Failed", "2026-12-01T00:00:00Z"),
                             FlowRunAt("b", "Failed", "2026-12-01T00:00:00Z", "2026-12-03T10:30:00Z"),
                             FlowRunAt("d", "Succeeded", "2026-12-03T11:30:00Z")};
  auto names = [](const std::vector<json>& v) {
    std::string s;
    for (const auto& fr : v) s += fr["metadata"]["name"].get<std::string>();
    return s;
  };
  EXPECT_EQ(names(SelectSources(items, {}, kNow)), "abcd");
  EXPECT_EQ(names(SelectSources(items, {"Failed", std::nullopt}, kNow)), "abc");
  // b was created long ago but finished 90 minutes ago.
  EXPECT_EQ(names(SelectSources(items, {"Failed", std::chrono::hours(2)}, kNow)), "bc");
  EXPECT_EQ(names(SelectSources(items, {"", std::chrono::minutes(45)}, kNow)), "d");
}

TEST(ReplayBulk, PhaseIsOneOfTheCrdsWhateverItsCase) {
  EXPECT_EQ(CanonicalPhase("Failed"), "Failed");
  EXPECT_EQ(CanonicalPhase("failed"), "Failed");
  EXPECT_EQ(CanonicalPhase("BUDGETEXCEEDED"), "BudgetExceeded");
  EXPECT_EQ(CanonicalPhase("Fail"), std::nullopt);
  EXPECT_EQ(CanonicalPhase(""), std::nullopt);
}

TEST(ReplayBulk, BatchIdIsALabelValue) {
  EXPECT_EQ(BatchId(kNow, "0a1f"), "20261203-120000-0a1f");
}

json Cp(const std::string& name, int occ, const std::string& status, const std::string& started,
        const std::string& finished, const std::string& usd) {
  return {{"name", name}, {"occurrence", occ}, {"kind", "step"}, {"status", status}, {"startedAt", started},
          {"finishedAt", finished}, {"usd", usd}, {"copied", false}};
}

json SourceCheckpoints() {
  // In the API's order (by start); "summarize" started before analyze but finished after it asked for analyze.
  return {{"items",
           {Cp("research", 1, "completed", "2026-12-03T10:00:00.000000Z", "2026-12-03T10:00:05.000000Z", "0.01"),
            Cp("loop", 1, "completed", "2026-12-03T10:00:06.000000Z", "2026-12-03T10:00:07.000000Z", "0.002"),
            Cp("loop", 2, "completed", "2026-12-03T10:00:07.500000Z", "2026-12-03T10:00:07.900000Z", "0.003"),
            Cp("analyze", 1, "failed", "2026-12-03T10:00:08.000000Z", "2026-12-03T10:00:09.000000Z", "0.02"),
            Cp("report", 1, "completed", "2026-12-03T10:00:10.000000Z", "2026-12-03T10:00:11.000000Z", "0.03")}},
          {"metadata", json::object()}};
}

TEST(ReplayPlan, ReusedBeforeTheCutLiveFromIt) {
  json plan = PlanReplay(SourceCheckpoints(), "research-1", "analyze", 1);
  EXPECT_TRUE(plan["cutFound"].get<bool>());
  EXPECT_TRUE(plan["estimate"].get<bool>());
  ASSERT_EQ(plan["reused"].size(), 3u) << plan.dump(2);
  EXPECT_EQ(plan["reused"][0]["name"], "research");
  EXPECT_EQ(plan["reused"][2]["occurrence"], 2);
  EXPECT_EQ(plan["inheritedUSD"], "0.015");
  ASSERT_EQ(plan["live"].size(), 2u);
  EXPECT_EQ(plan["live"][0]["name"], "analyze");
  EXPECT_EQ(plan["live"][1]["name"], "report");
  EXPECT_EQ(plan["sourceLiveUSD"], "0.05");
  EXPECT_EQ(RenderReplayPlan(plan, false),
            "Replay of research-1 from checkpoint analyze (an estimate: the new code decides what it asks for before the cut)\n"
            "\nReused from the source (copied, no new cost): 3 checkpoints, inherited $0.015\n"
            "#   CHECKPOINT   KIND   INHERITED USD\n"
            "1   research     step   $0.010\n"
            "2   loop         step   $0.0020\n"
            "3   loop#2       step   $0.0030\n"
            "\nRuns live (from the cut on; the source spent $0.050 on these), plus any checkpoint the new code adds:\n"
            "CHECKPOINT   KIND   SOURCE STATUS   SOURCE USD\n"
            "analyze      step   failed          $0.020\n"
            "report       step   completed       $0.030\n");
}

TEST(ReplayPlan, ALaterOccurrenceAndACutNeverReached) {
  json at2 = PlanReplay(SourceCheckpoints(), "research-1", "loop", 2);
  ASSERT_EQ(at2["reused"].size(), 2u);  // research, loop#1
  EXPECT_EQ(at2["live"].size(), 3u);
  json never = PlanReplay(SourceCheckpoints(), "research-1", "publish", 1);
  EXPECT_FALSE(never["cutFound"].get<bool>());
  EXPECT_EQ(never["reused"].size(), 4u);  // every completed one
  EXPECT_NE(RenderReplayPlan(never, false).find("warning: research-1 never asked for publish"), std::string::npos);
  json empty = PlanReplay({{"items", json::array()}}, "r", "a", 1);
  EXPECT_NE(RenderReplayPlan(empty, false).find("  none\n"), std::string::npos);
}

}  // namespace
}  // namespace flowrun::plugin
