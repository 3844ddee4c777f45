// The totals against a real PostgreSQL (ctest -L metrics): the schema's
// metric_contributions() sums exactly what the tables hold, deleting a run
// with the real RunAdmin folds its share into the rollup so no total drops,
// a commit reaches DbTotals through NOTIFY within seconds (no periodic read),
// and a dropped connection is followed by a full re-read.
#include <gtest/gtest.h>

#include <cmath>

#include "flowrun/metrics/db_totals.h"
#include "flowrun/metrics/postgres_metrics_source.h"
#include "flowrun/postgres.h"
#include "support/postgres_server.h"

namespace flowrun::metrics {
namespace {

using flowrun::testing::PostgresServer;

class MetricsDbTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { pg_ = PostgresServer::Start().release(); }
  static void TearDownTestSuite() {
    delete pg_;
    pg_ = nullptr;
  }
  void SetUp() override {
    db_ = "m" + std::to_string(++counter_);
    pg_->CreateDatabase(db_);
    PostgresOptions o;
    o.conninfo = Conn();
    ASSERT_TRUE(Migrate(o).ok());
  }
  std::string Conn() const { return pg_->ConnectionString(db_); }
  std::string Sql(const std::string& sql) const { return pg_->Psql(db_, sql); }
  double SqlNumber(const std::string& sql) const { return std::stod(Sql(sql)); }

  // A run with two LLM calls (one unpriced) and an attempt that saved 0.25 USD.
  void AddRun(const std::string& uid, const std::string& flow, double usd) {
    Sql("INSERT INTO flowrun.runs (run_uid, namespace, name, flow, status) VALUES ('" + uid + "', 'team', 'n-" + uid +
        "', '" + flow + "', 'succeeded');"
        "INSERT INTO flowrun.attempts (run_uid, epoch, attempt, outcome, live_checkpoints, cached_checkpoints,"
        " saved_llm_calls, saved_input_tokens, saved_usd) VALUES ('" + uid + "', 1, 1, 'succeeded', 2, 3, 1, 40, 0.25);"
        "INSERT INTO flowrun.llm_calls (run_uid, epoch, seq, attempt, model, input_tokens, output_tokens,"
        " cached_tokens, latency_ms, cost_usd, price_source) VALUES"
        " ('" + uid + "', 1, 1, 1, 'gpt-4o', 100, 50, 10, 1, " + std::to_string(usd) + ", 'table'),"
        " ('" + uid + "', 1, 2, 1, 'mystery', 7, 3, 0, 1, NULL, 'unknown')");
  }

  static double Value(const DbSnapshot& s, const std::string& metric, const std::string& model = "",
                      const std::string& label = "", const std::string& flow = "research") {
    for (const auto& r : s.rows)
      if (r.metric == metric && r.model == model && r.label == label && r.flow == flow) return r.value;
    return 0;
  }

  static inline PostgresServer* pg_ = nullptr;
  static inline int counter_ = 0;
  std::string db_;
};

StatusOr<DbSnapshot> ReadOnce(const std::string& conn) {
  auto src = NewPostgresMetricsSource(conn);
  FLOWRUN_RETURN_IF_ERROR(src->Connect());
  return src->Read();
}

TEST_F(MetricsDbTest, TotalsEqualTheTablesAndSurviveDeletingRuns) {
  AddRun("u1", "research", 0.123456);
  AddRun("u2", "research", 1.5);
  AddRun("u3", "other", 2);
  auto snap = ReadOnce(Conn());
  ASSERT_TRUE(snap.ok()) << snap.status();
  double db_sum = SqlNumber(
      "SELECT sum(c.cost_usd) FROM flowrun.llm_calls c JOIN flowrun.runs r USING (run_uid) WHERE r.flow = 'research'");
  EXPECT_DOUBLE_EQ(Value(*snap, "cost_usd", "gpt-4o"), db_sum);
  EXPECT_EQ(Value(*snap, "llm_calls", "gpt-4o"), 2);
  EXPECT_EQ(Value(*snap, "unpriced_llm_calls", "mystery"), 2);
  EXPECT_EQ(Value(*snap, "tokens", "gpt-4o", "input"), 200);
  EXPECT_EQ(Value(*snap, "saved_usd"), 0.5);
  EXPECT_EQ(Value(*snap, "checkpoints", "", "cache"), 6);
  EXPECT_EQ(Value(*snap, "runs_finished", "", "succeeded"), 2);

  // Delete u1 the way the controller does (retention=delete).
  auto admin = OpenPostgresRunAdmin(PostgresOptions{.conninfo = Conn()});
  ASSERT_TRUE(admin.ok()) << admin.status();
  ASSERT_TRUE((*admin)->DeleteRun("u1").ok());
  EXPECT_EQ(Sql("SELECT count(*) FROM flowrun.llm_calls WHERE run_uid = 'u1'"), "0");
  auto after = ReadOnce(Conn());
  ASSERT_TRUE(after.ok()) << after.status();
  for (const auto& r : snap->rows) {
    double v = 0;
    for (const auto& a : after->rows)
      if (a.metric == r.metric && a.ns == r.ns && a.flow == r.flow && a.model == r.model && a.label == r.label)
        v = a.value;
    EXPECT_DOUBLE_EQ(v, r.value) << r.metric << " " << r.flow << " " << r.model << " " << r.label;
  }
  EXPECT_GT(SqlNumber("SELECT count(*) FROM flowrun.metric_rollup"), 0);
}

TEST_F(MetricsDbTest, ACommitReachesTheTotalsThroughNotifyAndAReconnectRereadsEverything) {
  DbTotalsOptions o;
  o.min_interval = std::chrono::milliseconds(50);
  o.max_interval = std::chrono::hours(1);  // no periodic read: only NOTIFY
  o.backoff_initial = std::chrono::milliseconds(100);
  DbTotals totals(NewPostgresMetricsSource(Conn()), o);
  totals.Start();
  ASSERT_TRUE(totals.WaitForReads(1, std::chrono::seconds(30)));
  auto cost = [&] {
    for (const auto& f : totals.Collect())
      if (f.name == "flowrun_cost_usd_total")
        for (const auto& m : f.metric)
          for (const auto& l : m.label)
            if (l.name == "model" && l.value == "gpt-4o") return m.counter.value;
    return 0.0;
  };
  EXPECT_EQ(cost(), 0);

  auto t0 = std::chrono::steady_clock::now();
  AddRun("u1", "research", 0.75);
  bool seen = false;
  while (std::chrono::steady_clock::now() - t0 < std::chrono::seconds(10) && !(seen = cost() == 0.75))
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_TRUE(seen) << "the commit did not reach the totals within 10 s";
  std::printf("commit -> totals: %.0f ms\n",
              std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());

  // Drop the listening connection, then commit while it reconnects: the full
  // re-read after the reconnect must include it.
  uint64_t next = totals.reads_started() + 1;
  ASSERT_GE(pg_->TerminateConnections(db_, "flowrun-controller-metrics"), 1);
  AddRun("u2", "research", 0.25);
  ASSERT_TRUE(totals.WaitForReads(next, std::chrono::seconds(30)));
  seen = false;
  t0 = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - t0 < std::chrono::seconds(10) && !(seen = cost() == 1.0))
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_TRUE(seen) << "after the reconnect the totals read " << cost();
  totals.Stop();
}

}  // namespace
}  // namespace flowrun::metrics
