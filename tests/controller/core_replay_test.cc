// The core and spec.replay (issue 14): preparation before the first Job, the
// lineage label, status.replay and the Replay condition, inherited cost; and
// the pure checks the adapters make before RunAdmin::PrepareReplay
// (flowrun/controller/replay.h).
#include "core_world.h"
#include "flowrun/controller/replay.h"

using namespace core_test;

namespace {

constexpr char kSourceUid[] = "0d5f7a3c-2222-4c55-9a1e-3f0c9d8b2a99";

json ReplaySpecJson() {
  return {{"from", {{"run", "research-0"}, {"checkpoint", "analyze"}}},
          {"outputs", {{"research", "edited notes"}}},
          {"answers", {{"proceed", true}}}};
}

World ReplayWorld(const json& replay = ReplaySpecJson()) {
  World w;
  w.flowrun["spec"]["replay"] = replay;
  w.prepared.source_run_uid = kSourceUid;
  w.prepared.source_name = "research-0";
  w.prepared.cut = {"analyze", 1};
  w.prepared.prepared_at = At(0);
  w.prepared.snapshot_checkpoints = 29;
  w.prepared.output_overrides = {{"research", "edited notes"}};
  return w;
}

size_t IndexOf(const fc::ReconcileResult& r, const std::function<bool(const fc::Action&)>& pred) {
  for (size_t i = 0; i < r.actions.size(); ++i)
    if (pred(r.actions[i])) return i;
  return SIZE_MAX;
}

json SourceFlowRun(const json& spec_patch = json::object()) {
  json src = MakeFlowRun(spec_patch);
  src["metadata"]["name"] = "research-0";
  src["metadata"]["uid"] = kSourceUid;
  return src;
}

fc::FlowRunView View(const json& flowrun) { return *fc::ParseFlowRun(flowrun); }

// ---------------------------------------------------------------------------
// Preparation before the first Job

TEST(Replay, PreparedBeforeTheFirstJobAndLabelled) {
  World w = ReplayWorld();
  auto r = w.Step();
  size_t prepare = IndexOf(r, [](const fc::Action& a) { return std::holds_alternative<fc::PrepareReplay>(a); });
  size_t create = IndexOf(r, [](const fc::Action& a) { return std::holds_alternative<fc::CreateJob>(a); });
  size_t patch = IndexOf(r, [](const fc::Action& a) { return std::holds_alternative<fc::PatchStatus>(a); });
  ASSERT_NE(prepare, SIZE_MAX) << r.Describe();
  ASSERT_NE(create, SIZE_MAX) << r.Describe();
  // No Job unless the preparation succeeded: the executor stops at the first failure.
  EXPECT_LT(prepare, create) << r.Describe();
  EXPECT_LT(create, patch) << r.Describe();
  EXPECT_EQ(Count<fc::PrepareReplay>(r), 1u);
  auto* label = r.Find<fc::SetLabel>();
  ASSERT_NE(label, nullptr) << r.Describe();
  EXPECT_EQ(label->key, "flowrun.dev/replay-of");
  EXPECT_EQ(label->value, "research-0");
  EXPECT_EQ(w.flowrun["metadata"]["labels"]["flowrun.dev/replay-of"], "research-0");
  // The status patch after the action records it.
  const json* c = w.condition("Replay");
  ASSERT_NE(c, nullptr) << w.status().dump();
  EXPECT_EQ((*c)["status"], "True");
  EXPECT_EQ((*c)["reason"], "Prepared");
  EXPECT_NE((*c)["message"].get<std::string>().find("research-0"), std::string::npos);
  EXPECT_TRUE(HasEvent(r, "Normal", "ReplayPrepared"));
  EXPECT_EQ(w.phase(), "Pending");
  EXPECT_EQ(w.prepares, 1);
}

TEST(Replay, PreparedOnceOverTheWholeRun) {
  World w = ReplayWorld();
  w.Step();
  w.now = At(5);
  PodRunning(w.pod(1), 5);
  w.run->status = flowrun::RunStatus::kRunning;
  w.run->attempt = 1;
  w.run->epoch = 1;
  auto r = w.Step();
  EXPECT_EQ(w.phase(), "Running");
  // A retry of a replay is no new preparation.
  w.now = At(20);
  w.Finish(1, "", 137, 20, "Error");
  w.Step();
  w.now = At(40);
  r = w.Step();
  EXPECT_NE(r.Find<fc::CreateJob>(), nullptr) << r.Describe();
  EXPECT_EQ(Count<fc::PrepareReplay>(r), 0u) << r.Describe();
  EXPECT_EQ(w.prepares, 1);
}

TEST(Replay, CrashAfterPreparationCreatesTheJobWithoutPreparingAgain) {
  // The controller prepared, then died before the Job: the database has the
  // replay, the FlowRun has no status yet.
  World w = ReplayWorld();
  w.run = flowrun::RunState{};
  w.run->uid = kUid;
  w.run->replay = w.prepared;
  auto r = w.Step();
  EXPECT_EQ(Count<fc::PrepareReplay>(r), 0u) << r.Describe();
  ASSERT_NE(r.Find<fc::CreateJob>(), nullptr) << r.Describe();
  EXPECT_EQ((*w.condition("Replay"))["reason"], "Prepared");
}

TEST(Replay, FailedPreparationLeavesNothingRecorded) {
  // The executor stops at a failed PrepareReplay, so nothing after it runs;
  // the next reconcile (nothing applied) decides the same again.
  World w = ReplayWorld();
  auto first = w.Reconcile();
  auto again = w.Reconcile();
  EXPECT_EQ(first.Describe(), again.Describe());
  EXPECT_EQ(Count<fc::PrepareReplay>(again), 1u);
}

TEST(Replay, ALabelAlreadySetIsKept) {
  World w = ReplayWorld();
  w.flowrun["metadata"]["labels"] = {{"flowrun.dev/replay-of", "set-by-the-plugin"},
                                     {"flowrun.dev/replay-batch", "b1"}};
  auto r = w.Step();
  EXPECT_EQ(r.Find<fc::SetLabel>(), nullptr) << r.Describe();
  EXPECT_EQ(w.flowrun["metadata"]["labels"]["flowrun.dev/replay-of"], "set-by-the-plugin");
}

TEST(Replay, ALongSourceNameGivesAValidLabelValue) {
  std::string name(200, 'a');
  json spec = ReplaySpecJson();
  spec["from"]["run"] = name;
  World w = ReplayWorld(spec);
  auto r = w.Step();
  auto* label = r.Find<fc::SetLabel>();
  ASSERT_NE(label, nullptr);
  EXPECT_LE(label->value.size(), 63u);
  EXPECT_EQ(label->value, fc::LabelValue(name));
}

TEST(Replay, NotAReplayHasNoneOfIt) {
  World w;
  auto r = w.Step();
  EXPECT_EQ(r.Find<fc::PrepareReplay>(), nullptr);
  EXPECT_EQ(r.Find<fc::SetLabel>(), nullptr);
  EXPECT_EQ(w.condition("Replay"), nullptr);
  EXPECT_FALSE(w.status().contains("replay"));
}

TEST(Replay, CancelledBeforePreparationPreparesNothing) {
  World w = ReplayWorld();
  w.flowrun["spec"]["cancel"] = true;
  auto r = w.Step();
  EXPECT_EQ(r.Find<fc::PrepareReplay>(), nullptr) << r.Describe();
  EXPECT_EQ(r.Find<fc::CreateJob>(), nullptr) << r.Describe();
  EXPECT_EQ(w.phase(), "Cancelled");
}

TEST(Replay, DeletedBeforePreparationPreparesNothing) {
  World w = ReplayWorld();
  w.flowrun["metadata"]["deletionTimestamp"] = Ts(1);
  auto r = w.Reconcile();
  EXPECT_EQ(r.Find<fc::PrepareReplay>(), nullptr) << r.Describe();
  EXPECT_NE(r.Find<fc::RemoveFinalizer>(), nullptr) << r.Describe();
}

// ---------------------------------------------------------------------------
// spec.replay that the CRD would refuse (an older CRD, a direct write)

struct BadReplay {
  const char* name;
  json replay;
  const char* error;
};

class InvalidReplaySpec : public ::testing::TestWithParam<BadReplay> {};

TEST_P(InvalidReplaySpec, NoPreparationNoJobAndTheReason) {
  World w = ReplayWorld(GetParam().replay);
  auto r = w.Step();
  EXPECT_EQ(r.Find<fc::PrepareReplay>(), nullptr) << r.Describe();
  EXPECT_EQ(r.Find<fc::CreateJob>(), nullptr) << r.Describe();
  EXPECT_TRUE(HasEvent(r, "Warning", "InvalidSpec")) << r.Describe();
  std::string msg = w.status()["message"];
  EXPECT_NE(msg.find(GetParam().error), std::string::npos) << msg;
}

INSTANTIATE_TEST_SUITE_P(
    Replay, InvalidReplaySpec,
    ::testing::Values(
        BadReplay{"NoFrom", {{"outputs", {{"a", 1}}}}, "spec.replay.from: required"},
        BadReplay{"NoRun", {{"from", {{"checkpoint", "analyze"}}}}, "spec.replay.from.run: required"},
        BadReplay{"Namespace", {{"from", {{"run", "team-b/research-0"}, {"checkpoint", "analyze"}}}},
                  "without a namespace/ prefix"},
        BadReplay{"NoCut", {{"from", {{"run", "research-0"}}}}, "spec.replay.from.checkpoint: required"},
        BadReplay{"OccurrenceZero", {{"from", {{"run", "research-0"}, {"checkpoint", "a"}, {"occurrence", 0}}}},
                  "spec.replay.from.occurrence: must be >= 1, got 0"},
        BadReplay{"OutputsNotObject", {{"from", {{"run", "research-0"}, {"checkpoint", "a"}}}, {"outputs", 3}},
                  "spec.replay.outputs: must be an object"},
        BadReplay{"OutputTwice",
                  {{"from", {{"run", "research-0"}, {"checkpoint", "a"}}},
                   {"outputs", {{"research", 1}}},
                   {"outputFrom", {{"research", {{"configMapKeyRef", {{"name", "n"}, {"key", "k"}}}}}}}},
                  "also has an output in spec.replay.outputs"},
        BadReplay{"OutputFromWithoutKey",
                  {{"from", {{"run", "research-0"}, {"checkpoint", "a"}}},
                   {"outputFrom", {{"research", {{"configMapKeyRef", {{"name", "n"}}}}}}}},
                  "needs a name and a key"},
        BadReplay{"NotObject", json("research-0"), "spec.replay: must be an object"}),
    [](const auto& info) { return std::string(info.param.name); });

// ---------------------------------------------------------------------------
// status.replay, cost, the Replay condition from the store

TEST(Replay, StatusFromTheStoreAndInheritedBesideSpent) {
  World w = ReplayWorld();
  w.Step();
  w.now = At(5);
  PodRunning(w.pod(1), 5);
  flowrun::RunState run = MakeRun("running", 1);
  run.replay = w.prepared;
  run.replay->copied_checkpoints = 29;
  run.replay->inherited.cost_usd = 0.0123;
  run.replay->inherited.llm_calls = 29;
  run.spent.cost_usd = 0.0021;  // the live tail only
  w.run = run;
  w.Step();
  const json& rs = w.status()["replay"];
  EXPECT_EQ(rs["sourceName"], "research-0");
  EXPECT_EQ(rs["sourceUid"], kSourceUid);
  EXPECT_EQ(rs["cut"], json({{"checkpoint", "analyze"}, {"occurrence", 1}}));
  EXPECT_EQ(rs["preparedAt"], Ts(0));
  EXPECT_EQ(rs["snapshotCheckpoints"], 29);
  EXPECT_EQ(rs["copiedCheckpoints"], 29);
  EXPECT_EQ(rs["inheritedUsd"], "0.0123");
  EXPECT_EQ(rs["cutReached"], false);
  EXPECT_EQ(rs["outputs"], json::array({"research"}));
  EXPECT_EQ(rs["answers"], json::array({"proceed"}));
  EXPECT_EQ(w.status()["cost"]["inheritedUsd"], "0.0123");
  EXPECT_DOUBLE_EQ(w.status()["cost"]["usd"].get<double>(), 0.0021);  // spent never includes inherited
  EXPECT_EQ(w.status()["cost"]["display"], "$0.0021");
  // The copied count moves as the engine serves copies: status follows.
  w.run->replay->copied_checkpoints = 30;
  w.run->replay->cut_reached = true;
  auto r = w.Step();
  EXPECT_EQ(w.status()["replay"]["copiedCheckpoints"], 30);
  EXPECT_EQ(w.status()["replay"]["cutReached"], true);
  EXPECT_EQ(Count<fc::Event>(r), 0u) << r.Describe();  // the condition did not change
}

TEST(Replay, CutNotReachedWhenTheRunEndsWithoutIt) {
  World w = ReplayWorld();
  w.Step();
  w.now = At(5);
  PodRunning(w.pod(1), 5);
  flowrun::RunState run = MakeRun("running", 1);
  run.replay = w.prepared;
  w.run = run;
  w.Step();
  w.now = At(50);
  w.Finish(1, Message("succeeded", 1), 0, 50);
  w.run->status = flowrun::RunStatus::kSucceeded;
  auto r = w.Step();
  EXPECT_EQ(w.phase(), "Succeeded");
  const json* c = w.condition("Replay");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ((*c)["status"], "False");
  EXPECT_EQ((*c)["reason"], "CutNotReached");
  EXPECT_NE((*c)["message"].get<std::string>().find("'analyze'"), std::string::npos);
  EXPECT_TRUE(HasEvent(r, "Warning", "CutNotReached")) << r.Describe();
}

TEST(Replay, CutReachedStaysPreparedAtTheEnd) {
  World w = ReplayWorld();
  w.Step();
  w.now = At(5);
  PodRunning(w.pod(1), 5);
  flowrun::RunState run = MakeRun("running", 1);
  run.replay = w.prepared;
  run.replay->cut_reached = true;
  w.run = run;
  w.Step();
  w.now = At(50);
  w.Finish(1, Message("succeeded", 1), 0, 50);
  w.run->status = flowrun::RunStatus::kSucceeded;
  auto r = w.Step();
  EXPECT_EQ(w.phase(), "Succeeded");
  EXPECT_EQ((*w.condition("Replay"))["reason"], "Prepared");
  EXPECT_FALSE(HasEvent(r, "Warning", "CutNotReached"));
}

TEST(Replay, CutNotReachedIsNotReportedWhileRunning) {
  World w = ReplayWorld();
  w.Step();
  w.now = At(5);
  PodRunning(w.pod(1), 5);
  w.run = MakeRun("running", 1);
  w.run->replay = w.prepared;
  w.Step();
  EXPECT_EQ((*w.condition("Replay"))["status"], "True");
}

// ---------------------------------------------------------------------------
// ResolveReplay: what the adapter checks before RunAdmin::PrepareReplay

TEST(ResolveReplay, BuildsTheRequest) {
  World w = ReplayWorld();
  w.flowrun["spec"]["replay"]["from"]["occurrence"] = 2;
  w.flowrun["spec"]["replay"]["outputFrom"] = {{"summary", {{"configMapKeyRef", {{"name", "notes"}, {"key", "s.json"}}}}}};
  auto got = fc::ResolveReplay(View(w.flowrun), SourceFlowRun(), {{"summary", std::string(R"({"text":"big"})")}}, w.config);
  auto* req = std::get_if<flowrun::ReplayRequest>(&got);
  ASSERT_NE(req, nullptr) << std::get<fc::ReplayRefusal>(got).message;
  EXPECT_EQ(req->run_uid, kUid);
  EXPECT_EQ(req->namespace_, "team-a");
  EXPECT_EQ(req->name, kName);
  EXPECT_EQ(req->flow, "research");
  EXPECT_EQ(req->source_run_uid, kSourceUid);  // the run uid is the FlowRun's metadata.uid
  EXPECT_EQ(req->source_name, "research-0");
  EXPECT_EQ(req->cut.name, "analyze");
  EXPECT_EQ(req->cut.occurrence, 2);
  EXPECT_EQ(req->output_overrides.at("research"), "edited notes");
  EXPECT_EQ(req->output_overrides.at("summary"), json({{"text", "big"}}));
  EXPECT_EQ(req->answers.at("proceed"), true);
}

TEST(ResolveReplay, DefaultFlowName) {
  World w = ReplayWorld();
  w.flowrun["spec"].erase("flow");
  auto got = fc::ResolveReplay(View(w.flowrun), SourceFlowRun(), {}, w.config);
  ASSERT_TRUE(std::holds_alternative<flowrun::ReplayRequest>(got));
  EXPECT_EQ(std::get<flowrun::ReplayRequest>(got).flow, "default");
}

fc::ReplayRefusal Refused(const json& flowrun, const std::optional<json>& source,
                          const std::map<std::string, fc::ConfigMapText>& texts = {}) {
  auto got = fc::ResolveReplay(View(flowrun), source, texts, fc::ControllerConfig{});
  if (auto* r = std::get_if<fc::ReplayRefusal>(&got)) return *r;
  ADD_FAILURE() << "not refused";
  return {};
}

TEST(ResolveReplay, SourceNotFound) {
  World w = ReplayWorld();
  auto r = Refused(w.flowrun, std::nullopt);
  EXPECT_EQ(r.reason, "SourceNotFound");
  EXPECT_NE(r.message.find("team-a/research-0 not found"), std::string::npos) << r.message;
}

TEST(ResolveReplay, UidPin) {
  World w = ReplayWorld();
  w.flowrun["spec"]["replay"]["from"]["uid"] = "uid-of-the-deleted-source";
  auto r = Refused(w.flowrun, SourceFlowRun());
  EXPECT_EQ(r.reason, "SourceUidMismatch");
  EXPECT_NE(r.message.find("uid-of-the-deleted-source"), std::string::npos) << r.message;
  w.flowrun["spec"]["replay"]["from"]["uid"] = kSourceUid;
  EXPECT_TRUE(std::holds_alternative<flowrun::ReplayRequest>(
      fc::ResolveReplay(View(w.flowrun), SourceFlowRun(), {}, w.config)));
}

TEST(ResolveReplay, OtherDatabase) {
  World w = ReplayWorld();
  json other = {{"database", {{"secretRef", {{"name", "other-db"}, {"key", "url"}}}}}};
  auto r = Refused(w.flowrun, SourceFlowRun(other));
  EXPECT_EQ(r.reason, "OtherDatabase");
  EXPECT_NE(r.message.find("other-db"), std::string::npos) << r.message;
  // The same Secret named explicitly on one side and by default on the other is the same database.
  json same = {{"database", {{"secretRef", {{"name", "flowrun-database"}}}}}};
  EXPECT_TRUE(std::holds_alternative<flowrun::ReplayRequest>(
      fc::ResolveReplay(View(w.flowrun), SourceFlowRun(same), {}, fc::ControllerConfig{})));
  // Another key of the same Secret is another database.
  json key = {{"database", {{"secretRef", {{"name", "flowrun-database"}, {"key", "other"}}}}}};
  EXPECT_EQ(Refused(w.flowrun, SourceFlowRun(key)).reason, "OtherDatabase");
}

TEST(ResolveReplay, OutputFromProblemsAreInvalidReplay) {
  World w = ReplayWorld();
  w.flowrun["spec"]["replay"]["outputFrom"] = {{"summary", {{"configMapKeyRef", {{"name", "notes"}, {"key", "s.json"}}}}}};
  auto missing = Refused(w.flowrun, SourceFlowRun(), {{"summary", flowrun::NotFound("no ConfigMap notes")}});
  EXPECT_EQ(missing.reason, "InvalidReplay");
  EXPECT_NE(missing.message.find("spec.replay.outputFrom.summary: ConfigMap notes key s.json not found"),
            std::string::npos)
      << missing.message;
  EXPECT_EQ(Refused(w.flowrun, SourceFlowRun()).reason, "InvalidReplay");  // not read at all
  auto bad = Refused(w.flowrun, SourceFlowRun(), {{"summary", std::string("plain text, not JSON")}});
  EXPECT_EQ(bad.reason, "InvalidReplay");
  EXPECT_NE(bad.message.find("is not JSON text"), std::string::npos) << bad.message;
}

TEST(ResolveReplay, AFlowRunCannotReplayItself) {
  World w = ReplayWorld();
  auto r = Refused(w.flowrun, w.flowrun);
  EXPECT_EQ(r.reason, "InvalidReplay");
  EXPECT_NE(r.message.find("itself"), std::string::npos) << r.message;
}

TEST(ResolveReplay, StoreErrors) {
  auto nf = fc::RefusalOfPrepareError(flowrun::NotFound("no run"), "research-0");
  ASSERT_TRUE(nf);
  EXPECT_EQ(nf->reason, "SourceNotPrepared");
  auto inv = fc::RefusalOfPrepareError(flowrun::InvalidArgument("override of 'x': no such checkpoint"), "research-0");
  ASSERT_TRUE(inv);
  EXPECT_EQ(inv->reason, "InvalidReplay");
  EXPECT_NE(inv->message.find("no such checkpoint"), std::string::npos);
  auto ae = fc::RefusalOfPrepareError(flowrun::AlreadyExists("has attempts"), "research-0");
  ASSERT_TRUE(ae);
  EXPECT_EQ(ae->reason, "InvalidReplay");
  EXPECT_FALSE(fc::RefusalOfPrepareError(flowrun::Unavailable("db down"), "research-0"));
  EXPECT_FALSE(fc::RefusalOfPrepareError(flowrun::Internal("bug"), "research-0"));
}

TEST(ReplayRefusalPatch, RecordsTheConditionOnce) {
  World w = ReplayWorld();
  fc::ReplayRefusal refusal{"SourceNotFound", "source FlowRun team-a/research-0 not found"};
  bool changed = false;
  json patch = fc::ReplayRefusalPatch(w.flowrun, refusal, At(10), w.config, &changed);
  EXPECT_TRUE(changed);
  EXPECT_EQ(patch["status"]["phase"], "Pending");
  EXPECT_EQ(patch["status"]["message"], refusal.message);
  ASSERT_EQ(patch["status"]["conditions"].size(), 1u);
  EXPECT_EQ(patch["status"]["conditions"][0]["type"], "Replay");
  EXPECT_EQ(patch["status"]["conditions"][0]["status"], "False");
  EXPECT_EQ(patch["status"]["conditions"][0]["lastTransitionTime"], Ts(10));
  fc::ApplyMergePatch(w.flowrun, patch);
  // Again, later: nothing changed, the transition time stays.
  json again = fc::ReplayRefusalPatch(w.flowrun, refusal, At(20), w.config, &changed);
  EXPECT_FALSE(changed);
  EXPECT_EQ(again["status"]["conditions"][0]["lastTransitionTime"], Ts(10));
  // Another reason: changed, still False so the time stays.
  json other = fc::ReplayRefusalPatch(w.flowrun, {"SourceNotPrepared", "no run yet"}, At(30), w.config, &changed);
  EXPECT_TRUE(changed);
  EXPECT_EQ(other["status"]["conditions"][0]["reason"], "SourceNotPrepared");
  EXPECT_EQ(other["status"]["conditions"][0]["lastTransitionTime"], Ts(10));
  // Then prepared: the core's next pass flips it to True Prepared, keeping the other conditions.
  fc::ApplyMergePatch(w.flowrun, other);
  w.Step();
  const json* c = w.condition("Replay");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ((*c)["status"], "True");
  EXPECT_EQ((*c)["lastTransitionTime"], Ts(0));
  EXPECT_NE(w.condition("Completed"), nullptr);
}

TEST(ReplayRefusalPatch, KeepsOtherConditionsAndThePhase) {
  World w = ReplayWorld();
  w.status()["phase"] = "Pending";
  w.status()["conditions"] = {{{"type", "ReconcileError"}, {"status", "False"}, {"reason", "Reconciled"},
                               {"message", "m"}, {"lastTransitionTime", Ts(1)}}};
  json patch = fc::ReplayRefusalPatch(w.flowrun, {"SourceNotFound", "m2"}, At(10), w.config, nullptr);
  EXPECT_FALSE(patch["status"].contains("phase"));
  ASSERT_EQ(patch["status"]["conditions"].size(), 2u);
  EXPECT_EQ(patch["status"]["conditions"][0]["type"], "ReconcileError");
}

TEST(DecimalUsd, ExactTextToTheNanoDollarNeverExponent) {
  EXPECT_EQ(fc::DecimalUsd(0.0123), "0.0123");
  EXPECT_EQ(fc::DecimalUsd(1.9050000000000002e-05), "0.00001905");  // float noise rounded away
  EXPECT_EQ(fc::DecimalUsd(6.35e-06 + 6.35e-06 + 6.35e-06), "0.00001905");
  EXPECT_EQ(fc::DecimalUsd(12.5), "12.5");
  EXPECT_EQ(fc::DecimalUsd(3), "3");
  EXPECT_EQ(fc::DecimalUsd(1234567.000000001), "1234567.000000001");
  EXPECT_EQ(fc::DecimalUsd(4e-10), "0");
  EXPECT_EQ(fc::DecimalUsd(0), "0");
  EXPECT_EQ(fc::DecimalUsd(-1), "0");
  EXPECT_EQ(fc::DecimalUsd(std::nan("")), "0");
  EXPECT_EQ(fc::DecimalUsd(0.1 + 0.2), "0.3");
}

}  // namespace
