// Replay, the engine half (issue 14, flowrun/replay.h): an execution of a
// prepared replay serves the checkpoints it asks for before the cut from the
// source's snapshot (recorded as copied, their usage inherited), runs the cut
// and everything after it live, follows the divergence policy for a changed
// fingerprint, copies the artifacts saved inside copied checkpoints, survives
// the source's deletion and a crash between attempts without double counting,
// and records whether the cut was reached. Checked against the tables and
// GetRun; the "fake LLM" is a counter of the bodies that made a call.
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <map>
#include <memory>

#include "engine_fixture.h"

namespace flowrun::store_test {
namespace {

// One checkpoint of a test flow: its name and the inputs it is fingerprinted on.
struct Step {
  std::string name;
  std::optional<json> inputs;
};

std::string Name(int i) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "c%02d", i);
  return buf;
}

// c01..cNN, each fingerprinted on {"i": i}.
std::vector<Step> Steps(int n) {
  std::vector<Step> out;
  for (int i = 1; i <= n; ++i) out.push_back({Name(i), json{{"i", i}}});
  return out;
}

class EngineReplay : public EngineTest {
 protected:
  // Runs `steps` in order. A live body makes one LLM call (1000*i input
  // tokens: each checkpoint costs differently), counted in live_calls_; it
  // saves `artifacts[name]` inside itself; its output is {"i", "prev"}: what
  // the previous checkpoint returned, so the test sees what a body received.
  // Returns every checkpoint's output by name.
  std::map<std::string, json> RunSteps(Execution& ex, const std::vector<Step>& steps,
                                       std::map<std::string, std::vector<std::string>> artifacts = {}) {
    std::map<std::string, json> out;
    json prev = nullptr;
    int i = 0;
    for (const Step& s : steps) {
      ++i;
      CheckpointKey k = Must(ex.Reserve(s.name, CheckpointKind::kStep), "Reserve " + s.name);
      BeginResult b = Must(ex.Begin(k, s.inputs), "Begin " + s.name);
      if (!b.cached) {
        Must(ex.TryStarted(k, 1), "TryStarted");
        ++live_calls_;
        received_[s.name] = prev;
        LlmCallStart call = Must(ex.BeforeLlmCall(k, "gpt-4o-mini", 10));
        MustOk(ex.FinishLlmCall(call.call_id, Call(1000 * i, 100)));
        for (const std::string& data : artifacts[s.name]) Must(ex.SaveArtifact("notes-" + s.name, "text/plain", data, k));
        b.output = Must(ex.Complete(k, json{{"i", i}, {"prev", prev}}), "Complete");
      }
      out[s.name] = b.output;
      prev = b.output;
    }
    return out;
  }

  // A finished 40-checkpoint source; c05 saved two artifact versions inside
  // itself, c20 one, and one was saved outside any checkpoint.
  std::map<std::string, json> MakeSource(const std::string& uid, int n = 40) {
    auto ex = Open(uid);
    auto outputs = RunSteps(*ex, Steps(n), {{"c05", {"five-v1", "five-v2"}}, {"c20", {"twenty"}}});
    Must(ex->SaveArtifact("loose", "text/plain", "outside", std::nullopt));
    EXPECT_EQ(ex->Finish(json("done")), 0);
    live_calls_ = 0;
    received_.clear();
    return outputs;
  }

  ReplayRequest Request(const std::string& uid, const std::string& source, ReplayCut cut) {
    ReplayRequest r;
    r.run_uid = uid;
    r.namespace_ = "team-a";
    r.name = uid + "-name";
    r.flow = "research";
    r.source_run_uid = source;
    r.source_name = source + "-name";
    r.cut = std::move(cut);
    return r;
  }

  // The usage the source recorded for the checkpoints named in [first, last].
  Usage SourceUsage(RunAdmin& admin, const std::string& source, int first, int last) {
    Usage u;
    for (const auto& c : Must(admin.ListCheckpoints(source)))
      for (int i = first; i <= last; ++i)
        if (c.key.name == Name(i)) u += c.usage;
    return u;
  }

  int live_calls_ = 0;
  std::map<std::string, json> received_;  // what each live body got as "prev"
};

