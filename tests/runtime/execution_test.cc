// The Execution engine (flowrun/execution.h) in-process against a real
// PostgreSQL: what both C++ Flow and the Python SDK rely on. Identities,
// per-checkpoint LLM usage under concurrency, sticky errors, started LLM
// calls, suspension and the end of an execution — each checked against the
// tables themselves.
#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

#include "engine_fixture.h"

namespace flowrun::store_test {
namespace {

TEST_F(EngineTest, ReserveTakesOccurrencesInCallOrderWhateverFinishesFirst) {
  {
    auto ex = Open("order-1");
    std::vector<CheckpointKey> keys;
    for (int i = 0; i < 3; ++i) keys.push_back(Must(ex->Reserve("search", CheckpointKind::kStep)));
    ASSERT_EQ(keys[0], (CheckpointKey{"search", 1}));
    ASSERT_EQ(keys[2], (CheckpointKey{"search", 3}));
    for (const auto& k : keys) ASSERT_FALSE(Must(ex->Begin(k, std::nullopt)).cached);
    // The bodies finish in reverse order; each output belongs to its reservation.
    for (int i = 2; i >= 0; --i) {
      Must(ex->TryStarted(keys[i], 1));
      Must(ex->Complete(keys[i], json("q" + std::to_string(i + 1))));
    }
    EXPECT_EQ(ex->Finish(json{{"ok", true}}), 0);
  }
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.checkpoints WHERE run_uid = 'order-1' AND name = 'search'"
                  " AND output = to_jsonb('q' || occurrence::text)"),
            3);
  auto ex = Open("order-1", 2);
  for (int i = 1; i <= 3; ++i) {
    CheckpointKey k = Must(ex->Reserve("search", CheckpointKind::kStep));
    BeginResult b = Must(ex->Begin(k, std::nullopt));
    ASSERT_TRUE(b.cached) << i;
    EXPECT_EQ(b.output, json("q" + std::to_string(i)));
  }
  EXPECT_EQ(ex->stats().cached_checkpoints, 3);
}

TEST_F(EngineTest, AKeyGivesAnOrderIndependentIdentity) {
  {
    auto ex = Open("keys-1");
    EXPECT_EQ(Must(ex->Reserve("search", CheckpointKind::kStep, "llamas")), (CheckpointKey{"search[llamas]", 1}));
    EXPECT_EQ(Must(ex->Reserve("search", CheckpointKind::kStep, "alpacas")), (CheckpointKey{"search[alpacas]", 1}));
    // The plain name counts on its own; the same key again is its second occurrence.
    EXPECT_EQ(Must(ex->Reserve("search", CheckpointKind::kStep)), (CheckpointKey{"search", 1}));
    EXPECT_EQ(Must(ex->Reserve("search", CheckpointKind::kStep, "llamas")), (CheckpointKey{"search[llamas]", 2}));
    auto too_long = ex->Reserve("search", CheckpointKind::kStep, std::string(300, 'k'));
    EXPECT_EQ(too_long.status().code(), StatusCode::kInvalidArgument);
    EXPECT_CONTAINS(too_long.status().message(), "shorter key");
    EXPECT_FALSE(ex->sticky_error().has_value()) << "bad input is not sticky";
  }
  {
    auto ex = Open("keys-2");
    Checkpoint(*ex, "search", "about llamas", "llamas");
    Checkpoint(*ex, "search", "about alpacas", "alpacas");
    EXPECT_EQ(ex->Finish(json(nullptr)), 0);
  }
  // The next attempt fans out in the other order: each key finds its own output.
  auto ex = Open("keys-2", 2);
  EXPECT_EQ(Checkpoint(*ex, "search", "recomputed", "alpacas"), json("about alpacas"));
  EXPECT_EQ(Checkpoint(*ex, "search", "recomputed", "llamas"), json("about llamas"));
  EXPECT_EQ(ex->stats().cached_checkpoints, 2);
  EXPECT_EQ(ex->stats().live_checkpoints, 0);
}

