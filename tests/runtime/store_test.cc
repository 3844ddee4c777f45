// PostgresRunStore and PostgresRunAdmin, in-process, against a real private
// PostgreSQL server (tests/support/postgres_server.h). Every test gets its own
// database; what the store claims is checked by reading the tables directly.
#include <gtest/gtest.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <latch>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "flowrun/flow.h"
#include "flowrun/postgres.h"
#include "flowrun/run_admin.h"
#include "flowrun/run_store.h"
#include "flowrun/status.h"
#include "support/postgres_server.h"

namespace flowrun {
namespace {

using json = nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;
using ::flowrun::testing::PostgresEnvironment;
using ::flowrun::testing::PostgresServer;

#define EXPECT_CONTAINS(haystack, needle)                           \
  EXPECT_NE(std::string(haystack).find(needle), std::string::npos) \
      << "expected to find \"" << (needle) << "\" in: " << (haystack)
#define EXPECT_NOT_CONTAINS(haystack, needle)                       \
  EXPECT_EQ(std::string(haystack).find(needle), std::string::npos) \
      << "did not expect \"" << (needle) << "\" in: " << (haystack)

// Unwraps a StatusOr or fails the test (gtest reports the exception).
template <typename T>
T Must(StatusOr<T> s, const std::string& what = "") {
  if (!s.ok()) throw std::runtime_error("unexpected error" + (what.empty() ? "" : " in " + what) + ": " +
                                        s.status().ToString());
  return std::move(s).value();
}
void MustOk(const Status& s, const std::string& what = "") {
  if (!s.ok()) throw std::runtime_error("unexpected error" + (what.empty() ? "" : " in " + what) + ": " +
                                        s.ToString());
}

RunIdentity Ident(const std::string& uid) { return RunIdentity{uid, uid + "-name", "team-a", "research"}; }

std::string Fp(const std::string& name) { return CheckpointFingerprint(CheckpointKind::kStep, name, std::nullopt); }

PricedLlmCall Priced(const std::string& model, int64_t in, int64_t out, std::optional<double> cost,
                     const std::string& source) {
  LlmCall c;
  c.model = model;
  c.input_tokens = in;
  c.output_tokens = out;
  c.latency = milliseconds(12);
  c.cost_usd = source == "reported" ? cost : std::nullopt;
  return PricedLlmCall{c, cost, source};
}

WaitRequest MakeWait(const std::string& name, json schema, std::optional<seconds> timeout = std::nullopt,
                     OnTimeout on_timeout = OnTimeout::kFail,
                     std::optional<json> default_answer = std::nullopt, int occurrence = 1) {
  WaitRequest r;
  r.key = CheckpointKey{name, occurrence};
  r.fingerprint = CheckpointFingerprint(CheckpointKind::kWait, name, schema);
  r.question = "Question for " + name + "?";
  r.schema = std::move(schema);
  r.timeout = timeout;
  r.on_timeout = on_timeout;
  r.default_answer = std::move(default_answer);
  return r;
}

const json kBool = {{"type", "boolean"}};
const json kString = {{"type", "string"}};

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override { db_ = PostgresEnvironment::CreateDatabaseForCurrentTest(); }

  static PostgresServer& Server() { return PostgresEnvironment::Server(); }

  PostgresOptions Options(const std::string& application_name = "flowrun-test") const {
    PostgresOptions o;
    o.conninfo = Server().ConnectionString(db_);
    o.application_name = application_name;
    o.connect_attempts = 3;
    o.initial_backoff = milliseconds(50);
    return o;
  }

  // Opening never migrates (the controller and `flowrunctl migrate` do): the
  // test database is migrated first, as the controller would have.
  std::unique_ptr<RunStore> Store(const PostgresOptions& o) {
    MustOk(Migrate(o), "Migrate");
    return Must(OpenPostgresRunStore(o), "OpenPostgresRunStore");
  }
  std::unique_ptr<RunStore> Store() { return Store(Options()); }
  std::unique_ptr<RunAdmin> Admin() {
    MustOk(Migrate(Options("flowrun-admin")), "Migrate");
    return Must(OpenPostgresRunAdmin(Options("flowrun-admin")), "OpenPostgresRunAdmin");
  }

  ExecutionStart Begin(RunStore& store, const std::string& uid, int attempt = 1,
                       std::optional<double> budget = std::nullopt) {
    return Must(store.Begin(Ident(uid), attempt, json{{"topic", "llamas"}}, budget), "Begin");
  }

  // Direct queries, on a connection of their own (never the store's).
  template <typename... Args>
  pqxx::result Query(const std::string& sql, Args&&... args) const {
    pqxx::connection c(Server().ConnectionString(db_) + " application_name=flowrun-verify");
    pqxx::nontransaction tx(c);
    return tx.exec_params(sql, std::forward<Args>(args)...);
  }
  template <typename... Args>
  int64_t Count(const std::string& sql, Args&&... args) const {
    return Query(sql, std::forward<Args>(args)...)[0][0].template as<int64_t>();
  }
  // Rows of `uid` in every table of the flowrun schema that has a run_uid column.
  std::vector<std::pair<std::string, int64_t>> RowsPerTable(const std::string& uid) const {
    std::vector<std::pair<std::string, int64_t>> out;
    for (const auto& t : Query("SELECT table_name FROM information_schema.columns"
                               " WHERE table_schema = 'flowrun' AND column_name = 'run_uid' ORDER BY 1")) {
      std::string table = t[0].as<std::string>();
      out.emplace_back(table, Count("SELECT count(*) FROM flowrun." + table + " WHERE run_uid = $1", uid));
    }
    return out;
  }

