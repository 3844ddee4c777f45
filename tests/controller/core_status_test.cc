// The core: malformed input, a whole lifecycle step by step, and the status it writes.
#include "core_world.h"

using namespace core_test;

namespace {

// ---------------------------------------------------------------------------
// Malformed input

TEST(Malformed, FlowRunWithoutUidIsAnError) {
  World w;
  w.flowrun["metadata"].erase("uid");
  auto r = fc::Reconcile({w.flowrun, w.jobs, w.pods, w.run, w.now, w.config});
  EXPECT_TRUE(r.actions.empty());
  EXPECT_EQ(r.error.code(), flowrun::StatusCode::kInvalidArgument) << r.error;
  EXPECT_NE(r.error.message().find("metadata.uid"), std::string::npos) << r.error;
  EXPECT_EQ(fc::Reconcile({json("x"), {}, {}, {}, w.now, w.config}).error.code(), flowrun::StatusCode::kInvalidArgument);
}

TEST(Malformed, InvalidSpecNeverStartsAJobAndSaysWhy) {
  World w;
  w.flowrun["spec"]["template"].erase("image");
  w.flowrun["spec"]["retry"]["maxAttempts"] = "three";
  w.flowrun["spec"]["parameters"] = json::array({1, 2});
  auto r = w.Step();
  EXPECT_EQ(Count<fc::CreateJob>(r), 0u) << r.Describe();
  std::string msg = w.status()["message"];
  EXPECT_NE(msg.find("spec.template.image: required"), std::string::npos) << msg;
  EXPECT_NE(msg.find("spec.retry.maxAttempts: must be an integer, got \"three\""), std::string::npos) << msg;
  EXPECT_NE(msg.find("spec.parameters: must be a JSON object"), std::string::npos) << msg;
  EXPECT_TRUE(HasEvent(r, "Warning", "InvalidSpec"));
  EXPECT_EQ(w.phase(), "Pending");
  auto built = fc::BuildJob(w.flowrun, 1, w.config);
  EXPECT_FALSE(built.ok());
  // Cancel still works.
  w.flowrun["spec"]["cancel"] = true;
  w.Step();
  EXPECT_EQ(w.phase(), "Cancelled");
}

TEST(Malformed, GarbageStatusIsRewritten) {
  World w;
  w.status() = {{"phase", 3}, {"attempts", "many"}, {"conditions", {1, 2}}, {"answers", {{"x", 1}}}};
  auto r = w.Step();
  ASSERT_NE(r.Find<fc::CreateJob>(), nullptr) << r.Describe();
  EXPECT_EQ(w.phase(), "Pending");
  EXPECT_EQ(w.status()["answers"]["x"], 1);
}

TEST(Malformed, ForeignJobsAndMalformedPodsAreIgnored) {
  World w = RunningWorld();
  w.jobs.push_back({{"metadata", {{"name", "something-else"}}}});
  w.pods.push_back("garbage");
  w.pods.push_back({{"metadata", 7}});
  auto r = w.Reconcile();
  EXPECT_TRUE(r.error.ok()) << r.error;
  EXPECT_TRUE(r.actions.empty()) << r.Describe();
}

// ---------------------------------------------------------------------------
// A whole run, checking idempotency at every step (World::Step does).

TEST(Lifecycle, FromCreationToDeletion) {
  World w;
  w.flowrun["metadata"].erase("finalizers");
  w.flowrun["spec"]["ttlSecondsAfterFinished"] = 3600;
  std::vector<std::string> phases;
  auto step = [&](int t) {
    w.now = At(t);
    w.Step();
    phases.push_back(w.phase());
  };
  step(0);  // finalizer, Job a1
  PodRunning(w.pod(1), 3);
  w.run = MakeRun("running", 1);
  step(3);
  w.Finish(1, "", 137, 20, "OOMKilled");
  step(20);  // backoff
  step(30);  // a2
  PodRunning(w.pod(2), 31);
  step(31);
  w.Finish(2, Message("waiting", 2), 0, 40);
  w.run->status = flowrun::RunStatus::kWaiting;
  w.run->open_wait = MakeWait("proceed");
  step(40);
  Answer(w, "proceed", true);
  step(50);  // a3
  PodRunning(w.pod(3), 51);
  w.run->status = flowrun::RunStatus::kRunning;
  step(51);
  w.Finish(3, Message("succeeded", 3), 0, 60);
  w.run->status = flowrun::RunStatus::kSucceeded;
  step(60);
  step(3660);  // TTL: DeleteFlowRun
  step(3661);  // finalizer
  EXPECT_EQ(phases, (std::vector<std::string>{"Pending", "Running", "Pending", "Pending", "Running", "Waiting",
                                              "Resuming", "Running", "Succeeded", "Succeeded", "Succeeded"}));
  EXPECT_TRUE(w.flowrun_deleted);
  EXPECT_FALSE(w.run.has_value()) << "rows deleted with the FlowRun";
  ASSERT_EQ(w.status()["attempts"].size(), 3u);
  EXPECT_EQ(w.status()["attempts"][0]["outcome"], "oom_killed");
  EXPECT_EQ(w.status()["attempts"][1]["outcome"], "waiting");
  EXPECT_EQ(w.status()["attempts"][2]["outcome"], "succeeded");
}

TEST(Status, LastTransitionTimeChangesOnlyWhenTheStatusFlips) {
  World w = RunningWorld();
  std::string t0 = (*w.condition("Completed"))["lastTransitionTime"];
  w.now = At(100);
  w.Finish(1, Message("waiting", 1), 0, 100);
  w.Step();  // Running -> Waiting: Completed stays False
  EXPECT_EQ((*w.condition("Completed"))["lastTransitionTime"], t0);
  EXPECT_EQ((*w.condition("Completed"))["reason"], "WaitingForAnswer");
}

// The loop set ReconcileError=True after a pass the core could not decide
// (flowrun_controller.cc); the next pass that decides ends it in its own
// status patch: False, reason Reconciled, a new lastTransitionTime. Once
// False it stays untouched (Step checks the pass after is a no-op).
TEST(Status, StaleReconcileErrorIsSetFalseByTheNextPass) {
  World w = RunningWorld();
  w.status()["conditions"].push_back({{"type", "ReconcileError"}, {"status", "True"}, {"reason", "InternalError"},
                                      {"message", "reconcile failed: boom"}, {"lastTransitionTime", Ts(5)}});
  w.now = At(50);
  auto r = w.Step();
  const fc::PatchStatus* p = r.Find<fc::PatchStatus>();
  ASSERT_NE(p, nullptr) << r.Describe();
  ASSERT_TRUE(p->patch["status"].contains("conditions")) << r.Describe();
  const json* c = w.condition("ReconcileError");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ((*c)["status"], "False");
  EXPECT_EQ((*c)["reason"], "Reconciled");
  EXPECT_EQ((*c)["lastTransitionTime"], Ts(50));
  EXPECT_EQ((*w.condition("Completed"))["status"], "False");  // the others are kept
  w.now = At(60);
  EXPECT_TRUE(w.Reconcile().actions.empty()) << w.Reconcile().Describe();
}

// A FlowRun that never had a ReconcileError gets none.
TEST(Status, NoReconcileErrorConditionWithoutAnEarlierError) {
  World w = RunningWorld();
  EXPECT_EQ(w.condition("ReconcileError"), nullptr);
}

TEST(Status, PatchTouchesOnlyChangedOwnedFields) {
  World w = RunningWorld();
  w.status()["somebodyElses"] = "keep";
  w.flowrun["spec"]["budgetUSD"] = 3.0;  // only the database changes
  w.run->budget_usd = 3.0;
  EXPECT_TRUE(w.Reconcile().actions.empty()) << w.Reconcile().Describe();
  w.run->spent.cost_usd = 0.5;
  auto r = w.Reconcile();
  ASSERT_EQ(r.actions.size(), 1u) << r.Describe();
  // usd and its display (the COST column) change together.
  EXPECT_EQ(r.Find<fc::PatchStatus>()->patch, json({{"status", {{"cost", {{"usd", 0.5}, {"display", "$0.50"}}}}}}));
}

// A call started and never answered (the agent was killed mid-call) may have
// been billed: status.cost counts it apart, never folded into llmCalls or
// dropped (issue 11: 20 paid calls, 16 shown).
TEST(Status, UnfinishedCallsAreCountedApartInCost) {
  World w = RunningWorld();
  w.run->spent.unfinished_calls = 4;
  auto r = w.Reconcile();
  ASSERT_NE(r.Find<fc::PatchStatus>(), nullptr) << r.Describe();
  EXPECT_EQ(r.Find<fc::PatchStatus>()->patch, json({{"status", {{"cost", {{"unfinishedCalls", 4}}}}}}));
  EXPECT_EQ(w.status()["cost"]["llmCalls"], 2);
}

// status.cost.display is what `kubectl get flowruns` shows; usd is exact to
// the nano-dollar, without the float noise of a double sum.
TEST(Status, CostDisplayIsShortAndUsdExact) {
  EXPECT_EQ(fc::FormatUsdForDisplay(1.9050000000000002e-05), "$0.000019");
  EXPECT_EQ(fc::FormatUsdForDisplay(0.0123), "$0.012");
  EXPECT_EQ(fc::FormatUsdForDisplay(0.12), "$0.12");
  EXPECT_EQ(fc::FormatUsdForDisplay(0.5), "$0.50");
  EXPECT_EQ(fc::FormatUsdForDisplay(0.999), "$1.00");
  EXPECT_EQ(fc::FormatUsdForDisplay(12.345), "$12.35");
  EXPECT_EQ(fc::FormatUsdForDisplay(999999999999.99), "$999999999999.99");
  EXPECT_EQ(fc::FormatUsdForDisplay(4611686018427387904.0), "$4.61e+18");
  EXPECT_EQ(fc::FormatUsdForDisplay(0), "$0");
  EXPECT_EQ(fc::FormatUsdForDisplay(1e-9), "<$0.000001");
  EXPECT_EQ(fc::FormatUsdForDisplay(-1), "");
  EXPECT_EQ(fc::FormatUsdForDisplay(std::nan("")), "");
  for (double v : {1e-7, 1e-6, 3.3e-6, 0.0999, 0.1, 1.0, 99.999, 1e11, 9.99e11, 1e12, 1e300})
    EXPECT_LE(fc::FormatUsdForDisplay(v).size(), 16u) << v;  // the CRD's maxLength

  World w = RunningWorld();
  w.run->spent.cost_usd = 1.9050000000000002e-05;
  w.Step();
  EXPECT_EQ(w.status()["cost"]["usd"], 1.905e-05);
  EXPECT_EQ(w.status()["cost"]["usd"].dump(), "1.905e-05");  // not 1.9050000000000002e-05
  EXPECT_EQ(w.status()["cost"]["display"], "$0.000019");
  // Derived every time: a stale or foreign display is rewritten, a steady one patches nothing.
  w.status()["cost"]["display"] = "$999";
  auto r = w.Reconcile();
  ASSERT_NE(r.Find<fc::PatchStatus>(), nullptr) << r.Describe();
  EXPECT_EQ(r.Find<fc::PatchStatus>()->patch, json({{"status", {{"cost", {{"display", "$0.000019"}}}}}}));
  w.status()["cost"]["display"] = "$0.000019";
  EXPECT_TRUE(w.Reconcile().actions.empty()) << w.Reconcile().Describe();
  // No usd (a status from elsewhere): no display.
  fc::FlowRunStatus st;
  st.cost = {{"llmCalls", 1}, {"display", "$5"}};
  EXPECT_FALSE(st.ToJson()["cost"].contains("display"));
}

// Every USD figure in status is rounded to 1e-9 USD: sums whose double is
// noisy (3 x 6.35e-06, 0.1 + 0.2) are written as the decimal they stand for.
TEST(Status, MoneyInStatusHasNoFloatNoise) {
  World w = RunningWorld();
  const double noisy = 6.35e-06 + 6.35e-06 + 6.35e-06;
  ASSERT_NE(json(noisy).dump(), "1.905e-05");  // the premise: the raw sum is noisy
  w.run->spent.cost_usd = noisy;
  w.run->saved.cost_usd = 0.1 + 0.2;
  flowrun::ReplayInfo replay;
  replay.inherited.cost_usd = noisy;
  w.run->replay = replay;
  w.run->top_models = {{"gpt-4o-mini", {.llm_calls = 3, .input_tokens = 30, .output_tokens = 9, .cost_usd = noisy}}};
  w.run->top_calls = {{.checkpoint = flowrun::CheckpointKey{"research", 1}, .model = "gpt-4o-mini", .attempt = 1,
                       .input_tokens = 10, .output_tokens = 3, .latency_ms = 812.6, .cost_usd = 0.1 + 0.2}};
  w.Step();
  const json cost = w.status()["cost"];
  EXPECT_EQ(cost["usd"].dump(), "1.905e-05");
  EXPECT_EQ(cost["savedUSD"].dump(), "0.3");
  EXPECT_EQ(cost["inheritedUsd"], "0.00001905");
  EXPECT_EQ(cost["byModel"][0]["usd"], "0.00001905");
  EXPECT_EQ(cost["topCalls"][0]["usd"], "0.3");
  EXPECT_EQ(cost["topCalls"][0]["latencyMs"], 813);
  // No figure anywhere in the status prints more than 9 decimals or an exponent with noise.
  const std::string text = w.status().dump();
  EXPECT_EQ(text.find("0000000002"), std::string::npos) << text;
  EXPECT_EQ(text.find("0000000004"), std::string::npos) << text;
  EXPECT_EQ(text.find("9999999"), std::string::npos) << text;
}

// status.cost.byModel: at most 5 models, by spend descending (ties by name),
// the others counted in omittedModels; topCalls: at most 3, most expensive
// first. The core orders and bounds whatever the store returned.
TEST(Status, CostSummariesAreOrderedAndBounded) {
  World w = RunningWorld();
  auto model = [](std::string name, double usd, int64_t calls) {
    return flowrun::ModelUsage{std::move(name), {.llm_calls = calls, .input_tokens = calls * 100,
                                                 .output_tokens = calls * 10, .cost_usd = usd}};
  };
  w.run->top_models = {model("m-cheap", 0.001, 1), model("m-big", 0.5, 7),   model("m-b", 0.02, 2),
                       model("m-a", 0.02, 3),      model("m-free", 0, 4),    model("m-mid", 0.1, 5),
                       model("m-tiny", 0.0001, 1)};
  w.run->other_models = 2;  // the store already left two out
  auto call = [](std::string cp, int occ, double usd, int attempt) {
    return flowrun::CallCost{.checkpoint = flowrun::CheckpointKey{std::move(cp), occ}, .model = "m-big",
                             .attempt = attempt, .input_tokens = 1000, .output_tokens = 50, .latency_ms = 1200,
                             .cost_usd = usd};
  };
  w.run->top_calls = {call("a", 1, 0.01, 1), call("b", 2, 0.3, 1), call("c", 1, 0.01, 2), call("d", 1, 0.2, 2)};
  w.run->top_calls.push_back({.model = "m-mid", .attempt = 2, .cost_usd = 0.25});  // outside any checkpoint
  w.Step();
  const json cost = w.status()["cost"];
  ASSERT_TRUE(cost["byModel"].is_array()) << cost.dump();
  std::vector<std::string> names;
  for (const auto& m : cost["byModel"]) names.push_back(m["model"]);
  EXPECT_EQ(names, (std::vector<std::string>{"m-big", "m-mid", "m-a", "m-b", "m-cheap"}));
  EXPECT_EQ(cost["omittedModels"], 4);  // m-tiny, m-free and the two the store left out
  EXPECT_EQ(cost["byModel"][0], json({{"model", "m-big"}, {"usd", "0.5"}, {"llmCalls", 7}, {"inputTokens", 700},
                                      {"outputTokens", 70}}));
  ASSERT_EQ(cost["topCalls"].size(), 3u) << cost.dump();
  EXPECT_EQ(cost["topCalls"][0], json({{"checkpoint", "b"}, {"occurrence", 2}, {"model", "m-big"}, {"usd", "0.3"},
                                       {"inputTokens", 1000}, {"outputTokens", 50}, {"latencyMs", 1200},
                                       {"attempt", 1}}));
  EXPECT_FALSE(cost["topCalls"][1].contains("checkpoint")) << "a call outside any checkpoint names none";
  EXPECT_EQ(cost["topCalls"][1]["usd"], "0.25");
  EXPECT_EQ(cost["topCalls"][2]["checkpoint"], "d");

  // Five models or fewer: all listed, no omittedModels; long names cut to the CRD's limits.
  w.run->top_models = {model(std::string(300, 'x'), 0.1, 1)};
  w.run->other_models = 0;
  w.run->top_calls = {call(std::string(400, 'c'), 1, 0.1, 1)};
  w.Step();
  EXPECT_FALSE(w.status()["cost"].contains("omittedModels")) << w.status()["cost"].dump();
  EXPECT_LE(w.status()["cost"]["byModel"][0]["model"].get<std::string>().size(), 128u);
  EXPECT_LE(w.status()["cost"]["topCalls"][0]["checkpoint"].get<std::string>().size(), 253u);
  // Steady state: nothing to patch.
  EXPECT_TRUE(w.Reconcile().actions.empty()) << w.Reconcile().Describe();

  // No calls yet: no summaries at all.
  World fresh = RunningWorld();
  EXPECT_FALSE(fresh.status()["cost"].contains("byModel")) << fresh.status().dump();
  EXPECT_FALSE(fresh.status()["cost"].contains("topCalls")) << fresh.status().dump();
}

TEST(Status, LongQuestionAndMessagesAreCut) {
  World w = RunningWorld();
  w.now = At(100);
  w.Finish(1, Message("waiting", 1, [](auto& o) { o.wait->question = std::string(3000, 'q'); }), 0, 100);
  w.Step();
  EXPECT_LE(w.status()["wait"]["question"].get<std::string>().size(), 2048u);
  EXPECT_LE(w.status()["message"].get<std::string>().size(), 1024u);
  for (const auto& c : w.status()["conditions"]) EXPECT_LE(c["message"].get<std::string>().size(), 512u);
  World v = RunningWorld();
  v.now = At(50);
  v.Finish(1, std::string(4000, 'e'), 1, 50);
  v.Step();
  EXPECT_LE((*v.attempt_record(1))["message"].get<std::string>().size(), 256u);
}

}  // namespace
