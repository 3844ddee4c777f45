// Checkpoints: completed ones are loaded by the next Begin, completion is
// idempotent, and a start without a completion counts as a re-execution.
#include "store_fixture.h"

namespace flowrun::store_test {
namespace {

class StoreCheckpoints : public StoreTest {};

TEST_F(StoreCheckpoints, CompletedCheckpointIsLoadedByTheNextBegin) {
  auto first = Store();
  Begin(*first, "run-c", 1);
  CheckpointKey k1{"research", 1}, k2{"research", 2};
  TimePoint t0 = std::chrono::system_clock::now();
  TimePoint t1 = t0 + milliseconds(1500);
  Usage usage;
  usage.llm_calls = 3;
  usage.input_tokens = 1200;
  usage.output_tokens = 340;
  usage.cached_tokens = 100;
  usage.cost_usd = 0.125;
  usage.unknown_cost_calls = 1;
  json out1 = {{"summary", "Llamas are camelids — résumé"}, {"n", {1, 2, 3}}, {"ok", true}};
  ASSERT_FALSE(Must(first->CheckpointStarted(k1, CheckpointKind::kStep, Fp("research"), 1)));
  MustOk(first->CheckpointCompleted(k1, CheckpointKind::kStep, Fp("research"), out1.dump(), t0, t1, usage));
  MustOk(first->CheckpointCompleted(k2, CheckpointKind::kStep, "v1:other", "\"second\"", t0, t0, Usage{}));

  auto second = Store();
  ExecutionStart start = Begin(*second, "run-c", 2);
  EXPECT_EQ(start.epoch, 2);
  ASSERT_EQ(start.completed.size(), 2u);
  ASSERT_TRUE(start.completed.count(k1));
  const CachedCheckpoint& cp = start.completed.at(k1);
  EXPECT_EQ(cp.kind, CheckpointKind::kStep);
  EXPECT_EQ(cp.fingerprint, Fp("research"));
  EXPECT_EQ(cp.output, out1);
  EXPECT_EQ(cp.attempt, 1);
  EXPECT_EQ(cp.usage.llm_calls, 3);
  EXPECT_EQ(cp.usage.input_tokens, 1200);
  EXPECT_EQ(cp.usage.output_tokens, 340);
  EXPECT_EQ(cp.usage.cached_tokens, 100);
  EXPECT_DOUBLE_EQ(cp.usage.cost_usd, 0.125);
  EXPECT_EQ(cp.usage.unknown_cost_calls, 1);
  ASSERT_TRUE(start.completed.count(k2));
  EXPECT_EQ(start.completed.at(k2).output, json("second"));
  EXPECT_EQ(start.completed.at(k2).fingerprint, "v1:other");

  auto admin = Admin();
  auto list = Must(admin->ListCheckpoints("run-c"));
  ASSERT_EQ(list.size(), 2u);
  for (const auto& info : list) {
    EXPECT_EQ(info.status, "completed");
    if (info.key == k1) {
      ASSERT_TRUE(info.duration_ms.has_value());
      EXPECT_NEAR(*info.duration_ms, 1500, 1);
    }
  }
  EXPECT_EQ(Must(admin->GetCheckpointOutput("run-c", k1)), out1);
  EXPECT_EQ(Must(admin->GetCheckpointOutput("run-c", k2)), json("second"));
  EXPECT_EQ(admin->GetCheckpointOutput("run-c", CheckpointKey{"nope", 1}).status().code(), StatusCode::kNotFound);
}

TEST_F(StoreCheckpoints, CheckpointCompletedIsIdempotent) {
  auto store = Store();
  Begin(*store, "run-i", 1);
  CheckpointKey k{"step", 1};
  TimePoint now = std::chrono::system_clock::now();
  for (int i = 0; i < 3; ++i)
    MustOk(store->CheckpointCompleted(k, CheckpointKind::kStep, Fp("step"), "42", now, now, Usage{}));
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.checkpoints WHERE run_uid = 'run-i'"), 1);
  EXPECT_EQ(store->in_doubt_writes_settled(), 0);
}

TEST_F(StoreCheckpoints, StartWithoutCompletionIsReportedAsInterrupted) {
  CheckpointKey k{"crawl", 1};
  auto first = Store();
  Begin(*first, "run-x", 1);
  EXPECT_FALSE(Must(first->CheckpointStarted(k, CheckpointKind::kStep, Fp("crawl"), 1)));
  // The first execution dies here. The next one starts the same checkpoint.
  auto second = Store();
  Begin(*second, "run-x", 2);
  EXPECT_TRUE(Must(second->CheckpointStarted(k, CheckpointKind::kStep, Fp("crawl"), 1)));

  auto info = Must(Admin()->ListCheckpoints("run-x"));
  ASSERT_EQ(info.size(), 1u);
  EXPECT_EQ(info[0].status, "running");
  EXPECT_EQ(info[0].starts, 2);
  EXPECT_EQ(info[0].reexecutions, 1);
  EXPECT_EQ(info[0].attempt, 2);
  EXPECT_EQ(Count("SELECT reexecutions FROM flowrun.checkpoints WHERE run_uid = 'run-x'"), 1);

  // Completing it ends the interruption: a later start is not a re-execution.
  TimePoint now = std::chrono::system_clock::now();
  MustOk(second->CheckpointCompleted(k, CheckpointKind::kStep, Fp("crawl"), "1", now, now, Usage{}));
  auto third = Store();
  Begin(*third, "run-x", 3);
  EXPECT_FALSE(Must(third->CheckpointStarted(k, CheckpointKind::kStep, Fp("crawl"), 1)));
  EXPECT_EQ(Count("SELECT reexecutions FROM flowrun.checkpoints WHERE run_uid = 'run-x'"), 1);
}

TEST_F(StoreCheckpoints, StartFailedStartIsNotAnInterruption) {
  CheckpointKey k{"flaky", 1};
  auto first = Store();
  Begin(*first, "run-y", 1);
  EXPECT_FALSE(Must(first->CheckpointStarted(k, CheckpointKind::kStep, Fp("flaky"), 1)));
  MustOk(first->CheckpointFailed(k, 1, /*final_try=*/false, "HTTP 503"));
  // A retry within the same execution.
  EXPECT_FALSE(Must(first->CheckpointStarted(k, CheckpointKind::kStep, Fp("flaky"), 2)));
  MustOk(first->CheckpointFailed(k, 2, /*final_try=*/true, "HTTP 503 again"));

  auto second = Store();
  Begin(*second, "run-y", 2);
  EXPECT_FALSE(Must(second->CheckpointStarted(k, CheckpointKind::kStep, Fp("flaky"), 1)));

  auto admin = Admin();
  auto info = Must(admin->ListCheckpoints("run-y"));
  ASSERT_EQ(info.size(), 1u);
  EXPECT_EQ(info[0].reexecutions, 0);
  EXPECT_EQ(info[0].starts, 3);
  auto failures = Must(admin->ListFailures("run-y"));
  ASSERT_EQ(failures.size(), 2u);
  EXPECT_EQ(failures[0].name, "flaky");
  EXPECT_EQ(failures[0].try_number, 1);
  EXPECT_EQ(failures[0].message, "HTTP 503");
  EXPECT_EQ(failures[0].attempt, 1);
  EXPECT_EQ(failures[1].try_number, 2);
  EXPECT_EQ(failures[1].message, "HTTP 503 again");
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.checkpoint_failures WHERE final"), 1);
}

}  // namespace
}  // namespace flowrun::store_test
