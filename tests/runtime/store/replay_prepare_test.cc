// Replay, the store half (issue 14, flowrun/replay.h): PrepareReplay snapshots
// the source's completed checkpoints and the artifacts saved inside them,
// stores the cut and overrides, records the answers as early answers, is
// idempotent, survives the source's deletion, and refuses what it must.
#include "store_fixture.h"

namespace flowrun::store_test {
namespace {

class StoreReplayPrepare : public StoreTest {
 protected:
  // A finished source: "a" and "b" completed (b saved an artifact inside it),
  // "c" failed, one artifact saved outside any checkpoint.
  void MakeSource(const std::string& uid) {
    auto s = Store();
    Begin(*s, uid, 1);
    TimePoint now = std::chrono::system_clock::now();
    Usage ua;
    ua.llm_calls = 2;
    ua.input_tokens = 100;
    ua.output_tokens = 10;
    ua.cost_usd = 0.25;
    CheckpointKey a{"a", 1}, b{"b", 1}, c{"c", 1};
    ASSERT_FALSE(Must(s->CheckpointStarted(a, CheckpointKind::kStep, Fp("a"), 1)));
    MustOk(s->CheckpointCompleted(a, CheckpointKind::kStep, Fp("a"), R"({"x":1})", now, now, ua));
    ASSERT_FALSE(Must(s->CheckpointStarted(b, CheckpointKind::kStep, Fp("b"), 1)));
    ASSERT_EQ(Must(s->SaveArtifact("report", "text/plain", "v1", b)), 1);
    ASSERT_EQ(Must(s->SaveArtifact("report", "text/plain", "v2", b)), 2);
    MustOk(s->CheckpointCompleted(b, CheckpointKind::kStep, Fp("b"), R"("bee")", now, now, Usage{}));
    ASSERT_EQ(Must(s->SaveArtifact("loose", "text/plain", "outside", std::nullopt)), 1);
    ASSERT_FALSE(Must(s->CheckpointStarted(c, CheckpointKind::kStep, Fp("c"), 1)));
    MustOk(s->CheckpointFailed(c, 1, true, "boom"));
    FinishRequest f;
    f.outcome = OutcomeKind::kFailed;
    f.reason = FailureReason::kFlowFailed;
    f.error = "boom";
    MustOk(s->Finish(f));
  }

  ReplayRequest Request(const std::string& uid, const std::string& source) {
    ReplayRequest r;
    r.run_uid = uid;
    r.namespace_ = "team-a";
    r.name = uid + "-name";
    r.flow = "research";
    r.source_run_uid = source;
    r.source_name = source + "-name";
    r.cut = {"b", 1};
    r.output_overrides["a"] = json{{"x", 42}};
    r.answers["approve"] = true;
    return r;
  }

  int64_t Rows(const std::string& table, const std::string& uid) {
    return Count("SELECT count(*) FROM flowrun." + table + " WHERE run_uid = $1", uid);
  }
};

TEST_F(StoreReplayPrepare, SnapshotsTheSourcesCompletedCheckpointsAndTheirArtifacts) {
  ASSERT_NO_FATAL_FAILURE(MakeSource("src"));
  auto admin = Admin();
  ReplayInfo info = Must(admin->PrepareReplay(Request("rep", "src")));
  EXPECT_EQ(info.source_run_uid, "src");
  EXPECT_EQ(info.source_name, "src-name");
  EXPECT_EQ(info.cut.name, "b");
  EXPECT_EQ(info.cut.occurrence, 1);
  EXPECT_EQ(info.snapshot_checkpoints, 2);
  EXPECT_EQ(info.copied_checkpoints, 0);
  EXPECT_EQ(info.inherited.llm_calls, 0);
  EXPECT_FALSE(info.cut_reached);
  ASSERT_EQ(info.output_overrides.size(), 1u);
  EXPECT_EQ(info.output_overrides.at("a"), (json{{"x", 42}}));
  EXPECT_GT(info.prepared_at, TimePoint{});

  // The snapshot: the completed rows only, with outputs, fingerprints, usage.
  pqxx::result cps = Query(
      "SELECT name, occurrence, kind, fingerprint, output::text, attempt, llm_calls, input_tokens, output_tokens,"
      " cost_usd FROM flowrun.replay_checkpoints WHERE run_uid = 'rep' ORDER BY name");
  ASSERT_EQ(cps.size(), 2u);
  EXPECT_EQ(cps[0][0].as<std::string>(), "a");
  EXPECT_EQ(cps[0][2].as<std::string>(), "step");
  EXPECT_EQ(cps[0][3].as<std::string>(), Fp("a"));
  EXPECT_EQ(json::parse(cps[0][4].as<std::string>()), (json{{"x", 1}}));
  EXPECT_EQ(cps[0][5].as<int>(), 1);
  EXPECT_EQ(cps[0][6].as<int64_t>(), 2);
  EXPECT_EQ(cps[0][7].as<int64_t>(), 100);
  EXPECT_EQ(cps[0][8].as<int64_t>(), 10);
  EXPECT_DOUBLE_EQ(cps[0][9].as<double>(), 0.25);
  EXPECT_EQ(cps[1][0].as<std::string>(), "b");
  EXPECT_EQ(json::parse(cps[1][4].as<std::string>()), json("bee"));
  // The artifacts saved inside b, both versions; not the one outside checkpoints.
  pqxx::result arts = Query("SELECT name, version, checkpoint, convert_from(data, 'UTF8') FROM"
                            " flowrun.replay_artifacts WHERE run_uid = 'rep' ORDER BY name, version");
  ASSERT_EQ(arts.size(), 2u);
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(arts[i][0].as<std::string>(), "report");
    EXPECT_EQ(arts[i][1].as<int>(), i + 1);
    EXPECT_EQ(arts[i][2].as<std::string>(), "b#1");
    EXPECT_EQ(arts[i][3].as<std::string>(), "v" + std::to_string(i + 1));
  }