  std::string db_;
};

// ---------------------------------------------------------------------------
// Migrations

TEST_F(StoreTest, MigrateIsIdempotent) {
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

TEST_F(StoreTest, MigrateConcurrentlyOnAFreshDatabase) {
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

TEST_F(StoreTest, MigrateRefusesADatabaseFromANewerBuild) {
  ASSERT_TRUE(Migrate(Options()).ok());
  Query("INSERT INTO flowrun.schema_migrations (version, description) VALUES ($1, 'from the future')",
        CurrentSchemaVersion() + 1);
  Status st = Migrate(Options());
  ASSERT_FALSE(st.ok());
  EXPECT_CONTAINS(st.message(), "newer");
  EXPECT_FALSE(OpenPostgresRunStore(Options()).ok());
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.schema_migrations"), CurrentSchemaVersion() + 1);
}

// ---------------------------------------------------------------------------
// Begin and fencing

TEST_F(StoreTest, BeginCreatesTheRunAtEpochOne) {
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

TEST_F(StoreTest, SecondBeginFencesTheFirstExecution) {
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

// ---------------------------------------------------------------------------
// Checkpoints

TEST_F(StoreTest, CompletedCheckpointIsLoadedByTheNextBegin) {
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

TEST_F(StoreTest, CheckpointCompletedIsIdempotent) {
  auto store = Store();
  Begin(*store, "run-i", 1);
  CheckpointKey k{"step", 1};
  TimePoint now = std::chrono::system_clock::now();
  for (int i = 0; i < 3; ++i)
    MustOk(store->CheckpointCompleted(k, CheckpointKind::kStep, Fp("step"), "42", now, now, Usage{}));
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.checkpoints WHERE run_uid = 'run-i'"), 1);
  EXPECT_EQ(store->in_doubt_writes_settled(), 0);
}

TEST_F(StoreTest, StartWithoutCompletionIsReportedAsInterrupted) {
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

TEST_F(StoreTest, StartFailedStartIsNotAnInterruption) {
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

// ---------------------------------------------------------------------------
// Writes whose acknowledgement is lost

TEST_F(StoreTest, InDoubtCommitOfCheckpointCompletedIsSettledByReRead) {
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

TEST_F(StoreTest, BrokenConnectionAfterCheckpointCompletedIsSettledByReRead) {
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

TEST_F(StoreTest, InDoubtCheckpointStartedIsNotCountedTwice) {
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

// ---------------------------------------------------------------------------
// Connection lost mid-execution

TEST_F(StoreTest, StoreReconnectsAfterItsBackendIsTerminated) {
  auto store = Store(Options("flowrun-reconnect"));
  auto kill = [&] { EXPECT_EQ(Server().TerminateConnections(db_, "flowrun-reconnect"), 1); };
  Begin(*store, "run-r", 1);
  CheckpointKey k{"step", 1};
  TimePoint now = std::chrono::system_clock::now();

  kill();
  auto started = store->CheckpointStarted(k, CheckpointKind::kStep, Fp("step"), 1);
  ASSERT_TRUE(started.ok()) << started.status();
  EXPECT_FALSE(*started);
  kill();
  Status completed = store->CheckpointCompleted(k, CheckpointKind::kStep, Fp("step"), "7", now, now, Usage{});
  EXPECT_TRUE(completed.ok()) << completed;
  kill();
  Status llm = store->RecordLlmCall(k, Priced("gpt-4o-mini", 5, 5, 0.01, "reported"));
  EXPECT_TRUE(llm.ok()) << llm;
  kill();
  auto version = store->SaveArtifact("out", "text/plain", "hello", std::nullopt);
  ASSERT_TRUE(version.ok()) << version.status();
  EXPECT_EQ(*version, 1);
  kill();
  auto budget = store->ReadBudget();
  ASSERT_TRUE(budget.ok()) << budget.status();
  EXPECT_NEAR(budget->second, 0.01, 1e-9);
  kill();
  auto wait = store->ResolveWait(MakeWait("approve", kBool));
  ASSERT_TRUE(wait.ok()) << wait.status();
  EXPECT_EQ(wait->kind, WaitResolution::Kind::kPending);
  kill();
  Status failed = store->CheckpointFailed(CheckpointKey{"other", 1}, 1, true, "x");
  EXPECT_TRUE(failed.ok()) << failed;
  kill();
  FinishRequest f;
  f.outcome = OutcomeKind::kWaiting;
  f.open_wait = "approve";
  Status fin = store->Finish(f);
  EXPECT_TRUE(fin.ok()) << fin;

  // Every write landed exactly once.
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.checkpoints WHERE run_uid = 'run-r' AND status = 'completed'"), 1);
  EXPECT_EQ(Count("SELECT starts FROM flowrun.checkpoints WHERE run_uid = 'run-r' AND name = 'step'"), 1);
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.llm_calls WHERE run_uid = 'run-r'"), 1);
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.artifacts WHERE run_uid = 'run-r'"), 1);
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.waits WHERE run_uid = 'run-r'"), 1);
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.checkpoint_failures WHERE run_uid = 'run-r'"), 1);
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.runs WHERE run_uid = 'run-r' AND status = 'waiting'"), 1);
}

TEST_F(StoreTest, AdminReconnectsAfterItsBackendIsTerminated) {
  auto store = Store();
  Begin(*store, "run-ra", 1);
  auto admin = Admin();
  ASSERT_TRUE(admin->GetRun("run-ra").ok());
  ASSERT_EQ(Server().TerminateConnections(db_, "flowrun-admin"), 1);
  auto run = admin->GetRun("run-ra");
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ(run->status, RunStatus::kRunning);
  ASSERT_EQ(Server().TerminateConnections(db_, "flowrun-admin"), 1);
  EXPECT_TRUE(admin->SetBudget("run-ra", 3.0).ok());
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.runs WHERE budget_usd = 3"), 1);
}

// ---------------------------------------------------------------------------
// Waits and answers

TEST_F(StoreTest, PendingWaitRecordsQuestionSchemaAndDeadline) {
  auto store = Store();
  Begin(*store, "run-w", 1);
  WaitRequest req = MakeWait("approve", kBool, seconds(3600), OnTimeout::kUseDefault, json(false));
  req.question = "Proceed with the plan? It costs $3.";
  TimePoint before = std::chrono::system_clock::now();
  WaitResolution res = Must(store->ResolveWait(req));
  EXPECT_EQ(res.kind, WaitResolution::Kind::kPending);
  ASSERT_TRUE(res.deadline.has_value());
  EXPECT_NEAR(std::chrono::duration<double>(*res.deadline - before).count(), 3600, 30);
  EXPECT_TRUE(res.rejected_early_answer.empty());

  pqxx::result r = Query("SELECT question, schema::text, deadline IS NOT NULL, on_timeout, default_answer::text,"
                         " answer IS NULL, asked_at IS NOT NULL FROM flowrun.waits WHERE run_uid = 'run-w'");
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0][0].as<std::string>(), "Proceed with the plan? It costs $3.");
  EXPECT_EQ(json::parse(r[0][1].as<std::string>()), kBool);
  EXPECT_TRUE(r[0][2].as<bool>());
  EXPECT_EQ(r[0][3].as<std::string>(), "default");
  EXPECT_EQ(json::parse(r[0][4].as<std::string>()), json(false));
  EXPECT_TRUE(r[0][5].as<bool>());
  EXPECT_TRUE(r[0][6].as<bool>());

  auto run = Must(Admin()->GetRun("run-w"));
  ASSERT_TRUE(run.open_wait.has_value());
  EXPECT_EQ(run.open_wait->name, "approve");
  EXPECT_EQ(run.open_wait->occurrence, 1);
  EXPECT_EQ(run.open_wait->question, req.question);
  EXPECT_EQ(run.open_wait->schema, kBool);
  ASSERT_TRUE(run.open_wait->deadline.has_value());
  EXPECT_NEAR(std::chrono::duration<double>(*run.open_wait->deadline - *res.deadline).count(), 0, 0.01);
  EXPECT_EQ(run.open_wait->on_timeout, OnTimeout::kUseDefault);
  ASSERT_TRUE(run.open_wait->default_answer.has_value());
  EXPECT_EQ(*run.open_wait->default_answer, json(false));

  // Asked again by the next execution: still pending, the deadline is not extended.
  auto next = Store();
  Begin(*next, "run-w", 2);
  WaitResolution again = Must(next->ResolveWait(req));
  EXPECT_EQ(again.kind, WaitResolution::Kind::kPending);
  ASSERT_TRUE(again.deadline.has_value());
  EXPECT_NEAR(std::chrono::duration<double>(*again.deadline - *res.deadline).count(), 0, 0.01);
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.waits WHERE run_uid = 'run-w'"), 1);
}

TEST_F(StoreTest, WaitWithoutTimeoutHasNoDeadline) {
  auto store = Store();
  Begin(*store, "run-nd", 1);
  WaitResolution res = Must(store->ResolveWait(MakeWait("approve", kBool)));
  EXPECT_EQ(res.kind, WaitResolution::Kind::kPending);
  EXPECT_FALSE(res.deadline.has_value());
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.waits WHERE deadline IS NULL"), 1);
}

TEST_F(StoreTest, AnswerViolatingTheSchemaIsRejectedAndNothingStored) {
  auto store = Store();
  Begin(*store, "run-v", 1);
  json schema = json::parse(R"({"type":"object","required":["decision"],
                                "properties":{"decision":{"enum":["approve","reject"]}}})");
  ASSERT_EQ(Must(store->ResolveWait(MakeWait("review", schema))).kind, WaitResolution::Kind::kPending);
  auto admin = Admin();
  auto bad = admin->RecordAnswer("run-v", "review", json{{"decision", "maybe"}}, AnswerOptions{true, "human:bob"});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_CONTAINS(bad.status().message(), "decision");
  auto missing = admin->RecordAnswer("run-v", "review", json::object(), AnswerOptions{true, "human:bob"});
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kInvalidArgument);
  EXPECT_CONTAINS(missing.status().message(), "decision");
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.waits WHERE answer IS NULL AND answered_at IS NULL"
                  " AND answered_by = ''"),
            1);
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.waits"), 1);
  // Still open, and a valid answer is then accepted.
  EXPECT_TRUE(Must(admin->GetRun("run-v")).open_wait.has_value());
  auto good = admin->RecordAnswer("run-v", "review", json{{"decision", "approve"}}, AnswerOptions{true, "human:bob"});
  ASSERT_TRUE(good.ok()) << good.status();
  EXPECT_FALSE(good->early);
}

TEST_F(StoreTest, ValidAnswerResolvesTheWaitAndBecomesItsCheckpoint) {
  WaitRequest req = MakeWait("approve", kBool);
  {
    auto store = Store();
    Begin(*store, "run-a", 1);
    ASSERT_EQ(Must(store->ResolveWait(req)).kind, WaitResolution::Kind::kPending);
    FinishRequest f;
    f.outcome = OutcomeKind::kWaiting;
    f.open_wait = "approve";
    MustOk(store->Finish(f));
  }
  auto admin = Admin();
  EXPECT_EQ(Must(admin->GetRun("run-a")).status, RunStatus::kWaiting);
  RecordedAnswer rec = Must(admin->RecordAnswer("run-a", "approve", true, AnswerOptions{false, "human:alice"}));
  EXPECT_EQ(rec.wait_name, "approve");
  EXPECT_EQ(rec.occurrence, 1);
  EXPECT_FALSE(rec.early);
  EXPECT_FALSE(Must(admin->GetRun("run-a")).open_wait.has_value());  // answered: no longer open

  auto second = Store();
  Begin(*second, "run-a", 2);
  WaitResolution res = Must(second->ResolveWait(req));
  EXPECT_EQ(res.kind, WaitResolution::Kind::kAnswered);
  EXPECT_EQ(res.answer, json(true));
  EXPECT_EQ(res.answered_by, "human:alice");
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.waits WHERE consumed_at IS NOT NULL"), 1);

  auto third = Store();
  ExecutionStart start = Begin(*third, "run-a", 3);
  CheckpointKey key{"approve", 1};
  ASSERT_TRUE(start.completed.count(key));
  EXPECT_EQ(start.completed.at(key).kind, CheckpointKind::kWait);
  EXPECT_EQ(start.completed.at(key).output, json(true));
  EXPECT_EQ(start.completed.at(key).fingerprint, req.fingerprint);
  EXPECT_EQ(start.completed.at(key).attempt, 2);
}

TEST_F(StoreTest, FirstAnswerWins) {
  auto store = Store();
  Begin(*store, "run-1st", 1);
  ASSERT_EQ(Must(store->ResolveWait(MakeWait("pick", kString))).kind, WaitResolution::Kind::kPending);
  auto admin = Admin();
  ASSERT_TRUE(admin->RecordAnswer("run-1st", "pick", "first", AnswerOptions{true, "human:a"}).ok());
  auto second = admin->RecordAnswer("run-1st", "pick", "second", AnswerOptions{true, "human:b"});
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), StatusCode::kAlreadyExists) << second.status();
  auto strict = admin->RecordAnswer("run-1st", "pick", "third", AnswerOptions{false, "human:c"});
  EXPECT_EQ(strict.status().code(), StatusCode::kAlreadyExists) << strict.status();
  pqxx::result r = Query("SELECT answer::text, answered_by FROM flowrun.waits WHERE run_uid = 'run-1st'");
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(json::parse(r[0][0].as<std::string>()), json("first"));
  EXPECT_EQ(r[0][1].as<std::string>(), "human:a");
  auto next = Store();
  Begin(*next, "run-1st", 2);
  EXPECT_EQ(Must(next->ResolveWait(MakeWait("pick", kString))).answer, json("first"));
}

TEST_F(StoreTest, ConcurrentAnswersExactlyOneWins) {
  auto store = Store();
  Begin(*store, "run-cc", 1);
  auto admin1 = Admin();
  auto admin2 = Admin();
  constexpr int kRounds = 6;
  for (int round = 0; round < kRounds; ++round) {
    std::string wait = "pick-" + std::to_string(round);
    ASSERT_EQ(Must(store->ResolveWait(MakeWait(wait, kString))).kind, WaitResolution::Kind::kPending);
    std::latch go(2);
    StatusOr<RecordedAnswer> r1 = Internal("not run"), r2 = Internal("not run");
    std::thread t1([&] {
      go.arrive_and_wait();
      r1 = admin1->RecordAnswer("run-cc", wait, "one", AnswerOptions{true, "human:one"});
    });
    std::thread t2([&] {
      go.arrive_and_wait();
      r2 = admin2->RecordAnswer("run-cc", wait, "two", AnswerOptions{true, "human:two"});
    });
    t1.join();
    t2.join();
    ASSERT_NE(r1.ok(), r2.ok()) << "round " << round << ": " << r1.status() << " / " << r2.status();
    const auto& loser = r1.ok() ? r2 : r1;
    EXPECT_EQ(loser.status().code(), StatusCode::kAlreadyExists) << loser.status();
    std::string winner = r1.ok() ? "one" : "two";
    pqxx::result r = Query("SELECT answer::text, answered_by FROM flowrun.waits WHERE run_uid = 'run-cc' AND name = $1",
                           wait);
    ASSERT_EQ(r.size(), 1u);
    EXPECT_EQ(json::parse(r[0][0].as<std::string>()), json(winner));
    EXPECT_EQ(r[0][1].as<std::string>(), "human:" + winner);
    EXPECT_FALSE(r1.ok() && r1->early);
    EXPECT_FALSE(r2.ok() && r2->early);
  }
}

TEST_F(StoreTest, ConcurrentEarlyAnswersForANewRunExactlyOneWins) {
  auto admin1 = Admin();
  auto admin2 = Admin();
  for (int round = 0; round < 6; ++round) {
    std::string uid = "run-early-" + std::to_string(round);
    std::latch go(2);
    StatusOr<RecordedAnswer> r1 = Internal("not run"), r2 = Internal("not run");
    std::thread t1([&] {
      go.arrive_and_wait();
      r1 = admin1->RecordAnswer(uid, "approve", true, AnswerOptions{true, "human:one"});
    });
    std::thread t2([&] {
      go.arrive_and_wait();
      r2 = admin2->RecordAnswer(uid, "approve", false, AnswerOptions{true, "human:two"});
    });
    t1.join();
    t2.join();
    ASSERT_NE(r1.ok(), r2.ok()) << uid << ": " << r1.status() << " / " << r2.status();
    const auto& loser = r1.ok() ? r2 : r1;
    EXPECT_EQ(loser.status().code(), StatusCode::kAlreadyExists) << loser.status();
    EXPECT_TRUE(r1.ok() ? r1->early : r2->early);
    EXPECT_EQ(Count("SELECT count(*) FROM flowrun.runs WHERE run_uid = $1", uid), 1);
    EXPECT_EQ(Count("SELECT count(*) FROM flowrun.waits WHERE run_uid = $1", uid), 1);
  }
}

TEST_F(StoreTest, EarlyAnswerIsStoredAndConsumedByResolveWait) {
  auto admin = Admin();
  // The run has not started yet.
  RecordedAnswer rec = Must(admin->RecordAnswer("run-e", "approve", true, AnswerOptions{true, "human:eve"}));
  EXPECT_TRUE(rec.early);
  EXPECT_EQ(rec.occurrence, 1);
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.waits WHERE run_uid = 'run-e' AND question IS NULL"
                  " AND answer = 'true'::jsonb"),
            1);
  EXPECT_EQ(Must(admin->GetRun("run-e")).status, RunStatus::kPending);
  auto dup = admin->RecordAnswer("run-e", "approve", false, AnswerOptions{true, "human:mallory"});
  EXPECT_EQ(dup.status().code(), StatusCode::kAlreadyExists) << dup.status();

  auto store = Store();
  EXPECT_EQ(Begin(*store, "run-e", 1).epoch, 1);
  WaitResolution res = Must(store->ResolveWait(MakeWait("approve", kBool)));
  EXPECT_EQ(res.kind, WaitResolution::Kind::kAnswered);
  EXPECT_EQ(res.answer, json(true));
  EXPECT_EQ(res.answered_by, "human:eve");
  EXPECT_TRUE(res.rejected_early_answer.empty());
  pqxx::result r = Query("SELECT question, consumed_at IS NOT NULL FROM flowrun.waits WHERE run_uid = 'run-e'");
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0][0].as<std::string>(), "Question for approve?");
  EXPECT_TRUE(r[0][1].as<bool>());
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.checkpoints WHERE run_uid = 'run-e' AND kind = 'wait'"
                  " AND status = 'completed'"),
            1);
}

