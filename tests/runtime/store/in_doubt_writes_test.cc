// Writes whose acknowledgement is lost: the store settles the doubt by
// re-reading, never by blindly repeating the write.
#include <atomic>

#include "store_fixture.h"

namespace flowrun::store_test {
namespace {

class StoreInDoubtWrites : public StoreTest {};

TEST_F(StoreInDoubtWrites, InDoubtCommitOfCheckpointCompletedIsSettledByReRead) {
  auto calls = std::make_shared<std::atomic<int>>(0);
  PostgresOptions o = Options();
  o.fault_injector = [calls](const std::string& statement) {
    if (statement == "checkpoint_completed" && calls->fetch_add(1) == 0)
      throw pqxx::in_doubt_error("simulated lost ack");
  };
  auto store = Store(o);
  Begin(*store, "run-d", 1);
  CheckpointKey k{"expensive", 1};
  ASSERT_FALSE(Must(store->CheckpointStarted(k, CheckpointKind::kStep, Fp("expensive"), 1)));
  TimePoint now = std::chrono::system_clock::now();
  Usage u;
  u.llm_calls = 1;
  u.cost_usd = 0.75;
  Status st = store->CheckpointCompleted(k, CheckpointKind::kStep, Fp("expensive"), R"({"v":1})", now, now, u);
  EXPECT_TRUE(st.ok()) << st;
  EXPECT_EQ(calls->load(), 1);  // the write was not blindly repeated
  EXPECT_EQ(store->in_doubt_writes_settled(), 1);
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.checkpoints WHERE run_uid = 'run-d' AND status = 'completed'"), 1);
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.checkpoints WHERE run_uid = 'run-d'"), 1);
  EXPECT_EQ(Count("SELECT starts FROM flowrun.checkpoints WHERE run_uid = 'run-d'"), 1);
  // The store keeps working after the lost connection.
  MustOk(store->RecordLlmCall(k, Priced("m", 1, 1, 0.75, "reported")));
  MustOk(store->Finish(FinishRequest{OutcomeKind::kSucceeded, FailureReason::kNone, json(1), "", "", 1, 0, 0, Usage{}}));
  auto next = Store();
  ExecutionStart start = Begin(*next, "run-d", 2);
  ASSERT_TRUE(start.completed.count(k));
  EXPECT_EQ(start.completed.at(k).output, json({{"v", 1}}));
  EXPECT_DOUBLE_EQ(start.completed.at(k).usage.cost_usd, 0.75);
}

TEST_F(StoreInDoubtWrites, BrokenConnectionAfterCheckpointCompletedIsSettledByReRead) {
  auto calls = std::make_shared<std::atomic<int>>(0);
  PostgresOptions o = Options();
  o.fault_injector = [calls](const std::string&) {
    if (calls->fetch_add(1) == 0) throw pqxx::broken_connection("simulated connection loss");
  };
  auto store = Store(o);
  Begin(*store, "run-b", 1);
  CheckpointKey k{"s", 1};
  TimePoint now = std::chrono::system_clock::now();
  Status st = store->CheckpointCompleted(k, CheckpointKind::kStep, Fp("s"), R"(["a"])", now, now, Usage{});
  EXPECT_TRUE(st.ok()) << st;
  EXPECT_EQ(store->in_doubt_writes_settled(), 1);
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.checkpoints WHERE run_uid = 'run-b'"), 1);
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.checkpoints WHERE run_uid = 'run-b' AND status = 'completed'"
                  " AND output = '[\"a\"]'::jsonb"),
            1);
}

TEST_F(StoreInDoubtWrites, InDoubtCheckpointStartedIsNotCountedTwice) {
  auto calls = std::make_shared<std::atomic<int>>(0);
  PostgresOptions o = Options();
  o.fault_injector = [calls](const std::string& statement) {
    if (statement == "checkpoint_started" && calls->fetch_add(1) == 0)
      throw pqxx::in_doubt_error("simulated lost ack");
  };
  auto store = Store(o);
  Begin(*store, "run-s", 1);
  auto interrupted = store->CheckpointStarted(CheckpointKey{"s", 1}, CheckpointKind::kStep, Fp("s"), 1);
  ASSERT_TRUE(interrupted.ok()) << interrupted.status();
  EXPECT_FALSE(*interrupted);
  EXPECT_EQ(store->in_doubt_writes_settled(), 1);
  pqxx::result r = Query("SELECT starts, reexecutions, status FROM flowrun.checkpoints WHERE run_uid = 'run-s'");
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0][0].as<int>(), 1);
  EXPECT_EQ(r[0][1].as<int>(), 0);
  EXPECT_EQ(r[0][2].as<std::string>(), "running");
}

}  // namespace
}  // namespace flowrun::store_test