  // The replay's run row: created with the request's identity, not started.
  RunState run = Must(admin->GetRun("rep"));
  EXPECT_EQ(run.status, RunStatus::kPending);
  EXPECT_EQ(run.namespace_, "team-a");
  EXPECT_EQ(run.name, "rep-name");
  EXPECT_EQ(run.flow, "research");
  EXPECT_TRUE(run.attempts.empty());
  ASSERT_TRUE(run.replay.has_value());
  EXPECT_EQ(run.replay->source_run_uid, "src");
  EXPECT_EQ(run.replay->snapshot_checkpoints, 2);
  EXPECT_EQ(run.replay->copied_checkpoints, 0);
  EXPECT_EQ(run.replay->cut.name, "b");
  EXPECT_EQ(run.replay->output_overrides.at("a"), (json{{"x", 42}}));
  EXPECT_EQ(run.spent.llm_calls, 0);  // nothing spent, nothing copied yet
  EXPECT_TRUE(Must(admin->ListCheckpoints("rep")).empty());
  // The source is only read.
  EXPECT_FALSE(Must(admin->GetRun("src")).replay.has_value());
  for (const auto& c : Must(admin->ListCheckpoints("src"))) EXPECT_FALSE(c.copied) << c.key.name;

  // The answer is an early answer, as RecordAnswer(allow_early) stores it.
  pqxx::result w = Query("SELECT name, occurrence, question IS NULL, answer::text, answered_by FROM flowrun.waits"
                         " WHERE run_uid = 'rep'");
  ASSERT_EQ(w.size(), 1u);
  EXPECT_EQ(w[0][0].as<std::string>(), "approve");
  EXPECT_EQ(w[0][1].as<int>(), 1);
  EXPECT_TRUE(w[0][2].as<bool>());
  EXPECT_EQ(json::parse(w[0][3].as<std::string>()), json(true));
  EXPECT_EQ(w[0][4].as<std::string>(), "replay:src-name");
  // ... and a later answer for the same wait finds it: the first answer wins.
  EXPECT_EQ(admin->RecordAnswer("rep", "approve", false, {}).status().code(), StatusCode::kAlreadyExists);
  // The replay's execution consumes it when it asks.
  auto store = Store();
  Begin(*store, "rep", 1);
  WaitResolution res = Must(store->ResolveWait(MakeWait("approve", kBool)));
  EXPECT_EQ(res.kind, WaitResolution::Kind::kAnswered);
  EXPECT_EQ(res.answer, json(true));
}

TEST_F(StoreReplayPrepare, PreparingTwiceChangesNothing) {
  ASSERT_NO_FATAL_FAILURE(MakeSource("src"));
  auto admin = Admin();
  ReplayInfo first = Must(admin->PrepareReplay(Request("rep", "src")));
  auto counts = [&] {
    return std::vector<int64_t>{Rows("replays", "rep"), Rows("replay_checkpoints", "rep"),
                                Rows("replay_artifacts", "rep"), Rows("waits", "rep"), Rows("runs", "rep")};
  };
  std::vector<int64_t> before = counts();
  EXPECT_EQ(before, (std::vector<int64_t>{1, 2, 2, 1, 1}));
  ReplayInfo again = Must(admin->PrepareReplay(Request("rep", "src")));
  EXPECT_EQ(counts(), before);
  EXPECT_EQ(again.prepared_at, first.prepared_at);
  EXPECT_EQ(again.snapshot_checkpoints, first.snapshot_checkpoints);
  EXPECT_EQ(again.output_overrides, first.output_overrides);
  EXPECT_EQ(again.cut.name, first.cut.name);
  // Even after the replay's first attempt began (a controller repeating it late).
  auto store = Store();
  Begin(*store, "rep", 1);
  EXPECT_EQ(Must(admin->PrepareReplay(Request("rep", "src"))).prepared_at, first.prepared_at);
  EXPECT_EQ(counts(), before);
}

TEST_F(StoreReplayPrepare, DeletingTheSourceKeepsTheSnapshot) {
  ASSERT_NO_FATAL_FAILURE(MakeSource("src"));
  auto admin = Admin();
  Must(admin->PrepareReplay(Request("rep", "src")));
  MustOk(admin->DeleteRun("src"));
  EXPECT_EQ(admin->GetRun("src").status().code(), StatusCode::kNotFound);
  RunState run = Must(admin->GetRun("rep"));
  ASSERT_TRUE(run.replay.has_value());
  EXPECT_EQ(run.replay->source_run_uid, "src");
  EXPECT_EQ(run.replay->snapshot_checkpoints, 2);
  EXPECT_EQ(Rows("replay_checkpoints", "rep"), 2);
  EXPECT_EQ(Rows("replay_artifacts", "rep"), 2);
  // Deleting the replay removes its snapshot.
  MustOk(admin->DeleteRun("rep"));
  for (const char* t : {"replays", "replay_checkpoints", "replay_artifacts"}) EXPECT_EQ(Rows(t, "rep"), 0) << t;
}

TEST_F(StoreReplayPrepare, RefusesWhatItMustAndWritesNothing) {
  ASSERT_NO_FATAL_FAILURE(MakeSource("src"));
  ASSERT_NO_FATAL_FAILURE(MakeSource("other"));
  auto admin = Admin();
  auto nothing_written = [&](const std::string& uid) {
    for (const char* t : {"replays", "replay_checkpoints", "replay_artifacts", "waits"})
      EXPECT_EQ(Rows(t, uid), 0) << t << " of " << uid;
  };
  // No source row.
  EXPECT_EQ(admin->PrepareReplay(Request("rep-nf", "missing")).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(Rows("runs", "rep-nf"), 0);
  nothing_written("rep-nf");
  // An override naming a checkpoint the source never completed (c failed).
  ReplayRequest bad = Request("rep-ov", "src");
  bad.output_overrides["c"] = 1;
  Status st = admin->PrepareReplay(bad).status();
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_CONTAINS(st.message(), "'c'");
  nothing_written("rep-ov");
  EXPECT_EQ(Rows("runs", "rep-ov"), 0);
  // Too large an override, too large an answer.
  const std::string big(256 * 1024, 'x');
  ReplayRequest large = Request("rep-big", "src");
  large.output_overrides["a"] = big;
  EXPECT_EQ(admin->PrepareReplay(large).status().code(), StatusCode::kInvalidArgument);
  large = Request("rep-big", "src");
  large.answers["approve"] = big;
  EXPECT_EQ(admin->PrepareReplay(large).status().code(), StatusCode::kInvalidArgument);
  nothing_written("rep-big");
  // A run that already ran is not a replay.
  EXPECT_EQ(admin->PrepareReplay(Request("other", "src")).status().code(), StatusCode::kAlreadyExists);
  nothing_written("other");
  // A replay of another source.
  Must(admin->PrepareReplay(Request("rep", "src")));
  st = admin->PrepareReplay(Request("rep", "other")).status();
  EXPECT_EQ(st.code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(Must(admin->GetRun("rep")).replay->source_run_uid, "src");
  // Itself.
  EXPECT_EQ(admin->PrepareReplay(Request("src", "src")).status().code(), StatusCode::kInvalidArgument);
  // A run row without attempts (a budget set before the first attempt) may become a replay.
  MustOk(admin->SetBudget("rep-budget", 2.0));
  ReplayInfo info = Must(admin->PrepareReplay(Request("rep-budget", "src")));
  EXPECT_EQ(info.snapshot_checkpoints, 2);
  EXPECT_EQ(*Must(admin->GetRun("rep-budget")).budget_usd, 2.0);
}

}  // namespace
}  // namespace flowrun::store_test