TEST_F(StoreTest, EarlyAnswerViolatingTheSchemaIsRejectedAtResolveWait) {
  auto admin = Admin();
  ASSERT_TRUE(admin->RecordAnswer("run-eb", "approve", "yes please", AnswerOptions{true, "human:eve"}).ok());
  auto store = Store();
  Begin(*store, "run-eb", 1);
  WaitResolution res = Must(store->ResolveWait(MakeWait("approve", kBool)));
  EXPECT_EQ(res.kind, WaitResolution::Kind::kPending);
  EXPECT_FALSE(res.rejected_early_answer.empty());
  pqxx::result r = Query("SELECT answer IS NULL, rejected_answer::text, rejected_reason, question IS NOT NULL"
                         " FROM flowrun.waits WHERE run_uid = 'run-eb'");
  ASSERT_EQ(r.size(), 1u);
  EXPECT_TRUE(r[0][0].as<bool>());
  EXPECT_EQ(json::parse(r[0][1].as<std::string>()), json("yes please"));
  EXPECT_FALSE(r[0][2].as<std::string>().empty());
  EXPECT_TRUE(r[0][3].as<bool>());
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.checkpoints WHERE run_uid = 'run-eb'"), 0);
  // The wait is now open and takes a valid answer.
  auto run = Must(admin->GetRun("run-eb"));
  ASSERT_TRUE(run.open_wait.has_value());
  EXPECT_EQ(run.open_wait->name, "approve");
  auto rec = admin->RecordAnswer("run-eb", "approve", true, AnswerOptions{false, "human:eve"});
  ASSERT_TRUE(rec.ok()) << rec.status();
  EXPECT_FALSE(rec->early);
}