TEST_F(EngineReplay, FortyCheckpointsReplayedFromThirtyPayOnlyForTheTail) {
  auto source_outputs = MakeSource("src");
  auto admin = Admin();
  const RunState source = Must(admin->GetRun("src"));
  ASSERT_EQ(source.spent.llm_calls, 40);
  Must(admin->PrepareReplay(Request("rep", "src", {"c30", 1})));

  RunEnvironment env;
  auto ex = Open("rep", 1, &env);
  EXPECT_TRUE(ex->is_replay());
  auto outputs = RunSteps(*ex, Steps(40));
  EXPECT_EQ(live_calls_, 11) << "only c30..c40 run live";
  for (int i = 1; i <= 29; ++i) EXPECT_EQ(outputs[Name(i)], source_outputs[Name(i)]) << Name(i);
  for (int i = 30; i <= 40; ++i) EXPECT_TRUE(received_.count(Name(i))) << Name(i) << " ran live";
  ExecutionStats st = ex->stats();
  EXPECT_EQ(st.copied_checkpoints, 29);
  EXPECT_EQ(st.live_checkpoints, 11);
  EXPECT_EQ(st.cached_checkpoints, 0);
  EXPECT_EQ(st.saved.llm_calls, 0);
  EXPECT_EQ(st.inherited.llm_calls, 29);
  EXPECT_EQ(ex->Finish(json("done")), 0);

  const Usage head = SourceUsage(*admin, "src", 1, 29), tail = SourceUsage(*admin, "src", 30, 40);
  RunState run = Must(admin->GetRun("rep"));
  EXPECT_EQ(run.status, RunStatus::kSucceeded);
  EXPECT_EQ(run.spent.llm_calls, 11);
  EXPECT_NEAR(run.spent.cost_usd, tail.cost_usd, 1e-12) << "spent is the tail's calls";
  EXPECT_EQ(run.saved.llm_calls, 0) << "inherited is never saved";
  EXPECT_DOUBLE_EQ(run.saved.cost_usd, 0);
  ASSERT_TRUE(run.replay.has_value());
  EXPECT_EQ(run.replay->copied_checkpoints, 29);
  EXPECT_EQ(run.replay->inherited.llm_calls, 29);
  EXPECT_EQ(run.replay->inherited.input_tokens, head.input_tokens);
  EXPECT_NEAR(run.replay->inherited.cost_usd, head.cost_usd, 1e-12);
  EXPECT_NEAR(run.spent.cost_usd + run.replay->inherited.cost_usd, source.spent.cost_usd, 1e-12);
  EXPECT_TRUE(run.replay->cut_reached);
  ASSERT_EQ(run.attempts.size(), 1u);
  EXPECT_EQ(run.attempts[0].live_checkpoints, 11);
  EXPECT_EQ(run.attempts[0].cached_checkpoints, 0);
  // The spend the budget sees is only this run's.
  EXPECT_NEAR(ex->run_spent_usd(), tail.cost_usd, 1e-12);

  // flowrunctl show: every row, the first 29 marked copied.
  int copied = 0;
  for (const auto& c : Must(admin->ListCheckpoints("rep"))) {
    EXPECT_EQ(c.status, "completed") << c.key.name;
    EXPECT_EQ(c.copied, c.key.name < "c30") << c.key.name;
    copied += c.copied;
  }
  EXPECT_EQ(copied, 29);
  json term = TerminationMessage(env);
  EXPECT_EQ(term["checkpoints"]["live"], 11);
  EXPECT_EQ(term["checkpoints"]["copied"], 29);
  EXPECT_EQ(term["checkpoints"]["cached"], 0);
  EXPECT_EQ(Must(DecodeTerminationMessage(term.dump())).copied_checkpoints, 29);

  // A run that is no replay says so.
  EXPECT_FALSE(Open("plain")->is_replay());
}