TEST_F(EngineTest, ConcurrentBodiesAttributeTheirLlmCallsToTheirOwnCheckpoint) {
  constexpr int kThreads = 6, kCalls = 8;
  {
    auto ex = Open("threads-1");
    std::vector<CheckpointKey> keys;
    for (int t = 0; t < kThreads; ++t) {
      keys.push_back(Must(ex->Reserve("body-" + std::to_string(t), CheckpointKind::kStep)));
      ASSERT_FALSE(Must(ex->Begin(keys.back(), json{{"t", t}})).cached);
      Must(ex->TryStarted(keys.back(), 1));
    }
    std::atomic<int> go{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        go.fetch_add(1);
        while (go.load() < kThreads) std::this_thread::yield();  // all start together
        for (int i = 0; i < kCalls; ++i) {
          // Thread t's calls have (t + 1) * 100 input tokens: attribution is checkable.
          LlmCallStart s = Must(ex->BeforeLlmCall(keys[t], "gpt-4o-mini", 10));
          ASSERT_FALSE(s.suspension.has_value());
          MustOk(ex->FinishLlmCall(s.call_id, Call((t + 1) * 100, 1)));
          MustOk(ex->RecordLlmCall(keys[t], Call((t + 1) * 100, 1)));
        }
        Must(ex->Complete(keys[t], json{{"thread", t}}));
      });
    }
    for (auto& th : threads) th.join();
    EXPECT_EQ(ex->stats().spent_here.llm_calls, kThreads * kCalls * 2);
    EXPECT_EQ(ex->Finish(json(nullptr)), 0);
  }
  for (int t = 0; t < kThreads; ++t) {
    std::string name = "body-" + std::to_string(t);
    pqxx::result r = Query("SELECT llm_calls, input_tokens FROM flowrun.checkpoints WHERE run_uid = 'threads-1'"
                           " AND name = $1 AND status = 'completed'", name);
    ASSERT_EQ(r.size(), 1u) << name;
    EXPECT_EQ(r[0][0].as<int64_t>(), 2 * kCalls) << name;
    EXPECT_EQ(r[0][1].as<int64_t>(), 2 * kCalls * (t + 1) * 100) << name;
    EXPECT_EQ(Count("SELECT count(*) FROM flowrun.llm_calls WHERE run_uid = 'threads-1' AND checkpoint_name = $1"
                    " AND input_tokens = $2 AND state = 'completed'",
                    name, (t + 1) * 100),
              2 * kCalls);
  }
}

// The same through C++ Flow: bodies on several threads, LLM calls recorded
// from inside them, each lands on its own checkpoint.
TEST_F(EngineTest, FlowBodiesOnSeveralThreadsKeepTheirOwnUsage) {
  constexpr int kThreads = 4;
  auto ex = Open("flow-threads");
  Flow flow(*ex);
  std::vector<std::thread> threads;
  std::atomic<int> inside{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      flow.checkpoint("work-" + std::to_string(t), [&] {
        inside.fetch_add(1);
        while (inside.load() < kThreads) std::this_thread::yield();  // every body is open at once
        for (int i = 0; i < 5; ++i) flow.record_llm_call(Call(t + 1, 0));
        return t;
      });
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(ex->Finish(json(nullptr)), 0);
  for (int t = 0; t < kThreads; ++t)
    EXPECT_EQ(Count("SELECT input_tokens FROM flowrun.checkpoints WHERE run_uid = 'flow-threads' AND name = $1",
                    "work-" + std::to_string(t)),
              5 * (t + 1));
}

TEST_F(EngineTest, AFencedErrorIsStickyEvenWhenTheFlowCatchesIt) {
  RunEnvironment env;
  auto ex = Open("sticky-1", 1, &env);
  Flow flow(*ex);
  flow.checkpoint("before", [] { return 1; });
  auto newer = Store();
  Begin(*newer, "sticky-1", 2);  // a newer execution takes the fence

  bool caught = false;
  try {
    flow.checkpoint("after", [] { return 2; });
  } catch (const FencedError& e) {
    caught = true;  // an author's catch-all
  }
  ASSERT_TRUE(caught);
  std::optional<Status> sticky = ex->sticky_error();
  ASSERT_TRUE(sticky.has_value());
  EXPECT_EQ(sticky->code(), StatusCode::kAborted);
  // Every later call fails the same way, whatever it is.
  EXPECT_THROW(flow.checkpoint("later", [] { return 3; }), FencedError);
  EXPECT_THROW(flow.save_artifact("a", json(1)), FencedError);
  EXPECT_THROW(flow.record_llm_call(Call(1, 1)), FencedError);
  auto r = ex->Reserve("x", CheckpointKind::kStep);
  EXPECT_EQ(r.status().code(), StatusCode::kAborted);
  EXPECT_EQ(r.status().message(), sticky->message());
  // The flow "succeeds" anyway: the outcome stays fenced, nothing is written.
  EXPECT_EQ(ex->Finish(json{{"pretend", "success"}}), kExitFenced);
  EXPECT_EQ(TerminationMessage(env)["outcome"], "fenced");
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.checkpoints WHERE run_uid = 'sticky-1' AND name <> 'before'"), 0);
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.runs WHERE run_uid = 'sticky-1' AND result IS NOT NULL"), 0);
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.attempts WHERE run_uid = 'sticky-1' AND epoch = 1"
                  " AND outcome = 'running'"),
            1)
      << "a fenced execution records nothing, its outcome included";
}