TEST_F(StoreTest, AnswerWithoutOpenWaitIsRefusedWhenEarlyAnswersAreNot) {
  auto store = Store();
  Begin(*store, "run-ne", 1);
  auto admin = Admin();
  auto r = admin->RecordAnswer("run-ne", "approve", true, AnswerOptions{false, "human:x"});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kFailedPrecondition) << r.status();
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.waits"), 0);
  // A run that does not exist at all.
  auto missing = admin->RecordAnswer("no-such-run", "approve", true, AnswerOptions{false, "human:x"});
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound) << missing.status();
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.runs WHERE run_uid = 'no-such-run'"), 0);
  // Wait names are bounded like checkpoint names.
  auto too_long = admin->RecordAnswer("run-ne", std::string(254, 'w'), true, AnswerOptions{true, ""});
  EXPECT_EQ(too_long.status().code(), StatusCode::kInvalidArgument);
  auto empty = admin->RecordAnswer("run-ne", "", true, AnswerOptions{true, ""});
  EXPECT_EQ(empty.status().code(), StatusCode::kInvalidArgument);
}

// ---------------------------------------------------------------------------
// Wait deadlines

TEST_F(StoreTest, ExpiredWaitWithDefaultPolicyIsAnsweredWithTheDefault) {
  WaitRequest req = MakeWait("approve", kString, seconds(1), OnTimeout::kUseDefault, json("fallback"));
  {
    auto store = Store();
    Begin(*store, "run-t", 1);
    ASSERT_EQ(Must(store->ResolveWait(req)).kind, WaitResolution::Kind::kPending);
    FinishRequest f;
    f.outcome = OutcomeKind::kWaiting;
    f.open_wait = "approve";
    MustOk(store->Finish(f));
  }
  auto admin = Admin();
  EXPECT_EQ(Must(admin->ExpireWait("run-t", std::chrono::system_clock::now())), RunAdmin::WaitExpiry::kNotDue);  // not due yet
  std::this_thread::sleep_for(milliseconds(1500));
  EXPECT_EQ(Must(admin->ExpireWait("run-t", std::chrono::system_clock::now())), RunAdmin::WaitExpiry::kDefaultAnswered);
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.waits WHERE answer = '\"fallback\"'::jsonb"
                  " AND answered_by = 'timeout-default'"),
            1);
  EXPECT_FALSE(Must(admin->GetRun("run-t")).open_wait.has_value());

  auto next = Store();
  Begin(*next, "run-t", 2);
  WaitResolution res = Must(next->ResolveWait(req));
  EXPECT_EQ(res.kind, WaitResolution::Kind::kAnswered);
  EXPECT_EQ(res.answer, json("fallback"));
  EXPECT_EQ(res.answered_by, "timeout-default");
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.checkpoints WHERE kind = 'wait' AND status = 'completed'"
                  " AND output = '\"fallback\"'::jsonb"),
            1);
}