TEST_F(EngineReplay, AnOverrideIsServedAndTheNextCheckpointReceivesIt) {
  MakeSource("src");
  auto admin = Admin();
  ReplayRequest req = Request("rep", "src", {"c30", 1});
  req.output_overrides["c29"] = json{{"edited", "notes"}};
  Must(admin->PrepareReplay(req));
  auto ex = Open("rep");
  auto outputs = RunSteps(*ex, Steps(31));
  EXPECT_EQ(outputs["c29"], (json{{"edited", "notes"}}));
  EXPECT_EQ(received_["c30"], (json{{"edited", "notes"}})) << "the live checkpoint after it got the override";
  EXPECT_EQ(live_calls_, 2);
  EXPECT_EQ(json::parse(Query("SELECT output::text FROM flowrun.checkpoints WHERE run_uid = 'rep' AND name = 'c29'")[0][0]
                            .as<std::string>()),
            (json{{"edited", "notes"}}))
      << "the copied row holds what was served, so a later attempt serves the same";
  EXPECT_EQ(ex->Finish(json("done")), 0);
}

TEST_F(EngineReplay, NewCodeBeforeTheCutRunsLiveAndVanishedCheckpointsAreIgnored) {
  MakeSource("src");
  auto admin = Admin();
  Must(admin->PrepareReplay(Request("rep", "src", {"c30", 1})));
  // The new code asks for "added" before c10 and no longer asks for c15.
  std::vector<Step> steps;
  for (const Step& s : Steps(40)) {
    if (s.name == "c10") steps.push_back({"added", json{{"new", true}}});
    if (s.name != "c15") steps.push_back(s);
  }
  auto ex = Open("rep");
  RunSteps(*ex, steps);
  EXPECT_EQ(live_calls_, 12);  // added + c30..c40
  EXPECT_TRUE(received_.count("added"));
  EXPECT_EQ(ex->stats().copied_checkpoints, 28);
  EXPECT_EQ(ex->Finish(json("done")), 0);
  RunState run = Must(admin->GetRun("rep"));
  EXPECT_EQ(run.replay->copied_checkpoints, 28);
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.checkpoints WHERE run_uid = 'rep' AND name = 'c15'"), 0);
}

TEST_F(EngineReplay, AChangedFingerprintBeforeTheCutFollowsTheDivergencePolicy) {
  MakeSource("src");
  auto admin = Admin();
  std::vector<Step> steps = Steps(40);
  steps[19].inputs = json{{"i", 20}, {"prompt", "v2"}};  // c20's inputs changed

  // fail: the run stops with the divergence outcome, naming the source.
  Must(admin->PrepareReplay(Request("rep-fail", "src", {"c30", 1})));
  {
    auto ex = Open("rep-fail");
    for (int i = 0; i < 19; ++i) RunSteps(*ex, {steps[i]});
    CheckpointKey k = Must(ex->Reserve("c20", CheckpointKind::kStep));
    auto b = ex->Begin(k, steps[19].inputs);
    ASSERT_EQ(b.status().code(), StatusCode::kDataLoss);
    EXPECT_CONTAINS(b.status().message(), "replay's source run src");
    EXPECT_EQ(ex->Finish(json("ignored")), kExitDivergence);
    EXPECT_EQ(live_calls_, 0);
  }
  // rerun: c20 is recomputed live, the rest reused.
  Must(admin->PrepareReplay(Request("rep-rerun", "src", {"c30", 1})));
  live_calls_ = 0;
  received_.clear();
  RunEnvironment env = Env("rep-rerun");
  env.on_divergence = DivergencePolicy::kRerun;
  auto ex = OpenEnv(env);
  RunSteps(*ex, steps);
  EXPECT_EQ(live_calls_, 12);
  EXPECT_TRUE(received_.count("c20"));
  EXPECT_EQ(ex->stats().copied_checkpoints, 28);
  EXPECT_EQ(ex->Finish(json("done")), 0);
  auto cps = Query("SELECT copied FROM flowrun.checkpoints WHERE run_uid = 'rep-rerun' AND name = 'c20'");
  ASSERT_EQ(cps.size(), 1u);
  EXPECT_FALSE(cps[0][0].as<bool>());
}