TEST_F(EngineTest, DivergenceIsStickyAndEndsWithTheDivergenceCode) {
  {
    auto ex = Open("div-1");
    CheckpointKey k = Must(ex->Reserve("plan", CheckpointKind::kStep));
    ASSERT_FALSE(Must(ex->Begin(k, json{{"variant", "a"}})).cached);
    Must(ex->TryStarted(k, 1));
    Must(ex->Complete(k, json("plan a")));
    EXPECT_EQ(ex->Finish(json(nullptr)), 0);
  }
  RunEnvironment env;
  auto ex = Open("div-1", 2, &env);
  CheckpointKey k = Must(ex->Reserve("plan", CheckpointKind::kStep));
  auto b = ex->Begin(k, json{{"variant", "b"}});
  ASSERT_EQ(b.status().code(), StatusCode::kDataLoss);
  EXPECT_CONTAINS(b.status().message(), "'plan'");
  EXPECT_EQ(ex->Reserve("next", CheckpointKind::kStep).status().code(), StatusCode::kDataLoss);
  EXPECT_EQ(ex->FinishWithError(FlowEndReason::kFlowFailed, "the driver says something else"), kExitDivergence);
  EXPECT_EQ(TerminationMessage(env)["outcome"], "divergence");
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.checkpoints WHERE run_uid = 'div-1' AND output = '\"plan a\"'"), 1)
      << "nothing overwritten";
}

