// Connections: reconnecting after the backend is terminated, malformed
// connection strings, an unreachable server, a stopped and restarted one.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "store_fixture.h"

namespace flowrun::store_test {
namespace {

class StoreConnection : public StoreTest {};

TEST_F(StoreConnection, StoreReconnectsAfterItsBackendIsTerminated) {
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

TEST_F(StoreConnection, AdminReconnectsAfterItsBackendIsTerminated) {
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

// Connection strings and an unreachable server.

TEST_F(StoreConnection, MalformedConnectionStringIsInvalidArgumentWithoutThePassword) {
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
TEST_F(StoreConnection, EmptyPortIsInvalidArgument) {
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

TEST_F(StoreConnection, UnreachableServerIsUnavailableWithinBoundedTime) {
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

TEST_F(StoreConnection, StoppedServerMakesWritesUnavailableAndRestartRecovers) {
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

}  // namespace
}  // namespace flowrun::store_test
