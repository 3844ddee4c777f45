// The admin view of a run: GetRun's report, cancelling (fences the
// execution, closes its wait) and deleting a run.
#include "store_fixture.h"

namespace flowrun::store_test {
namespace {

class StoreAdmin : public StoreTest {};

// GetRun's spend summaries (status.cost.byModel / topCalls): the models that
// spent most and the most expensive calls, bounded in SQL, in the same one
// statement as the totals, which they add up to.
TEST_F(StoreAdmin, GetRunSummarizesSpendByModelAndTheMostExpensiveCalls) {
  auto admin = Admin();
  CheckpointKey research{"research", 1}, loop2{"loop", 2};
  {
    auto s = Store();
    Begin(*s, "run-sum", 1);
    ASSERT_FALSE(Must(s->CheckpointStarted(research, CheckpointKind::kStep, Fp("research"), 1)));
    ASSERT_FALSE(Must(s->CheckpointStarted(loop2, CheckpointKind::kStep, Fp("loop"), 2)));
    // 8 models: m0 spends 0.8 (one call), ..., m6 0.2; "unpriced" has no price.
    for (int i = 0; i < 7; ++i)
      MustOk(s->RecordLlmCall(i % 2 ? loop2 : research,
                              Priced("m" + std::to_string(i), 100 + i, 10 + i, 0.8 - 0.1 * i, "reported")));
    MustOk(s->RecordLlmCall(research, Priced("unpriced", 5, 5, std::nullopt, "unknown")));
    // Three calls of 6.35e-06 on m0 (a noisy double sum) and the most expensive call, outside any checkpoint.
    for (int i = 0; i < 3; ++i) MustOk(s->RecordLlmCall(research, Priced("m0", 1, 1, 6.35e-06, "reported")));
    MustOk(s->RecordLlmCall(std::nullopt, Priced("m3", 7000, 700, 2.5, "reported")));
    // Two calls of one cost: the older one ranks first.
    MustOk(s->RecordLlmCall(loop2, Priced("m1", 1, 1, 0.9, "reported")));
    MustOk(s->RecordLlmCall(research, Priced("m2", 2, 2, 0.9, "reported")));
  }
  RunState run = Must(admin->GetRun("run-sum"));
  EXPECT_EQ(run.spent.llm_calls, 14);
  EXPECT_EQ(run.spent.unknown_cost_calls, 1);

  ASSERT_EQ(run.top_models.size(), static_cast<size_t>(kRunStateTopModels));
  std::vector<std::string> names;
  for (const ModelUsage& m : run.top_models) names.push_back(m.model);
  // m3: 0.5 + 2.5, m1: 0.7 + 0.9, m2: 0.6 + 0.9, m0: 0.8 + 3 x 6.35e-06, m4: 0.4.
  EXPECT_EQ(names, (std::vector<std::string>{"m3", "m1", "m2", "m0", "m4"}));
  EXPECT_EQ(run.other_models, 3);  // m5, m6 and unpriced
  EXPECT_NEAR(run.top_models[0].usage.cost_usd, 3.0, 1e-12);
  EXPECT_EQ(run.top_models[0].usage.llm_calls, 2);
  EXPECT_EQ(run.top_models[0].usage.input_tokens, 7103);
  EXPECT_EQ(run.top_models[0].usage.output_tokens, 713);
  EXPECT_EQ(run.top_models[3].usage.llm_calls, 4);
  EXPECT_NEAR(run.top_models[3].usage.cost_usd, 0.8 + 1.905e-05, 1e-12);
  int64_t calls = 0;
  for (const ModelUsage& m : run.top_models) calls += m.usage.llm_calls;
  EXPECT_EQ(calls, 2 + 2 + 2 + 4 + 1);

  ASSERT_EQ(run.top_calls.size(), static_cast<size_t>(kRunStateTopCalls));
  EXPECT_FALSE(run.top_calls[0].checkpoint.has_value()) << "the 2.5 call was made outside any checkpoint";
  EXPECT_EQ(run.top_calls[0].model, "m3");
  EXPECT_DOUBLE_EQ(run.top_calls[0].cost_usd, 2.5);
  EXPECT_EQ(run.top_calls[0].input_tokens, 7000);
  EXPECT_EQ(run.top_calls[0].output_tokens, 700);
  EXPECT_EQ(run.top_calls[0].attempt, 1);
  EXPECT_DOUBLE_EQ(run.top_calls[0].latency_ms, 12);
  ASSERT_TRUE(run.top_calls[1].checkpoint.has_value());
  EXPECT_EQ(*run.top_calls[1].checkpoint, loop2);  // m1's 0.9, recorded before m2's
  EXPECT_EQ(run.top_calls[1].model, "m1");
  EXPECT_EQ(run.top_calls[2].model, "m2");
  EXPECT_EQ(*run.top_calls[2].checkpoint, research);

  // A run without calls: no summaries.
  {
    auto s = Store();
    Begin(*s, "run-nocalls", 1);
  }
  RunState none = Must(admin->GetRun("run-nocalls"));
  EXPECT_TRUE(none.top_models.empty());
  EXPECT_EQ(none.other_models, 0);
  EXPECT_TRUE(none.top_calls.empty());
}

TEST_F(StoreAdmin, GetRunReportsStatusAttemptsTotalsAndSaved) {
  auto admin = Admin();
  EXPECT_EQ(admin->GetRun("run-g").status().code(), StatusCode::kNotFound);
  CheckpointKey k{"research", 1};
  TimePoint now = std::chrono::system_clock::now();
  Usage cp_usage;
  cp_usage.llm_calls = 2;
  cp_usage.input_tokens = 100;
  cp_usage.output_tokens = 50;
  cp_usage.cost_usd = 0.2;
  {
    auto s = Store();
    Begin(*s, "run-g", 1, 3.0);
    ASSERT_FALSE(Must(s->CheckpointStarted(k, CheckpointKind::kStep, Fp("research"), 1)));
    MustOk(s->RecordLlmCall(k, Priced("gpt-4o-mini", 60, 30, 0.12, "reported")));
    MustOk(s->RecordLlmCall(k, Priced("gpt-4o-mini", 40, 20, 0.08, "reported")));
    MustOk(s->CheckpointCompleted(k, CheckpointKind::kStep, Fp("research"), R"("notes")", now, now, cp_usage));
    EXPECT_EQ(Must(admin->GetRun("run-g")).status, RunStatus::kRunning);
    FinishRequest f;
    f.outcome = OutcomeKind::kFailed;
    f.error = "checkpoint 'analyze' failed: boom";
    f.live_checkpoints = 1;
    MustOk(s->Finish(f));
  }
  {
    auto s = Store();
    Begin(*s, "run-g", 2);
    ASSERT_EQ(Must(s->ResolveWait(MakeWait("approve", kBool))).kind, WaitResolution::Kind::kPending);
    FinishRequest f;
    f.outcome = OutcomeKind::kWaiting;
    f.open_wait = "approve";
    f.cached_checkpoints = 1;
    f.saved = cp_usage;
    MustOk(s->Finish(f));
  }
  RunState waiting = Must(admin->GetRun("run-g"));
  EXPECT_EQ(waiting.status, RunStatus::kWaiting);
  ASSERT_TRUE(waiting.open_wait.has_value());
  EXPECT_EQ(waiting.open_wait->name, "approve");
  EXPECT_EQ(waiting.error, "");
  ASSERT_TRUE(Must(admin->RecordAnswer("run-g", "approve", true, AnswerOptions{false, "human:z"})).wait_name ==
              "approve");
  {
    auto s = Store();
    Begin(*s, "run-g", 3);
    ASSERT_EQ(Must(s->ResolveWait(MakeWait("approve", kBool))).kind, WaitResolution::Kind::kAnswered);
    FinishRequest f;
    f.outcome = OutcomeKind::kSucceeded;
    f.result = json{{"report", "done"}, {"score", 9}};
    f.cached_checkpoints = 1;
    f.live_checkpoints = 1;
    f.saved = cp_usage;
    MustOk(s->Finish(f));
  }

  RunState run = Must(admin->GetRun("run-g"));
  EXPECT_EQ(run.uid, "run-g");
  EXPECT_EQ(run.namespace_, "team-a");
  EXPECT_EQ(run.name, "run-g-name");
  EXPECT_EQ(run.flow, "research");
  EXPECT_EQ(run.status, RunStatus::kSucceeded);
  EXPECT_EQ(run.epoch, 3);
  EXPECT_EQ(run.attempt, 3);
  ASSERT_TRUE(run.budget_usd.has_value());
  EXPECT_DOUBLE_EQ(*run.budget_usd, 3.0);
  ASSERT_TRUE(run.result.has_value());
  EXPECT_EQ(*run.result, json({{"report", "done"}, {"score", 9}}));
  EXPECT_EQ(run.error, "");
  EXPECT_FALSE(run.open_wait.has_value());
  EXPECT_EQ(run.spent.llm_calls, 2);
  EXPECT_EQ(run.spent.input_tokens, 100);
  EXPECT_NEAR(run.spent.cost_usd, 0.2, 1e-9);
  EXPECT_EQ(run.checkpoints_completed, 2);  // research + the answered wait
  EXPECT_EQ(run.live_checkpoints, 2);
  EXPECT_EQ(run.cached_checkpoints, 2);
  EXPECT_EQ(run.saved.llm_calls, 4);
  EXPECT_NEAR(run.saved.cost_usd, 0.4, 1e-9);

  ASSERT_EQ(run.attempts.size(), 3u);
  const OutcomeKind outcomes[] = {OutcomeKind::kFailed, OutcomeKind::kWaiting, OutcomeKind::kSucceeded};
  for (int i = 0; i < 3; ++i) {
    const AttemptRecord& a = run.attempts[i];
    EXPECT_EQ(a.epoch, i + 1);
    EXPECT_EQ(a.attempt, i + 1);
    EXPECT_EQ(a.outcome, outcomes[i]);
    EXPECT_TRUE(a.finished_at.has_value());
    if (a.finished_at) {
      EXPECT_GE(*a.finished_at, a.started_at);
    }
  }
  EXPECT_EQ(run.attempts[0].error, "checkpoint 'analyze' failed: boom");
  EXPECT_EQ(run.attempts[0].live_checkpoints, 1);
  EXPECT_EQ(run.attempts[1].cached_checkpoints, 1);
  EXPECT_EQ(run.attempts[1].saved.llm_calls, 2);
  EXPECT_NEAR(run.attempts[1].saved.cost_usd, 0.2, 1e-9);
  EXPECT_EQ(run.attempts[2].error, "");
}

TEST_F(StoreAdmin, CancelRunFencesTheExecutionAndRefusesLaterBegins) {
  auto store = Store();
  Begin(*store, "run-cx", 1);
  CheckpointKey k{"step", 1};
  ASSERT_FALSE(Must(store->CheckpointStarted(k, CheckpointKind::kStep, Fp("step"), 1)));
  auto admin = Admin();
  MustOk(admin->CancelRun("run-cx", "stopped by operator"));

  TimePoint now = std::chrono::system_clock::now();
  EXPECT_EQ(store->CheckpointCompleted(k, CheckpointKind::kStep, Fp("step"), "1", now, now, Usage{}).code(),
            StatusCode::kAborted);
  EXPECT_EQ(store->RecordLlmCall(k, Priced("m", 1, 1, 0.1, "reported")).code(), StatusCode::kAborted);
  FinishRequest f;
  f.outcome = OutcomeKind::kSucceeded;
  EXPECT_EQ(store->Finish(f).code(), StatusCode::kAborted);
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.checkpoints WHERE status = 'completed'"), 0);
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.llm_calls"), 0);

  RunState run = Must(admin->GetRun("run-cx"));
  EXPECT_EQ(run.status, RunStatus::kCancelled);
  EXPECT_EQ(run.error, "stopped by operator");

  auto later = Store();
  auto begin = later->Begin(Ident("run-cx"), 2, json::object(), std::nullopt);
  ASSERT_FALSE(begin.ok());
  EXPECT_EQ(begin.status().code(), StatusCode::kFailedPrecondition) << begin.status();
  EXPECT_EQ(Must(admin->GetRun("run-cx")).status, RunStatus::kCancelled);
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.attempts WHERE run_uid = 'run-cx'"), 1);
  auto answer = admin->RecordAnswer("run-cx", "approve", true, AnswerOptions{true, "human:x"});
  EXPECT_EQ(answer.status().code(), StatusCode::kFailedPrecondition);
}

// RunState.open_wait is "the open question of a waiting run". A cancelled run
// refuses answers, so its wait is not open (wait_deadlines_test.cc checks the
// same for a run failed by a wait timeout).
TEST_F(StoreAdmin, CancelledRunShowsNoOpenWait) {
  ASSERT_NO_FATAL_FAILURE(LeaveWaiting("run-cw", MakeWait("approve", kBool)));
  auto admin = Admin();
  ASSERT_TRUE(Must(admin->GetRun("run-cw")).open_wait.has_value());
  MustOk(admin->CancelRun("run-cw", "no longer needed"));
  RunState run = Must(admin->GetRun("run-cw"));
  EXPECT_EQ(run.status, RunStatus::kCancelled);
  EXPECT_FALSE(run.open_wait.has_value()) << "cancelled run still shows open wait '" << run.open_wait->name << "'";
}

TEST_F(StoreAdmin, DeleteRunRemovesEveryRowOfThatRunOnly) {
  // A source for the replay tables: one completed checkpoint with an artifact.
  {
    auto s = Store();
    Begin(*s, "run-src", 1);
    TimePoint now = std::chrono::system_clock::now();
    CheckpointKey k{"a", 1};
    ASSERT_FALSE(Must(s->CheckpointStarted(k, CheckpointKind::kStep, Fp("a"), 1)));
    ASSERT_EQ(Must(s->SaveArtifact("art", "text/plain", "x", k)), 1);
    MustOk(s->CheckpointCompleted(k, CheckpointKind::kStep, Fp("a"), "1", now, now, Usage{}));
  }
  auto populate = [&](const std::string& uid) {
    {
      ReplayRequest r;
      r.run_uid = uid;
      r.source_run_uid = "run-src";
      r.cut = {"b", 1};
      Must(Admin()->PrepareReplay(r), "PrepareReplay");
    }
    auto s = Store();
    Begin(*s, uid, 1);
    TimePoint now = std::chrono::system_clock::now();
    CheckpointKey k{"a", 1}, f{"b", 1};
    ASSERT_FALSE(Must(s->CheckpointStarted(k, CheckpointKind::kStep, Fp("a"), 1)));
    MustOk(s->CheckpointCompleted(k, CheckpointKind::kStep, Fp("a"), "1", now, now, Usage{}));
    ASSERT_FALSE(Must(s->CheckpointStarted(f, CheckpointKind::kStep, Fp("b"), 1)));
    MustOk(s->CheckpointFailed(f, 1, true, "boom"));
    MustOk(s->RecordLlmCall(k, Priced("m", 1, 1, 0.1, "reported")));
    ASSERT_EQ(Must(s->SaveArtifact("art", "text/plain", "x", k)), 1);
    ASSERT_EQ(Must(s->ResolveWait(MakeWait("w", kBool))).kind, WaitResolution::Kind::kPending);
    FinishRequest fin;
    fin.outcome = OutcomeKind::kWaiting;
    fin.open_wait = "w";
    MustOk(s->Finish(fin));
  };
  populate("run-del");
  populate("run-keep");
  auto before_keep = RowsPerTable("run-keep");
  ASSERT_GE(before_keep.size(), 7u);
  for (const auto& [table, n] : RowsPerTable("run-del")) EXPECT_GT(n, 0) << table << " was not populated";

  auto admin = Admin();
  MustOk(admin->DeleteRun("run-del"));
  for (const auto& [table, n] : RowsPerTable("run-del")) EXPECT_EQ(n, 0) << "rows left in flowrun." << table;
  EXPECT_EQ(RowsPerTable("run-keep"), before_keep);
  EXPECT_EQ(admin->GetRun("run-del").status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(admin->GetRun("run-keep").ok());
  EXPECT_TRUE(Must(admin->ListArtifacts("run-del")).empty());

  MustOk(admin->DeleteRun("run-del"));  // again: fine
  MustOk(admin->DeleteRun("never-existed"));
  EXPECT_EQ(RowsPerTable("run-keep"), before_keep);
}

}  // namespace
}  // namespace flowrun::store_test