TEST_F(StoreTest, ExpiredWaitWithFailPolicyFailsTheRun) {
  auto store = Store();
  Begin(*store, "run-tf", 1);
  ASSERT_EQ(Must(store->ResolveWait(MakeWait("approve", kBool, seconds(1), OnTimeout::kFail))).kind,
            WaitResolution::Kind::kPending);
  std::this_thread::sleep_for(milliseconds(1500));
  auto admin = Admin();
  EXPECT_EQ(Must(admin->ExpireWait("run-tf", std::chrono::system_clock::now())), RunAdmin::WaitExpiry::kRunFailed);
  RunState run = Must(admin->GetRun("run-tf"));
  EXPECT_EQ(run.status, RunStatus::kFailed);
  EXPECT_EQ(run.failure_reason, FailureReason::kWaitTimedOut);
  EXPECT_CONTAINS(run.error, "approve");
  // The failed run takes no answer, and its execution is fenced.
  auto answer = admin->RecordAnswer("run-tf", "approve", true, AnswerOptions{false, "human:late"});
  EXPECT_EQ(answer.status().code(), StatusCode::kFailedPrecondition) << answer.status();
  FinishRequest f;
  f.outcome = OutcomeKind::kWaiting;
  EXPECT_EQ(store->Finish(f).code(), StatusCode::kAborted);
  EXPECT_EQ(Must(admin->GetRun("run-tf")).status, RunStatus::kFailed);
}

// RunState.open_wait is "the open question of a waiting run". A run whose
// wait timed out with the fail policy is failed and refuses answers
// (kFailedPrecondition), so it must not show that wait as open.
TEST_F(StoreTest, RunFailedByWaitTimeoutShowsNoOpenWait) {
  auto store = Store();
  Begin(*store, "run-to", 1);
  ASSERT_EQ(Must(store->ResolveWait(MakeWait("approve", kBool, seconds(1), OnTimeout::kFail))).kind,
            WaitResolution::Kind::kPending);
  std::this_thread::sleep_for(milliseconds(1500));
  auto admin = Admin();
  ASSERT_EQ(Must(admin->ExpireWait("run-to", std::chrono::system_clock::now())), RunAdmin::WaitExpiry::kRunFailed);
  RunState run = Must(admin->GetRun("run-to"));
  EXPECT_EQ(run.status, RunStatus::kFailed);
  EXPECT_FALSE(run.open_wait.has_value()) << "failed run still shows open wait '" << run.open_wait->name << "'";
}

// The same for a cancelled run: it refuses answers, so its wait is not open.
TEST_F(StoreTest, CancelledRunShowsNoOpenWait) {
  {
    auto store = Store();
    Begin(*store, "run-cw", 1);
    ASSERT_EQ(Must(store->ResolveWait(MakeWait("approve", kBool))).kind, WaitResolution::Kind::kPending);
    FinishRequest f;
    f.outcome = OutcomeKind::kWaiting;
    f.open_wait = "approve";
    MustOk(store->Finish(f));
  }
  auto admin = Admin();
  ASSERT_TRUE(Must(admin->GetRun("run-cw")).open_wait.has_value());
  MustOk(admin->CancelRun("run-cw", "no longer needed"));
  RunState run = Must(admin->GetRun("run-cw"));
  EXPECT_EQ(run.status, RunStatus::kCancelled);
  EXPECT_FALSE(run.open_wait.has_value()) << "cancelled run still shows open wait '" << run.open_wait->name << "'";
}

TEST_F(StoreTest, ResolveWaitAppliesAnExpiredDeadlineItself) {
  auto store = Store();
  Begin(*store, "run-td", 1);
  WaitRequest fail = MakeWait("fail-wait", kBool, seconds(1), OnTimeout::kFail);
  WaitRequest dflt = MakeWait("default-wait", kBool, seconds(1), OnTimeout::kUseDefault, json(true));
  ASSERT_EQ(Must(store->ResolveWait(fail)).kind, WaitResolution::Kind::kPending);
  ASSERT_EQ(Must(store->ResolveWait(dflt)).kind, WaitResolution::Kind::kPending);
  std::this_thread::sleep_for(milliseconds(1500));
  auto next = Store();
  Begin(*next, "run-td", 2);
  EXPECT_EQ(Must(next->ResolveWait(fail)).kind, WaitResolution::Kind::kTimedOutFail);
  WaitResolution d = Must(next->ResolveWait(dflt));
  EXPECT_EQ(d.kind, WaitResolution::Kind::kAnswered);
  EXPECT_EQ(d.answer, json(true));
  EXPECT_EQ(d.answered_by, "timeout-default");
}

// ---------------------------------------------------------------------------
// Budget and LLM spend