TEST_F(EngineTest, CompleteReturnsCanonicalJsonAndRefusesWhatIsNotJson) {
  auto ex = Open("canon-1");
  CheckpointKey k = Must(ex->Reserve("step", CheckpointKind::kStep));
  ASSERT_FALSE(Must(ex->Begin(k, std::nullopt)).cached);
  Must(ex->TryStarted(k, 1));
  auto bad = ex->Complete(k, std::string_view("{not json"));
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(ex->sticky_error().has_value());
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.checkpoints WHERE run_uid = 'canon-1' AND status = 'completed'"), 0);
  EXPECT_EQ(Must(ex->Complete(k, std::string_view(R"({"b": 1, "a": [true, null]})"))), R"({"a":[true,null],"b":1})");
  EXPECT_EQ(Query("SELECT output::text FROM flowrun.checkpoints WHERE run_uid = 'canon-1'")[0][0].as<std::string>(),
            R"({"a": [true, null], "b": 1})");
  // A completed key cannot complete twice; a key never reserved is refused.
  EXPECT_EQ(ex->Complete(k, json(2)).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ex->Begin(CheckpointKey{"ghost", 1}, std::nullopt).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(EngineTest, AStartedCallThatNeverCompletesIsCountedApart) {
  {
    auto ex = Open("unfinished-1");
    CheckpointKey k = Must(ex->Reserve("research", CheckpointKind::kStep));
    ASSERT_FALSE(Must(ex->Begin(k, std::nullopt)).cached);
    Must(ex->TryStarted(k, 1));
    LlmCallStart done = Must(ex->BeforeLlmCall(k, "gpt-4o-mini", 250));
    MustOk(ex->FinishLlmCall(done.call_id, Call(1000, 1000)));
    LlmCallStart failed = Must(ex->BeforeLlmCall(k, "gpt-4o-mini", 250));
    MustOk(ex->FailLlmCall(failed.call_id, "HTTP 500"));
    Must(ex->BeforeLlmCall(k, "gpt-4o-mini", 250));  // the process "dies" during this one
  }
  pqxx::result rows = Query("SELECT state, estimated_input_tokens, cost_usd IS NULL, checkpoint_name, error"
                            " FROM flowrun.llm_calls WHERE run_uid = 'unfinished-1' ORDER BY seq");
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0][0].as<std::string>(), "completed");
  EXPECT_EQ(rows[1][0].as<std::string>(), "failed");
  EXPECT_EQ(rows[1][4].as<std::string>(), "HTTP 500");
  EXPECT_EQ(rows[2][0].as<std::string>(), "started");
  EXPECT_EQ(rows[2][1].as<int64_t>(), 250);
  EXPECT_TRUE(rows[2][2].as<bool>());
  EXPECT_EQ(rows[2][3].as<std::string>(), "research");

  RunState s = Must(Admin()->GetRun("unfinished-1"));
  EXPECT_EQ(s.spent.llm_calls, 1);
  EXPECT_EQ(s.spent.unfinished_calls, 1);
  EXPECT_EQ(s.spent.unknown_cost_calls, 0);
  EXPECT_DOUBLE_EQ(s.spent.cost_usd, 0.01);
  auto models = Must(Admin()->UsageByModel("unfinished-1"));
  ASSERT_EQ(models.size(), 1u);
  EXPECT_EQ(models[0].usage.llm_calls, 1);
  EXPECT_EQ(models[0].usage.unfinished_calls, 1);
  // The database refuses a cost on a call that did not complete.
  EXPECT_THROW(Query("UPDATE flowrun.llm_calls SET cost_usd = 1 WHERE run_uid = 'unfinished-1' AND state = 'started'"),
               pqxx::check_violation);
}

TEST_F(EngineTest, AnExhaustedBudgetSuspendsBeforeTheCallAndRecordsNoRow) {
  RunEnvironment env;
  auto ex = Open("budget-1", 1, &env, /*budget=*/0.0);
  CheckpointKey k = Must(ex->Reserve("research", CheckpointKind::kStep));
  ASSERT_FALSE(Must(ex->Begin(k, std::nullopt)).cached);
  Must(ex->TryStarted(k, 1));
  LlmCallStart s = Must(ex->BeforeLlmCall(k, "gpt-4o-mini", 10));
  ASSERT_TRUE(s.suspension.has_value());
  EXPECT_EQ(s.call_id, 0);
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.llm_calls WHERE run_uid = 'budget-1'"), 0);
  EXPECT_EQ(ex->Suspend(*s.suspension), 0);
  ASSERT_EQ(exits_, std::vector<int>{0}) << "the exit handler ran with the suspension's code";
  EXPECT_EQ(TerminationMessage(env)["outcome"], "budget_exceeded");
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.runs WHERE run_uid = 'budget-1' AND status = 'budget_exceeded'"), 1);
  // The open try was stopped cleanly: failed, not final, not an interruption.
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.checkpoint_failures WHERE run_uid = 'budget-1' AND NOT final"
                  " AND message LIKE 'suspended: %'"),
            1);
  // Nothing is recorded after the end.
  EXPECT_EQ(ex->Reserve("later", CheckpointKind::kStep).status().code(), StatusCode::kFailedPrecondition);
}

