// Migrations: applying them (idempotently, concurrently), refusing a newer
// database, the typed value sets migration 3 added, and opening a store
// checking the version instead of migrating.
#include <latch>
#include <thread>

#include "store_fixture.h"

namespace flowrun::store_test {
namespace {

class StoreMigrations : public StoreTest {};

TEST_F(StoreMigrations, MigrateIsIdempotent) {
  ASSERT_TRUE(Migrate(Options()).ok());
  ASSERT_TRUE(Migrate(Options()).ok());
  ASSERT_TRUE(Migrate(Options()).ok());
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.schema_migrations"), CurrentSchemaVersion());
  EXPECT_EQ(Count("SELECT count(DISTINCT version) FROM flowrun.schema_migrations"), CurrentSchemaVersion());
  EXPECT_EQ(Count("SELECT max(version) FROM flowrun.schema_migrations"), CurrentSchemaVersion());
  // Opening a store and an admin migrates again: still nothing to do.
  Store();
  Admin();
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.schema_migrations"), CurrentSchemaVersion());
}

TEST_F(StoreMigrations, MigrateConcurrentlyOnAFreshDatabase) {
  ASSERT_EQ(Count("SELECT count(*) FROM pg_namespace WHERE nspname = 'flowrun'"), 0);
  constexpr int kThreads = 8;
  std::vector<Status> results(kThreads);
  std::latch start(kThreads);
  std::vector<std::thread> threads;
  PostgresOptions options = Options("flowrun-migrate");
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      start.arrive_and_wait();
      results[i] = Migrate(options);
    });
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < kThreads; ++i) EXPECT_TRUE(results[i].ok()) << "thread " << i << ": " << results[i];
  pqxx::result versions = Query("SELECT version, count(*) FROM flowrun.schema_migrations GROUP BY version ORDER BY 1");
  ASSERT_EQ(static_cast<int>(versions.size()), CurrentSchemaVersion());
  for (int i = 0; i < static_cast<int>(versions.size()); ++i) {
    EXPECT_EQ(versions[i][0].as<int>(), i + 1);
    EXPECT_EQ(versions[i][1].as<int64_t>(), 1) << "version " << i + 1 << " recorded more than once";
  }
  for (const char* table : {"runs", "attempts", "checkpoints", "checkpoint_failures", "llm_calls", "waits",
                            "artifacts"})
    EXPECT_EQ(Count("SELECT count(*) FROM pg_tables WHERE schemaname = 'flowrun' AND tablename = $1",
                    std::string(table)),
              1)
        << table;
}

TEST_F(StoreMigrations, MigrateRefusesADatabaseFromANewerBuild) {
  ASSERT_TRUE(Migrate(Options()).ok());
  Query("INSERT INTO flowrun.schema_migrations (version, description) VALUES ($1, 'from the future')",
        CurrentSchemaVersion() + 1);
  Status st = Migrate(Options());
  ASSERT_FALSE(st.ok());
  EXPECT_CONTAINS(st.message(), "newer");
  EXPECT_FALSE(OpenPostgresRunStore(Options()).ok());
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.schema_migrations"), CurrentSchemaVersion() + 1);
}

// The typed value sets in the database (migration 3, flowrun/run_states.h).

// A database as the previous schema left it: the words older builds wrote,
// including the ones outside today's sets, migrate into the typed contract.
TEST_F(StoreMigrations, MigratingOldRowsGivesThemTypedStatesAndReasons) {
  auto opts = Options("flowrun-migrate");
  MustOk(MigrateTo(opts, 2));
  Query("INSERT INTO flowrun.runs (run_uid, status, error) VALUES"
        " ('old-timeout', 'failed', 'wait ''proceed'' timed out without an answer'),"
        " ('old-failed', 'failed', 'checkpoint ''x'' failed: 500'),"
        " ('old-db', 'database_unavailable', 'connection refused')");
  Query("INSERT INTO flowrun.attempts (run_uid, epoch, attempt, outcome, error, finished_at) VALUES"
        " ('old-timeout', 1, 1, 'failed', 'wait proceed#1 timed out without an answer', now()),"
        " ('old-db', 1, 1, 'database_unavailable', 'connection refused', now())");
  MustOk(Migrate(opts));
  auto admin = Admin();
  RunState t = Must(admin->GetRun("old-timeout"));
  EXPECT_EQ(t.status, RunStatus::kFailed);
  EXPECT_EQ(t.failure_reason, FailureReason::kWaitTimedOut);
  ASSERT_EQ(t.attempts.size(), 1u);
  EXPECT_EQ(t.attempts[0].outcome, OutcomeKind::kFailed);
  EXPECT_EQ(t.attempts[0].reason, FailureReason::kWaitTimedOut);
  EXPECT_EQ(Must(admin->GetRun("old-failed")).failure_reason, FailureReason::kFlowFailed);
  RunState d = Must(admin->GetRun("old-db"));
  EXPECT_EQ(d.status, RunStatus::kFailed);  // a status outside the set is normalised
  ASSERT_EQ(d.attempts.size(), 1u);
  EXPECT_EQ(d.attempts[0].outcome, OutcomeKind::kDatabaseUnavailable);  // the attempt keeps its kind
  // The metrics count the wait timeout from the typed reason.
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.runs WHERE failure_reason = 'wait_timed_out'"), 1);
}