TEST_F(EngineReplay, TheSourceDeletedAfterPreparationLeavesTheReplayWholeWithItsArtifacts) {
  MakeSource("src");
  auto admin = Admin();
  const std::vector<ArtifactInfo> source_artifacts = Must(admin->ListArtifacts("src"));
  std::map<std::string, std::string> source_bytes;
  for (const auto& a : source_artifacts)
    source_bytes[a.name + "@" + std::to_string(a.version)] = Must(admin->LoadArtifact("src", a.name, a.version)).data;
  Must(admin->PrepareReplay(Request("rep", "src", {"c30", 1})));
  MustOk(admin->DeleteRun("src"));

  auto ex = Open("rep");
  RunSteps(*ex, Steps(40));
  EXPECT_EQ(live_calls_, 11);
  EXPECT_EQ(ex->Finish(json("done")), 0);
  EXPECT_EQ(Must(admin->GetRun("rep")).status, RunStatus::kSucceeded);

  // c05's two versions and c20's one, with the source's versions and bytes;
  // not the artifact saved outside any checkpoint.
  std::vector<ArtifactInfo> arts = Must(admin->ListArtifacts("rep"));
  ASSERT_EQ(arts.size(), 3u);
  for (const auto& a : arts) {
    auto src = std::find_if(source_artifacts.begin(), source_artifacts.end(), [&](const ArtifactInfo& s) {
      return s.name == a.name && s.version == a.version;
    });
    ASSERT_NE(src, source_artifacts.end()) << a.name << " v" << a.version;
    EXPECT_EQ(a.sha256, src->sha256);
    EXPECT_EQ(a.checkpoint, src->checkpoint);
    EXPECT_EQ(Must(admin->LoadArtifact("rep", a.name, a.version)).data,
              source_bytes[a.name + "@" + std::to_string(a.version)]);
  }
  EXPECT_EQ(arts[0].name, "notes-c05");
  EXPECT_EQ(arts[1].version, 2);
  EXPECT_EQ(Must(admin->LoadArtifact("rep", "notes-c05", 0)).data, "five-v2");
}

TEST_F(EngineReplay, ASecondAttemptAfterACrashNeitherCopiesTwiceNorCountsTwice) {
  MakeSource("src");
  auto admin = Admin();
  Must(admin->PrepareReplay(Request("rep", "src", {"c30", 1})));
  {
    // Attempt 1 copies c01..c12, then the process dies (never finishes).
    auto ex = Open("rep", 1);
    RunSteps(*ex, Steps(12));
    EXPECT_EQ(ex->stats().copied_checkpoints, 12);
  }
  const int64_t artifacts_after_crash = Count("SELECT count(*) FROM flowrun.artifacts WHERE run_uid = 'rep'");
  EXPECT_EQ(artifacts_after_crash, 2);  // c05's two versions
  EXPECT_FALSE(Must(admin->GetRun("rep")).replay->cut_reached);
  {
    // Attempt 2 copies on past the cut and dies inside the live tail (after c33).
    auto ex = Open("rep", 2);
    RunSteps(*ex, Steps(33));
    ExecutionStats st = ex->stats();
    EXPECT_EQ(st.cached_checkpoints, 12) << "its own copied rows, served as cached";
    EXPECT_EQ(st.saved.llm_calls, 0) << "serving a copied row again saves nothing";
    EXPECT_EQ(st.copied_checkpoints, 17);
    EXPECT_EQ(st.live_checkpoints, 4);
    EXPECT_EQ(live_calls_, 4);
  }
  EXPECT_TRUE(Must(admin->GetRun("rep")).replay->cut_reached);
  live_calls_ = 0;
  // Attempt 3: c01..c33 are its own rows; the cut is reached again at c30,
  // so c34..c40 run live even though the snapshot has them.
  auto ex = Open("rep", 3);
  RunSteps(*ex, Steps(40));
  EXPECT_EQ(live_calls_, 7);
  EXPECT_EQ(ex->stats().cached_checkpoints, 33);
  EXPECT_EQ(ex->stats().copied_checkpoints, 0);
  EXPECT_EQ(ex->Finish(json("done")), 0);

  RunState run = Must(admin->GetRun("rep"));
  EXPECT_EQ(run.replay->copied_checkpoints, 29);
  const Usage head = SourceUsage(*admin, "src", 1, 29);
  EXPECT_EQ(run.replay->inherited.llm_calls, 29);
  EXPECT_NEAR(run.replay->inherited.cost_usd, head.cost_usd, 1e-12) << "inherited counted once";
  EXPECT_EQ(run.spent.llm_calls, 11);
  EXPECT_EQ(run.saved.llm_calls, 4) << "attempt 3 saved only c30..c33, which this run paid for";
  EXPECT_TRUE(run.replay->cut_reached);
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.artifacts WHERE run_uid = 'rep'"), 3);
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.checkpoints WHERE run_uid = 'rep'"), 40);
}