TEST_F(EngineTest, APendingWaitSuspendsWithTheWaitingOutcome) {
  RunEnvironment env;
  auto ex = Open("wait-1", 1, &env);
  CheckpointKey k = Must(ex->Reserve("approve", CheckpointKind::kWait));
  WaitSpec spec;
  spec.question = "Approve?";
  spec.schema = kBool;
  WaitResult w = Must(ex->ResolveWait(k, spec));
  ASSERT_EQ(w.kind, WaitResult::Kind::kPending);
  ASSERT_TRUE(w.suspension.has_value());
  EXPECT_EQ(ex->Suspend(*w.suspension), 0);
  json term = TerminationMessage(env);
  EXPECT_EQ(term["outcome"], "waiting");
  EXPECT_EQ(term["wait"]["name"], "approve");
  // A Begin on a wait key, or a default policy without default, is misuse, not sticky.
  auto again = Open("wait-2");
  CheckpointKey w2 = Must(again->Reserve("approve", CheckpointKind::kWait));
  EXPECT_EQ(again->Begin(w2, std::nullopt).status().code(), StatusCode::kInvalidArgument);
  spec.on_timeout = OnTimeout::kUseDefault;
  EXPECT_EQ(again->ResolveWait(w2, spec).status().code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(again->sticky_error().has_value());
}

// A driver that refuses the configuration after opening (the Python SDK
// binding FLOWRUN_PARAMETERS to the flow's signature) ends with config_error.
TEST_F(EngineTest, ADriversConfigurationErrorEndsWithExitTwo) {
  RunEnvironment env;
  auto ex = Open("config-1", 1, &env);
  EXPECT_EQ(ex->FinishWithError(FlowEndReason::kConfigError, "parameter 'topic' is missing"), kExitConfigError);
  EXPECT_EQ(ex->FinishWithError(FlowEndReason::kFlowFailed, "later"), kExitConfigError) << "idempotent";
  json term = TerminationMessage(env);
  EXPECT_EQ(term["outcome"], "config_error");
  EXPECT_CONTAINS(term["error"].get<std::string>(), "'topic'");
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.attempts WHERE run_uid = 'config-1' AND outcome = 'config_error'"), 1);
}

// The hook a SIGTERM watcher uses: claimed once, before the outcome is recorded.
TEST_F(EngineTest, TheOutcomeIsClaimedOnceBeforeItIsRecorded) {
  stores_.push_back(Store());
  RunEnvironment env = Env("claim-1");
  ExecutionDeps deps;
  deps.store = stores_.back().get();
  deps.exit = [](int) {};
  deps.log = [](const std::string&, const std::string&, const json&) {};
  int claims = 0;
  int64_t finished_rows_at_claim = -1;
  deps.claim_outcome = [&] {
    ++claims;
    finished_rows_at_claim = Count("SELECT count(*) FROM flowrun.attempts WHERE run_uid = 'claim-1'"
                                   " AND outcome <> 'running'");
  };
  OpenedExecution opened = Execution::Open(env, std::move(deps));
  ASSERT_NE(opened.execution, nullptr);
  EXPECT_EQ(claims, 0);
  EXPECT_EQ(opened.execution->Finish(json(1)), 0);
  EXPECT_EQ(opened.execution->Finish(json(2)), 0);
  EXPECT_EQ(claims, 1);
  EXPECT_EQ(finished_rows_at_claim, 0) << "claimed before the attempt's outcome was written";
  // A failure to open claims too.
  RunEnvironment bad = Env("claim-2");
  bad.database_url = "host=";
  int open_claims = 0;
  EXPECT_EQ(Execution::Open(bad, [&] { ++open_claims; }).exit_code, kExitConfigError);
  EXPECT_EQ(open_claims, 1);
}

TEST_F(EngineTest, AnExecutionThatCannotOpenIsReportedWithItsExitCode) {
  RunEnvironment env = Env("no-open");
  env.database_url = "host=";  // malformed: a configuration error
  OpenedExecution opened = Execution::Open(env);
  ASSERT_EQ(opened.execution, nullptr);
  EXPECT_EQ(opened.exit_code, kExitConfigError);
  ASSERT_TRUE(opened.reported.has_value());
  EXPECT_EQ(opened.reported->kind, OutcomeKind::kConfigError);
  EXPECT_EQ(TerminationMessage(env)["outcome"], "config_error");
}

}  // namespace
}  // namespace flowrun::store_test