TEST_F(StoreTest, BudgetSpendAndUsageByModel) {
  auto admin = Admin();
  // A budget set before the first attempt creates the run and wins over the
  // environment's initial budget.
  MustOk(admin->SetBudget("run-$", 1.0));
  EXPECT_EQ(Must(admin->GetRun("run-$")).status, RunStatus::kPending);
  auto store = Store();
  ExecutionStart start = Begin(*store, "run-$", 1, 5.0);
  ASSERT_TRUE(start.budget_usd.has_value());
  EXPECT_DOUBLE_EQ(*start.budget_usd, 1.0);

  auto b0 = Must(store->ReadBudget());
  ASSERT_TRUE(b0.first.has_value());
  EXPECT_DOUBLE_EQ(*b0.first, 1.0);
  EXPECT_EQ(b0.second, 0);

  CheckpointKey k{"research", 1};
  MustOk(store->RecordLlmCall(k, Priced("gpt-4o-mini", 1000, 200, 0.25, "reported")));
  MustOk(store->RecordLlmCall(std::nullopt, Priced("gpt-4o-mini", 3000, 400, 0.5, "price-table:gpt-4o-mini")));
  MustOk(store->RecordLlmCall(k, Priced("mystery", 700, 70, std::nullopt, "unknown")));
  MustOk(store->RecordLlmCall(k, Priced("mystery", 300, 30, std::nullopt, "unknown")));

  auto b1 = Must(store->ReadBudget());
  EXPECT_NEAR(b1.second, 0.75, 1e-9);
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.llm_calls WHERE cost_usd IS NULL AND price_source = 'unknown'"), 2);
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.llm_calls WHERE checkpoint_name IS NULL"), 1);

  // A person raises the budget: the store re-reads it.
  MustOk(admin->SetBudget("run-$", 10.0));
  auto b2 = Must(store->ReadBudget());
  ASSERT_TRUE(b2.first.has_value());
  EXPECT_DOUBLE_EQ(*b2.first, 10.0);
  MustOk(admin->SetBudget("run-$", std::nullopt));
  EXPECT_FALSE(Must(store->ReadBudget()).first.has_value());
  EXPECT_EQ(admin->SetBudget("run-$", -1.0).code(), StatusCode::kInvalidArgument);

  RunState run = Must(admin->GetRun("run-$"));
  EXPECT_EQ(run.spent.llm_calls, 4);
  EXPECT_EQ(run.spent.input_tokens, 5000);
  EXPECT_EQ(run.spent.output_tokens, 700);
  EXPECT_NEAR(run.spent.cost_usd, 0.75, 1e-9);
  EXPECT_EQ(run.spent.unknown_cost_calls, 2);

  auto by_model = Must(admin->UsageByModel("run-$"));
  ASSERT_EQ(by_model.size(), 2u);
  EXPECT_EQ(by_model[0].model, "gpt-4o-mini");
  EXPECT_EQ(by_model[0].usage.llm_calls, 2);
  EXPECT_EQ(by_model[0].usage.input_tokens, 4000);
  EXPECT_EQ(by_model[0].usage.output_tokens, 600);
  EXPECT_NEAR(by_model[0].usage.cost_usd, 0.75, 1e-9);
  EXPECT_EQ(by_model[0].usage.unknown_cost_calls, 0);
  EXPECT_EQ(by_model[1].model, "mystery");
  EXPECT_EQ(by_model[1].usage.llm_calls, 2);
  EXPECT_EQ(by_model[1].usage.cost_usd, 0);
  EXPECT_EQ(by_model[1].usage.unknown_cost_calls, 2);

  // The next execution starts from the run's spend so far.
  auto next = Store();
  EXPECT_NEAR(Begin(*next, "run-$", 2).spent_usd, 0.75, 1e-9);
}

// A cheap call (10 input tokens of gpt-4o-mini cost $0.0000015) must be
// stored with its cost, not rounded to micro-dollars or to zero: lib costs
// are "never a silent zero" (llm_usage.h).
TEST_F(StoreTest, SmallCallCostsAreStoredExactly) {
  auto store = Store();
  Begin(*store, "run-tiny", 1);
  for (int i = 0; i < 4; ++i)
    MustOk(store->RecordLlmCall(std::nullopt, Priced("gpt-4o-mini", 1, 0, 1.5e-7, "price-table:gpt-4o-mini")));
  MustOk(store->RecordLlmCall(std::nullopt, Priced("gpt-4o-mini", 10, 0, 1.5e-6, "price-table:gpt-4o-mini")));
  auto budget = Must(store->ReadBudget());
  EXPECT_NEAR(budget.second, 4 * 1.5e-7 + 1.5e-6, 1e-12);
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.llm_calls WHERE cost_usd = 0"), 0);
}

TEST_F(StoreTest, SmallBudgetsAreStoredExactly) {
  auto admin = Admin();
  MustOk(admin->SetBudget("run-sb", 2.5e-7));
  auto run = Must(admin->GetRun("run-sb"));
  ASSERT_TRUE(run.budget_usd.has_value());
  EXPECT_NEAR(*run.budget_usd, 2.5e-7, 1e-12);
  auto store = Store();
  ExecutionStart start = Begin(*store, "run-sb2", 1, 1.234567891);
  ASSERT_TRUE(start.budget_usd.has_value());
  EXPECT_NEAR(*start.budget_usd, 1.234567891, 1e-12);
}

// ---------------------------------------------------------------------------
// GetRun

