// Begin and fencing: every execution gets a new epoch, and an older
// execution's writes are refused (kAborted) once a newer one began.
#include "store_fixture.h"

namespace flowrun::store_test {
namespace {

class StoreFencing : public StoreTest {};

TEST_F(StoreFencing, BeginCreatesTheRunAtEpochOne) {
  auto store = Store();
  ExecutionStart start = Begin(*store, "run-1", 1, 2.5);
  EXPECT_EQ(start.epoch, 1);
  EXPECT_TRUE(start.completed.empty());
  ASSERT_TRUE(start.budget_usd.has_value());
  EXPECT_DOUBLE_EQ(*start.budget_usd, 2.5);
  EXPECT_EQ(start.spent_usd, 0);

  pqxx::result r = Query("SELECT namespace, name, flow, epoch, attempt, status, parameters::text FROM flowrun.runs"
                         " WHERE run_uid = $1", std::string("run-1"));
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0][0].as<std::string>(), "team-a");
  EXPECT_EQ(r[0][1].as<std::string>(), "run-1-name");
  EXPECT_EQ(r[0][2].as<std::string>(), "research");
  EXPECT_EQ(r[0][3].as<int64_t>(), 1);
  EXPECT_EQ(r[0][4].as<int>(), 1);
  EXPECT_EQ(r[0][5].as<std::string>(), "running");
  EXPECT_EQ(json::parse(r[0][6].as<std::string>()), json({{"topic", "llamas"}}));
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.attempts WHERE run_uid = 'run-1' AND epoch = 1 AND attempt = 1"
                  " AND outcome = 'running'"),
            1);
}

TEST_F(StoreFencing, SecondBeginFencesTheFirstExecution) {
  auto first = Store();
  auto second = Store();
  ASSERT_EQ(Begin(*first, "run-f", 1).epoch, 1);
  ASSERT_EQ(Begin(*second, "run-f", 2).epoch, 2);

  CheckpointKey key{"research", 1};
  TimePoint now = std::chrono::system_clock::now();
  auto started = first->CheckpointStarted(key, CheckpointKind::kStep, Fp("research"), 1);
  EXPECT_EQ(started.status().code(), StatusCode::kAborted) << started.status();
  EXPECT_EQ(first->CheckpointCompleted(key, CheckpointKind::kStep, Fp("research"), R"({"x":1})", now, now, Usage{})
                .code(),
            StatusCode::kAborted);
  EXPECT_EQ(first->CheckpointFailed(key, 1, true, "boom").code(), StatusCode::kAborted);
  EXPECT_EQ(first->RecordLlmCall(key, Priced("gpt-4o-mini", 10, 10, 0.5, "reported")).code(),
            StatusCode::kAborted);
  auto saved = first->SaveArtifact("report", "text/plain", "data", std::nullopt);
  EXPECT_EQ(saved.status().code(), StatusCode::kAborted) << saved.status();
  auto waited = first->ResolveWait(MakeWait("approve", kBool));
  EXPECT_EQ(waited.status().code(), StatusCode::kAborted) << waited.status();
  FinishRequest finish;
  finish.outcome = OutcomeKind::kSucceeded;
  finish.result = json{{"from", "first"}};
  Status fin = first->Finish(finish);
  EXPECT_EQ(fin.code(), StatusCode::kAborted) << fin;
  EXPECT_CONTAINS(fin.message(), "fenced");

  // The fenced execution wrote nothing.
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.checkpoints"), 0);
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.checkpoint_failures"), 0);
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.llm_calls"), 0);
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.artifacts"), 0);
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.waits"), 0);
  pqxx::result run = Query("SELECT status, epoch, attempt, result IS NULL FROM flowrun.runs WHERE run_uid = 'run-f'");
  EXPECT_EQ(run[0][0].as<std::string>(), "running");
  EXPECT_EQ(run[0][1].as<int64_t>(), 2);
  EXPECT_EQ(run[0][2].as<int>(), 2);
  EXPECT_TRUE(run[0][3].as<bool>());
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.attempts WHERE run_uid = 'run-f' AND epoch = 1"
                  " AND outcome = 'running' AND finished_at IS NULL"),
            1);

  // The newer execution writes normally.
  EXPECT_EQ(Must(second->CheckpointStarted(key, CheckpointKind::kStep, Fp("research"), 1)), false);
  MustOk(second->CheckpointCompleted(key, CheckpointKind::kStep, Fp("research"), R"({"x":2})", now, now, Usage{}));
  MustOk(second->RecordLlmCall(key, Priced("gpt-4o-mini", 10, 10, 0.5, "reported")));
  EXPECT_EQ(Must(second->SaveArtifact("report", "text/plain", "data", std::nullopt)), 1);
  MustOk(second->Finish(finish));
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.checkpoints WHERE epoch = 2 AND status = 'completed'"), 1);
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.runs WHERE status = 'succeeded' AND epoch = 2"), 1);
}

}  // namespace
}  // namespace flowrun::store_test