TEST_F(EngineReplay, ARunThatNeverAsksForTheCutLeavesItUnreached) {
  MakeSource("src");
  auto admin = Admin();
  Must(admin->PrepareReplay(Request("rep", "src", {"c30", 1})));
  auto ex = Open("rep");
  RunSteps(*ex, Steps(25));
  EXPECT_EQ(live_calls_, 0);
  EXPECT_EQ(ex->Finish(json("short")), 0);
  RunState run = Must(admin->GetRun("rep"));
  EXPECT_FALSE(run.replay->cut_reached);
  EXPECT_EQ(run.replay->copied_checkpoints, 25);
  EXPECT_EQ(run.spent.llm_calls, 0);
}

TEST_F(EngineReplay, WaitsBeforeTheCutAreCopiedAndEarlyAnswersAfterItAreTaken) {
  WaitSpec approve;
  approve.question = "Approve?";
  approve.schema = kBool;
  WaitSpec proceed;
  proceed.question = "Proceed?";
  proceed.schema = kBool;
  {
    // The source: c01, wait "approve" (answered by a person), c02, c03.
    auto ex = Open("src");
    RunSteps(*ex, {Step{"c01", std::nullopt}});
    CheckpointKey w = Must(ex->Reserve("approve", CheckpointKind::kWait));
    ASSERT_EQ(Must(ex->ResolveWait(w, approve)).kind, WaitResult::Kind::kPending);
  }
  auto admin = Admin();
  Must(admin->RecordAnswer("src", "approve", true, {}));
  {
    auto ex = Open("src", 2);
    RunSteps(*ex, {Step{"c01", std::nullopt}});
    CheckpointKey w = Must(ex->Reserve("approve", CheckpointKind::kWait));
    ASSERT_EQ(Must(ex->ResolveWait(w, approve)).answer, json(true));
    RunSteps(*ex, {Step{"c02", std::nullopt}, Step{"c03", std::nullopt}});
    EXPECT_EQ(ex->Finish(json("done")), 0);
  }
  // Replay from c03 with an answer for "proceed", a wait the new code asks after the cut.
  ReplayRequest req = Request("rep", "src", {"c03", 1});
  req.answers["proceed"] = false;
  Must(admin->PrepareReplay(req));
  live_calls_ = 0;
  auto ex = Open("rep");
  RunSteps(*ex, {Step{"c01", std::nullopt}});
  CheckpointKey w = Must(ex->Reserve("approve", CheckpointKind::kWait));
  WaitResult copied = Must(ex->ResolveWait(w, approve));
  EXPECT_EQ(copied.kind, WaitResult::Kind::kAnswered);
  EXPECT_EQ(copied.answer, json(true));
  RunSteps(*ex, {Step{"c02", std::nullopt}, Step{"c03", std::nullopt}});
  CheckpointKey p = Must(ex->Reserve("proceed", CheckpointKind::kWait));
  WaitResult early = Must(ex->ResolveWait(p, proceed));
  EXPECT_EQ(early.kind, WaitResult::Kind::kAnswered) << "the run does not stop at the pre-answered wait";
  EXPECT_EQ(early.answer, json(false));
  EXPECT_EQ(live_calls_, 1);  // c03
  EXPECT_EQ(ex->stats().copied_checkpoints, 3);  // c01, approve, c02
  EXPECT_EQ(ex->Finish(json("done")), 0);
  auto rows = Query("SELECT name, kind, copied FROM flowrun.checkpoints WHERE run_uid = 'rep' AND kind = 'wait'"
                    " ORDER BY name");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0][0].as<std::string>(), "approve");
  EXPECT_TRUE(rows[0][2].as<bool>());
  EXPECT_EQ(rows[1][0].as<std::string>(), "proceed");
  EXPECT_FALSE(rows[1][2].as<bool>());
  // The copied wait was never asked in the replay: no open question.
  EXPECT_FALSE(Must(admin->GetRun("rep")).open_wait.has_value());
}