TEST_F(StoreTest, GetRunReportsStatusAttemptsTotalsAndSaved) {
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

// ---------------------------------------------------------------------------
// Cancel and delete

TEST_F(StoreTest, CancelRunFencesTheExecutionAndRefusesLaterBegins) {
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

TEST_F(StoreTest, DeleteRunRemovesEveryRowOfThatRunOnly) {
  auto populate = [&](const std::string& uid) {
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

// ---------------------------------------------------------------------------
// Hostile names

TEST_F(StoreTest, NamesWithSqlMetacharactersRoundTrip) {
  const std::vector<std::string> names = {
      "x'; DROP TABLE flowrun.runs; --",
      "Robert'); DELETE FROM flowrun.checkpoints WHERE ('1'='1",
      "double\"quote and 'single' and `back`",
      "back\\slash \\\\ \\' \\n",
      "unicode: 日本語 — émoji 🚀 Ω",
      "$1 %s %n {} ? :name",
      std::string(253, 'n'),
  };
  const std::string uid = "run'; DROP TABLE flowrun.waits; --";
  auto store = Store();
  Begin(*store, uid, 1);
  TimePoint now = std::chrono::system_clock::now();
  auto admin = Admin();
  for (size_t i = 0; i < names.size(); ++i) {
    const std::string& name = names[i];
    CheckpointKey k{name, 1};
    ASSERT_FALSE(Must(store->CheckpointStarted(k, CheckpointKind::kStep, Fp(name), 1), "start " + name));
    MustOk(store->CheckpointCompleted(k, CheckpointKind::kStep, Fp(name), json{{"name", name}}.dump(), now, now,
                                      Usage{}),
           "complete " + name);
    // Waits use a second run: a wait is also a checkpoint of the same name.
    ASSERT_EQ(Must(store->SaveArtifact(name, "text/plain; charset=\"utf-8\"", name, k)), 1) << name;
  }
  {
    auto waits = Store();
    Begin(*waits, uid + "-waits", 1);
    for (const std::string& name : names) {
      ASSERT_EQ(Must(waits->ResolveWait(MakeWait(name, kString)), "wait " + name).kind,
                WaitResolution::Kind::kPending);
      auto rec = admin->RecordAnswer(uid + "-waits", name, "answer to " + name, AnswerOptions{false, name});
      ASSERT_TRUE(rec.ok()) << name << ": " << rec.status();
      EXPECT_EQ(rec->wait_name, name);
    }
    auto resumed = Store();
    Begin(*resumed, uid + "-waits", 2);
    for (const std::string& name : names) {
      WaitResolution r = Must(resumed->ResolveWait(MakeWait(name, kString)), "resolve " + name);
      EXPECT_EQ(r.kind, WaitResolution::Kind::kAnswered) << name;
      EXPECT_EQ(r.answer, json("answer to " + name));
      EXPECT_EQ(r.answered_by, name);
    }
    ExecutionStart s3 = Begin(*Store(), uid + "-waits", 3);
    for (const std::string& name : names) {
      ASSERT_TRUE(s3.completed.count(CheckpointKey{name, 1})) << name;
      EXPECT_EQ(s3.completed.at(CheckpointKey{name, 1}).kind, CheckpointKind::kWait);
    }
  }

  auto next = Store();
  ExecutionStart start = Begin(*next, uid, 2);
  EXPECT_EQ(start.completed.size(), names.size());
  for (const std::string& name : names) {
    CheckpointKey k{name, 1};
    ASSERT_TRUE(start.completed.count(k)) << name;
    EXPECT_EQ(start.completed.at(k).output, json({{"name", name}}));
    EXPECT_EQ(start.completed.at(k).fingerprint, Fp(name));
    Artifact a = Must(admin->LoadArtifact(uid, name, 0), "load " + name);
    EXPECT_EQ(a.data, name);
    EXPECT_EQ(a.info.name, name);
    EXPECT_EQ(a.info.content_type, "text/plain; charset=\"utf-8\"");
    EXPECT_EQ(a.info.checkpoint, name + "#1");
  }
  auto listed = Must(admin->ListArtifacts(uid));
  std::set<std::string> listed_names;
  for (const auto& a : listed) listed_names.insert(a.name);
  EXPECT_EQ(listed_names, std::set<std::string>(names.begin(), names.end()));
  RunState run = Must(admin->GetRun(uid));
  EXPECT_EQ(run.uid, uid);
  EXPECT_EQ(run.checkpoints_completed, static_cast<int64_t>(names.size()));

  // Nothing was dropped: the 7 tables of version 1, schema_migrations and
  // metric_rollup (version 2).
  EXPECT_EQ(Count("SELECT count(*) FROM pg_tables WHERE schemaname = 'flowrun'"), 9);
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.checkpoints"), static_cast<int64_t>(2 * names.size()));
}

// ---------------------------------------------------------------------------
// Artifacts

TEST_F(StoreTest, ArtifactsAreVersionedAndBinarySafe) {
  auto store = Store();
  Begin(*store, "run-art", 1);
  std::string binary;
  for (int rep = 0; rep < 4; ++rep)
    for (int c = 0; c < 256; ++c) binary.push_back(static_cast<char>(c));
  binary += std::string("\0\0tail\0", 7);
  ASSERT_EQ(binary.size(), 1031u);

  EXPECT_EQ(Must(store->SaveArtifact("report", "text/markdown", "# v1", std::nullopt)), 1);
  EXPECT_EQ(Must(store->SaveArtifact("report", "text/markdown", "# v2", CheckpointKey{"write", 2})), 2);
  EXPECT_EQ(Must(store->SaveArtifact("blob", "application/octet-stream", binary, std::nullopt)), 1);
  EXPECT_EQ(Must(store->SaveArtifact("report", "text/markdown", "# v3", std::nullopt)), 3);
  EXPECT_EQ(Must(store->SaveArtifact("empty", "text/plain", "", std::nullopt)), 1);

  auto admin = Admin();
  Artifact latest = Must(admin->LoadArtifact("run-art", "report", 0));
  EXPECT_EQ(latest.info.version, 3);
  EXPECT_EQ(latest.data, "# v3");
  Artifact v2 = Must(admin->LoadArtifact("run-art", "report", 2));
  EXPECT_EQ(v2.info.version, 2);
  EXPECT_EQ(v2.data, "# v2");
  EXPECT_EQ(v2.info.checkpoint, "write#2");
  EXPECT_EQ(v2.info.content_type, "text/markdown");
  EXPECT_EQ(v2.info.size_bytes, 4);
  EXPECT_EQ(Must(admin->LoadArtifact("run-art", "report", 1)).data, "# v1");
  EXPECT_EQ(Must(admin->LoadArtifact("run-art", "report", 1)).info.checkpoint, "");

  Artifact blob = Must(admin->LoadArtifact("run-art", "blob", 0));
  EXPECT_EQ(blob.data.size(), binary.size());
  EXPECT_TRUE(blob.data == binary) << "binary artifact changed in the round trip";
  EXPECT_EQ(blob.info.size_bytes, static_cast<int64_t>(binary.size()));
  EXPECT_EQ(blob.info.sha256,
            Query("SELECT encode(sha256(data), 'hex') FROM flowrun.artifacts WHERE name = 'blob'")[0][0]
                .as<std::string>());
  EXPECT_EQ(Count("SELECT length(data) FROM flowrun.artifacts WHERE name = 'blob'"), 1031);
  EXPECT_EQ(Must(admin->LoadArtifact("run-art", "empty", 0)).data, "");

  auto missing = admin->LoadArtifact("run-art", "report", 4);
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(admin->LoadArtifact("run-art", "nope", 0).status().code(), StatusCode::kNotFound);

  auto list = Must(admin->ListArtifacts("run-art"));
  std::vector<std::pair<std::string, int>> got;
  for (const auto& a : list) got.emplace_back(a.name, a.version);
  std::vector<std::pair<std::string, int>> want = {
      {"blob", 1}, {"empty", 1}, {"report", 1}, {"report", 2}, {"report", 3}};
  EXPECT_EQ(got, want);
  for (const auto& a : list) EXPECT_EQ(a.sha256.size(), 64u) << a.name;

  // Versions continue across executions.
  auto next = Store();
  Begin(*next, "run-art", 2);
  EXPECT_EQ(Must(next->SaveArtifact("report", "text/markdown", "# v4", std::nullopt)), 4);
}

// ---------------------------------------------------------------------------
// Output PostgreSQL cannot store

TEST_F(StoreTest, OutputWithNulCharacterIsRejectedAndNothingHalfWritten) {
  auto store = Store();
  Begin(*store, "run-nul", 1);
  CheckpointKey k{"nul", 1};
  ASSERT_FALSE(Must(store->CheckpointStarted(k, CheckpointKind::kStep, Fp("nul"), 1)));
  json out = {{"s", std::string("a\0b", 3)}};
  std::string text = out.dump();
  ASSERT_NE(text.find("\\u0000"), std::string::npos);
  TimePoint now = std::chrono::system_clock::now();
  Usage u;
  u.llm_calls = 1;
  u.cost_usd = 0.5;
  Status st = store->CheckpointCompleted(k, CheckpointKind::kStep, Fp("nul"), text, now, now, u);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << st;
  EXPECT_EQ(store->in_doubt_writes_settled(), 0);
  pqxx::result r = Query("SELECT status, output IS NULL, llm_calls, cost_usd FROM flowrun.checkpoints"
                         " WHERE run_uid = 'run-nul'");
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0][0].as<std::string>(), "running");
  EXPECT_TRUE(r[0][1].as<bool>());
  EXPECT_EQ(r[0][2].as<int64_t>(), 0);
  EXPECT_EQ(r[0][3].as<double>(), 0);

  // The store is still usable, and a later Begin does not see a completion.
  MustOk(store->CheckpointCompleted(k, CheckpointKind::kStep, Fp("nul"), R"({"s":"ab"})", now, now, u));
  auto next = Store();
  ExecutionStart start = Begin(*next, "run-nul", 2);
  ASSERT_TRUE(start.completed.count(k));
  EXPECT_EQ(start.completed.at(k).output, json({{"s", "ab"}}));
}

TEST_F(StoreTest, MalformedOutputJsonIsRejected) {
  auto store = Store();
  Begin(*store, "run-badjson", 1);
  TimePoint now = std::chrono::system_clock::now();
  Status st = store->CheckpointCompleted(CheckpointKey{"x", 1}, CheckpointKind::kStep, Fp("x"), "{not json", now,
                                         now, Usage{});
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << st;
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.checkpoints"), 0);
}

// ---------------------------------------------------------------------------
// Connection strings and an unreachable server

TEST_F(StoreTest, MalformedConnectionStringIsInvalidArgumentWithoutThePassword) {
  const std::vector<std::string> bad = {
      "password=s3cr3t host=127.0.0.1 port",
      "host=127.0.0.1 password='s3cr3t",
      "host=127.0.0.1 password=s3cr3t bogus_option=1",
      "postgresql://flowrun:s3cr3t@127.0.0.1:5432/db?bogus_param=1",
  };
  for (const std::string& conninfo : bad) {
    PostgresOptions o;
    o.conninfo = conninfo;
    o.connect_attempts = 1;
    o.initial_backoff = milliseconds(10);
    auto t0 = std::chrono::steady_clock::now();
    auto store = OpenPostgresRunStore(o);
    ASSERT_FALSE(store.ok()) << conninfo;
    EXPECT_EQ(store.status().code(), StatusCode::kInvalidArgument) << conninfo << " -> " << store.status();
    EXPECT_NOT_CONTAINS(store.status().message(), "s3cr3t");
    auto admin = OpenPostgresRunAdmin(o);
    ASSERT_FALSE(admin.ok()) << conninfo;
    EXPECT_EQ(admin.status().code(), StatusCode::kInvalidArgument) << conninfo << " -> " << admin.status();
    EXPECT_NOT_CONTAINS(admin.status().message(), "s3cr3t");
    EXPECT_LT(std::chrono::steady_clock::now() - t0, seconds(10)) << conninfo;
  }
}

// "port=" with nothing after it is what an unset template variable leaves
// (port=${PGPORT}). libpq's parser accepts the empty value and silently falls
// back to port 5432, so the run either reports "database unavailable"
// (kUnavailable, exit code 3, retried as an outage) or, worse, connects to
// whatever server listens on 5432. postgres.h promises kInvalidArgument for a
// malformed connection string (a config error, exit code 2).
TEST_F(StoreTest, EmptyPortIsInvalidArgument) {
  PostgresOptions o;
  o.conninfo = "host=127.0.0.1 port=";
  o.connect_attempts = 1;
  o.initial_backoff = milliseconds(10);
  auto store = OpenPostgresRunStore(o);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kInvalidArgument) << store.status();
  auto admin = OpenPostgresRunAdmin(o);
  ASSERT_FALSE(admin.ok());
  EXPECT_EQ(admin.status().code(), StatusCode::kInvalidArgument) << admin.status();
}

int UnusedPort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

TEST_F(StoreTest, UnreachableServerIsUnavailableWithinBoundedTime) {
  PostgresOptions o;
  o.conninfo = "host=127.0.0.1 port=" + std::to_string(UnusedPort()) + " user=flowrun password=s3cr3t dbname=x";
  o.connect_attempts = 2;
  o.initial_backoff = milliseconds(100);
  auto t0 = std::chrono::steady_clock::now();
  auto store = OpenPostgresRunStore(o);
  auto elapsed = std::chrono::steady_clock::now() - t0;
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kUnavailable) << store.status();
  EXPECT_NOT_CONTAINS(store.status().message(), "s3cr3t");
  EXPECT_LT(elapsed, seconds(10));
  EXPECT_GE(elapsed, milliseconds(90));  // it did back off between its two attempts

  auto admin = OpenPostgresRunAdmin(o);
  EXPECT_EQ(admin.status().code(), StatusCode::kUnavailable) << admin.status();
  EXPECT_EQ(Migrate(o).code(), StatusCode::kUnavailable);
}