// Migration 4 (LLM calls recorded as started): every row an older build wrote
// was a completed call, and still counts as one; the metrics count it too.
TEST_F(StoreMigrations, OldLlmCallRowsBecomeCompletedCalls) {
  auto opts = Options("flowrun-migrate");
  MustOk(MigrateTo(opts, 3));
  Query("INSERT INTO flowrun.runs (run_uid, status) VALUES ('old-calls', 'succeeded')");
  Query("INSERT INTO flowrun.llm_calls (run_uid, epoch, seq, attempt, model, input_tokens, output_tokens,"
        " cached_tokens, latency_ms, cost_usd, price_source) VALUES"
        " ('old-calls', 1, 1, 1, 'gpt-4o-mini', 100, 10, 0, 5, 0.25, 'reported'),"
        " ('old-calls', 1, 2, 1, 'mystery', 100, 10, 0, 5, NULL, 'unknown')");
  MustOk(Migrate(opts));
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.llm_calls WHERE state = 'completed' AND estimated_input_tokens = 0"
                  " AND error = ''"),
            2);
  RunState s = Must(Admin()->GetRun("old-calls"));
  EXPECT_EQ(s.spent.llm_calls, 2);
  EXPECT_EQ(s.spent.unknown_cost_calls, 1);
  EXPECT_EQ(s.spent.unfinished_calls, 0);
  EXPECT_DOUBLE_EQ(s.spent.cost_usd, 0.25);
  EXPECT_EQ(Count("SELECT value::bigint FROM flowrun.metric_contributions('old-calls')"
                  " WHERE metric = 'llm_calls' AND model = 'gpt-4o-mini'"),
            1);
  EXPECT_THROW(Query("UPDATE flowrun.llm_calls SET state = 'running' WHERE seq = 1"), pqxx::check_violation);
  EXPECT_THROW(Query("UPDATE flowrun.llm_calls SET estimated_input_tokens = -1 WHERE seq = 1"), pqxx::check_violation);
}

TEST_F(StoreMigrations, TheDatabaseRefusesWordsOutsideTheTypedSets) {
  auto store = Store();
  Begin(*store, "run-chk", 1);
  struct Bad {
    const char* what;
    const char* sql;
  };
  for (const Bad& b : {
           Bad{"run status", "UPDATE flowrun.runs SET status = 'timed out' WHERE run_uid = 'run-chk'"},
           Bad{"failure reason", "UPDATE flowrun.runs SET failure_reason = 'WaitTimedOut' WHERE run_uid = 'run-chk'"},
           Bad{"attempt outcome", "UPDATE flowrun.attempts SET outcome = 'ok' WHERE run_uid = 'run-chk'"},
           Bad{"checkpoint status", "INSERT INTO flowrun.checkpoints (run_uid, name, occurrence, kind, status,"
                                    " fingerprint, attempt, epoch) VALUES ('run-chk', 'a', 1, 'step', 'done', '', 1, 1)"},
           Bad{"checkpoint kind", "INSERT INTO flowrun.checkpoints (run_uid, name, occurrence, kind, status,"
                                  " fingerprint, attempt, epoch) VALUES ('run-chk', 'a', 1, 'task', 'running', '', 1, 1)"},
       }) {
    EXPECT_THROW(Query(b.sql), pqxx::check_violation) << b.what;
  }
  // The words of the sets themselves are accepted.
  EXPECT_NO_THROW(Query("UPDATE flowrun.runs SET status = 'budget_exceeded', failure_reason = 'wait_timed_out'"
                        " WHERE run_uid = 'run-chk'"));
}

// Opening a store or an admin session never migrates: it reads the version
// and says which command brings the database there.
TEST_F(StoreMigrations, OpeningChecksTheSchemaVersionInsteadOfMigrating) {
  for (int version : {0, 2}) {  // an empty database, then one an older flowrun left
    if (version > 0) MustOk(MigrateTo(Options(), version));
    auto store = OpenPostgresRunStore(Options());
    ASSERT_FALSE(store.ok());
    EXPECT_EQ(store.status().code(), StatusCode::kFailedPrecondition);
    EXPECT_CONTAINS(store.status().message(), "flowrunctl migrate");
    EXPECT_CONTAINS(store.status().message(), "version " + std::to_string(version));
    auto admin = OpenPostgresRunAdmin(Options());
    ASSERT_FALSE(admin.ok());
    EXPECT_EQ(admin.status().code(), StatusCode::kFailedPrecondition);
    // Nothing was created or upgraded by trying.
    EXPECT_EQ(Count("SELECT count(*) FROM pg_namespace WHERE nspname = 'flowrun'"), version > 0 ? 1 : 0);
    if (version > 0) {
      EXPECT_EQ(Count("SELECT max(version) FROM flowrun.schema_migrations"), version);
    }
  }
  MustOk(Migrate(Options()));
  EXPECT_TRUE(OpenPostgresRunStore(Options()).ok());
  // A database from a newer build is refused as clearly.
  Query("INSERT INTO flowrun.schema_migrations (version, description) VALUES ($1, 'from the future')",
        CurrentSchemaVersion() + 1);
  auto newer = OpenPostgresRunAdmin(Options());
  ASSERT_FALSE(newer.ok());
  EXPECT_EQ(newer.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_CONTAINS(newer.status().message(), "newer than this build");
}

TEST_F(StoreMigrations, MigrateToRefusesAVersionThisBuildDoesNotHave) {
  EXPECT_EQ(MigrateTo(Options(), CurrentSchemaVersion() + 1).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(MigrateTo(Options(), 0).code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace flowrun::store_test