// The store half of serving: CheckpointCopied is one idempotent write, fenced,
// refused for a run that is no replay.
TEST_F(EngineReplay, CheckpointCopiedIsIdempotentFencedAndOnlyForReplays) {
  MakeSource("src");
  auto admin = Admin();
  Must(admin->PrepareReplay(Request("rep", "src", {"c30", 1})));
  auto store = Store();
  ExecutionStart start = Begin(*store, "rep", 1);
  ASSERT_TRUE(start.replay.has_value());
  EXPECT_EQ(start.replay->checkpoints.size(), 40u);
  EXPECT_EQ(start.replay->cut.name, "c30");
  EXPECT_EQ(start.replay->source_run_uid, "src");
  const CachedCheckpoint& c05 = start.replay->checkpoints.at({"c05", 1});
  for (int i = 0; i < 2; ++i)
    MustOk(store->CheckpointCopied({"c05", 1}, CheckpointKind::kStep, c05.fingerprint, c05.output.dump(), c05.usage));
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.checkpoints WHERE run_uid = 'rep' AND copied"), 1);
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.artifacts WHERE run_uid = 'rep'"), 2);
  RunState run = Must(admin->GetRun("rep"));
  EXPECT_EQ(run.replay->copied_checkpoints, 1);
  EXPECT_EQ(run.replay->inherited.llm_calls, 1);
  EXPECT_EQ(run.spent.llm_calls, 0);
  MustOk(store->ReplayCutReached());
  MustOk(store->ReplayCutReached());
  EXPECT_TRUE(Must(admin->GetRun("rep")).replay->cut_reached);

  // The next Begin marks the copied row and takes the fence from this store.
  auto next = Store();
  ExecutionStart again = Begin(*next, "rep", 2);
  EXPECT_TRUE(again.completed.at({"c05", 1}).copied);
  EXPECT_TRUE(again.replay->cut_reached);
  EXPECT_EQ(store->CheckpointCopied({"c06", 1}, CheckpointKind::kStep, "fp", "1", Usage{}).code(),
            StatusCode::kAborted);
  EXPECT_EQ(store->ReplayCutReached().code(), StatusCode::kAborted);

  auto plain = Store();
  ExecutionStart p = Begin(*plain, "plain", 1);
  EXPECT_FALSE(p.replay.has_value());
  EXPECT_EQ(plain->CheckpointCopied({"x", 1}, CheckpointKind::kStep, "fp", "1", Usage{}).code(),
            StatusCode::kFailedPrecondition);
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.checkpoints WHERE run_uid = 'plain'"), 0);
}

// A copy whose acknowledgement is lost (it committed) is settled by writing it
// again: the upsert lands on the same row, the artifacts are not copied twice,
// and the inherited usage stays exact.
TEST_F(EngineReplay, ACopyWhoseAcknowledgementIsLostIsSettledWithoutADuplicate) {
  MakeSource("src");
  auto admin = Admin();
  Must(admin->PrepareReplay(Request("rep", "src", {"c30", 1})));
  auto lost = std::make_shared<std::atomic<int>>(0);
  PostgresOptions o = Options();
  o.fault_injector = [lost](const std::string& statement) {
    if (statement == "checkpoint_copied" && lost->fetch_add(1) == 0) throw pqxx::in_doubt_error("simulated lost ack");
  };
  auto store = Store(o);
  ExecutionStart start = Begin(*store, "rep", 1);
  const CachedCheckpoint& c05 = start.replay->checkpoints.at({"c05", 1});
  MustOk(store->CheckpointCopied({"c05", 1}, CheckpointKind::kStep, c05.fingerprint, c05.output.dump(), c05.usage));
  EXPECT_EQ(lost->load(), 2);  // the write ran again once
  EXPECT_EQ(store->in_doubt_writes_settled(), 1);
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.checkpoints WHERE run_uid = 'rep'"), 1);
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.artifacts WHERE run_uid = 'rep'"), 2);
  RunState run = Must(admin->GetRun("rep"));
  EXPECT_EQ(run.replay->copied_checkpoints, 1);
  EXPECT_EQ(run.replay->inherited.llm_calls, 1);
  EXPECT_EQ(run.replay->inherited.input_tokens, c05.usage.input_tokens);
}