TEST_F(StoreTest, StoppedServerMakesWritesUnavailableAndRestartRecovers) {
  auto store = Store(Options("flowrun-stop"));
  Begin(*store, "run-stop", 1);
  // The server is this test binary's own; it is restarted before the test ends.
  Server().Stop();
  auto t0 = std::chrono::steady_clock::now();
  Status st = store->RecordLlmCall(std::nullopt, Priced("m", 1, 1, 0.1, "reported"));
  EXPECT_EQ(st.code(), StatusCode::kUnavailable) << st;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, seconds(30));
  Server().Restart();
  MustOk(store->RecordLlmCall(std::nullopt, Priced("m", 1, 1, 0.1, "reported")));
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.llm_calls"), 1);
}

// ---------------------------------------------------------------------------
// The typed value sets in the database (migration 3, flowrun/run_states.h)

// A database as the previous schema left it: the words older builds wrote,
// including the ones outside today's sets, migrate into the typed contract.
TEST_F(StoreTest, MigratingOldRowsGivesThemTypedStatesAndReasons) {
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

TEST_F(StoreTest, TheDatabaseRefusesWordsOutsideTheTypedSets) {
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
TEST_F(StoreTest, OpeningChecksTheSchemaVersionInsteadOfMigrating) {
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
    if (version > 0) EXPECT_EQ(Count("SELECT max(version) FROM flowrun.schema_migrations"), version);
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

TEST_F(StoreTest, MigrateToRefusesAVersionThisBuildDoesNotHave) {
  EXPECT_EQ(MigrateTo(Options(), CurrentSchemaVersion() + 1).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(MigrateTo(Options(), 0).code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace flowrun

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::AddGlobalTestEnvironment(new flowrun::testing::PostgresEnvironment());
  return RUN_ALL_TESTS();
}