// Artifacts saved inside a copied checkpoint are copied with their versions.
// A version the replay already holds is kept when it has the same bytes and
// content type (a repeat of the copy, e.g. by a second attempt: idempotent)
// and refused when it has other content (the new code saved that name live
// before the copied checkpoint): the copy fails with kAlreadyExists naming
// the artifact and version, writes neither the checkpoint nor any artifact,
// and the execution fails with that message — never a silent drop of the
// source's version nor an overwrite of the replay's.
TEST_F(EngineReplay, CopiedArtifactsClashingWithTheReplaysOwnVersionsAreKeptIfIdenticalElseRefused) {
  MakeSource("src");
  auto admin = Admin();

  // Identical: the replay saved notes-c05 v1 live with the source's bytes first.
  Must(admin->PrepareReplay(Request("same", "src", {"c30", 1})));
  {
    auto ex = Open("same");
    EXPECT_EQ(Must(ex->SaveArtifact("notes-c05", "text/plain", "five-v1", std::nullopt)), 1);
    RunSteps(*ex, Steps(40));
    EXPECT_EQ(ex->stats().copied_checkpoints, 29);
    EXPECT_EQ(ex->Finish(json("done")), 0);
  }
  EXPECT_EQ(Must(admin->GetRun("same")).status, RunStatus::kSucceeded);
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.artifacts WHERE run_uid = 'same'"), 3);  // c05 v1 (kept), v2; c20 v1
  EXPECT_EQ(Must(admin->LoadArtifact("same", "notes-c05", 1)).data, "five-v1");
  EXPECT_EQ(Must(admin->LoadArtifact("same", "notes-c05", 2)).data, "five-v2");

  // A second attempt repeating the copy (a new epoch): the same versions, no error, nothing doubled.
  Must(admin->PrepareReplay(Request("again", "src", {"c30", 1})));
  {
    auto first = Store();
    ExecutionStart start = Begin(*first, "again", 1);
    const CachedCheckpoint& c05 = start.replay->checkpoints.at({"c05", 1});
    MustOk(first->CheckpointCopied({"c05", 1}, CheckpointKind::kStep, c05.fingerprint, c05.output.dump(), c05.usage));
    auto second = Store();
    ExecutionStart start2 = Begin(*second, "again", 2);
    MustOk(second->CheckpointCopied({"c05", 1}, CheckpointKind::kStep, c05.fingerprint, c05.output.dump(), c05.usage));
  }
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.artifacts WHERE run_uid = 'again'"), 2);
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.checkpoints WHERE run_uid = 'again' AND copied"), 1);
  EXPECT_EQ(Must(admin->GetRun("again")).replay->copied_checkpoints, 1);

  // Different: the replay's own notes-c05 v1 is other bytes.
  Must(admin->PrepareReplay(Request("clash", "src", {"c30", 1})));
  live_calls_ = 0;
  auto ex = Open("clash");
  EXPECT_EQ(Must(ex->SaveArtifact("notes-c05", "text/plain", "mine", std::nullopt)), 1);
  RunSteps(*ex, Steps(4));
  CheckpointKey k = Must(ex->Reserve("c05", CheckpointKind::kStep));
  StatusOr<BeginResult> b = ex->Begin(k, json{{"i", 5}});
  ASSERT_FALSE(b.ok()) << "the copy must not succeed silently";
  EXPECT_EQ(b.status().code(), StatusCode::kAlreadyExists) << b.status().ToString();
  EXPECT_NE(b.status().message().find("'notes-c05' version 1"), std::string::npos) << b.status().ToString();
  EXPECT_NE(b.status().message().find("c05#1"), std::string::npos) << b.status().ToString();
  EXPECT_EQ(live_calls_, 0) << "c05 did not run live instead";
  // Nothing of c05 was written; the replay's own version is untouched.
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.checkpoints WHERE run_uid = 'clash' AND name = 'c05'"), 0);
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.artifacts WHERE run_uid = 'clash'"), 1);
  EXPECT_EQ(Must(admin->LoadArtifact("clash", "notes-c05", 1)).data, "mine");
  ASSERT_TRUE(ex->sticky_error().has_value());
  EXPECT_NE(ex->Finish(json("done")), 0);
  RunState run = Must(admin->GetRun("clash"));
  EXPECT_EQ(run.status, RunStatus::kFailed);
  EXPECT_NE(run.error.find("'notes-c05' version 1"), std::string::npos) << run.error;
  EXPECT_EQ(run.replay->copied_checkpoints, 4);
}

}  // namespace
}  // namespace flowrun::store_test
