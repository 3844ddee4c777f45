// The read API's PostgreSQL store against a real PostgreSQL with flowrun's
// real schema (migrated by the runtime's Migrate): which execution a name
// means, keyset pages over 1,205 calls without gaps or repeats, the order by
// cost, sums that match the database exactly, artifact bytes, the size
// limits, the diff, and 503 when the database is gone. The last test drives
// the whole core over this store and compares its JSON with psql's answers.
#include <gtest/gtest.h>

#include <set>

#include <nlohmann/json.hpp>

#include "flowrun/postgres.h"
#include "flowrun/replay.h"
#include "flowrun/run_admin.h"
#include "flowrun/query/money.h"
#include "flowrun/query/postgres_query_store.h"
#include "flowrun/query/query_api.h"
#include "support/postgres_server.h"

namespace flowrun::query {
namespace {

using flowrun::testing::PostgresServer;
using nlohmann::json;

class AllowAll final : public Authorizer {
 public:
  StatusOr<Decision> Authorize(const Identity&, const ResourceAttributes&) override { return Decision{true, ""}; }
};

class QueryDbTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    pg_ = PostgresServer::Start().release();
    PostgresOptions po;
    po.conninfo = pg_->ConnectionString();
    ASSERT_TRUE(Migrate(po).ok());
    // An older execution under the same name (deleted FlowRun, rows kept), the current one, another run.
    pg_->Psql("postgres", R"SQL(
INSERT INTO flowrun.runs (run_uid, namespace, name, flow, status, attempt, epoch, budget_usd, created_at)
  VALUES ('old', 'team-a', 'r1', 'f', 'succeeded', 1, 1, NULL, now() - interval '1 day'),
         ('u1', 'team-a', 'r1', 'research', 'waiting', 2, 2, 2.5, now()),
         ('u2', 'team-a', 'r2', 'research', 'succeeded', 1, 1, NULL, now()),
         ('u3', 'team-b', 'r1', 'research', 'succeeded', 1, 1, NULL, now());
INSERT INTO flowrun.attempts (run_uid, epoch, attempt, outcome, saved_usd, live_checkpoints, cached_checkpoints)
  VALUES ('u1', 1, 1, 'waiting', 0, 3, 0), ('u1', 2, 2, 'running', 0.0125, 1, 3);
INSERT INTO flowrun.llm_calls (run_uid, epoch, seq, checkpoint_name, occurrence, attempt, model, input_tokens,
                               output_tokens, cached_tokens, latency_ms, cost_usd, price_source)
  SELECT 'u1', 1 + (i / 700), i, CASE WHEN i % 50 = 0 THEN NULL ELSE 'step' || (i % 7) END,
         CASE WHEN i % 50 = 0 THEN NULL ELSE 1 END, 1, CASE WHEN i % 3 = 0 THEN 'gpt-4o' ELSE 'gpt-4o-mini' END,
         100 + i, 10 + i, i % 5, 12.5, CASE WHEN i % 101 = 0 THEN NULL ELSE (i % 89) * 0.0000019050000000000002 END, 'table'
  FROM generate_series(0, 1204) i;
INSERT INTO flowrun.checkpoints (run_uid, name, occurrence, kind, fingerprint, status, output, attempt, epoch,
                                 started_at, cost_usd)
  SELECT 'u1', 'step' || (i % 7), 1 + i / 7, 'step', 'fp', 'completed', jsonb_build_object('i', i), 1 + (i / 20), 1,
         CASE WHEN i = 29 THEN NULL ELSE timestamptz '2026-12-01 10:00:00+00' + i * interval '1 second' END, i * 0.001
  FROM generate_series(0, 29) i;
INSERT INTO flowrun.checkpoints (run_uid, name, occurrence, kind, fingerprint, status, output, attempt, epoch, cost_usd)
  VALUES ('u1', 'huge', 1, 'step', 'fp', 'completed', jsonb_build_object('s', repeat('x', 5000)), 2, 2, 0),
         ('u2', 'step0', 1, 'step', 'fp', 'completed', '{"i": 0}', 1, 1, 0.5),
         ('u2', 'step1', 1, 'step', 'fp', 'completed', '{"i": "changed"}', 1, 1, 0.5),
         ('u2', 'only2', 1, 'step', 'fp', 'failed', NULL, 1, 1, 0);
INSERT INTO flowrun.artifacts (run_uid, name, version, epoch, seq, content_type, data, size_bytes, sha256, checkpoint)
  VALUES ('u1', 'report.md', 1, 1, 1, 'text/markdown', 'v1', 2, 'sha-v1', 'write'),
         ('u1', 'report.md', 2, 2, 1, 'text/markdown', convert_to(E'v2\n\x01', 'UTF8'), 4, 'sha-v2', 'write'),
         ('u1', 'big.bin', 1, 1, 2, 'application/octet-stream', decode(repeat('ab', 3000), 'hex'), 3000, 'sha-big', ''),
         ('u2', 'report.md', 1, 1, 1, 'text/markdown', 'v2', 2, 'sha-v2', 'write');
INSERT INTO flowrun.waits (run_uid, name, occurrence, question, asked_at, on_timeout)
  VALUES ('u1', 'proceed', 1, 'Proceed?', now(), 'fail');
)SQL");
  }
  static void TearDownTestSuite() {
    delete pg_;
    pg_ = nullptr;
  }
  void SetUp() override { store_ = NewPostgresQueryStore({pg_->ConnectionString(), 2}); }

  static PostgresServer* pg_;
  std::unique_ptr<QueryStore> store_;
};
PostgresServer* QueryDbTest::pg_ = nullptr;

TEST_F(QueryDbTest, NameMeansTheNewestExecutionInThatNamespace) {
  auto r = store_->FindRun("team-a", "r1");
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_TRUE(r->has_value());
  EXPECT_EQ((*r)->uid, "u1");
  EXPECT_EQ((*r)->budget_usd, 2.5);
  EXPECT_EQ((*r)->status, "waiting");
  EXPECT_EQ((*r)->created_at.size(), std::string("2026-12-03T11:40:00.123456Z").size()) << (*r)->created_at;
  EXPECT_EQ((*store_->FindRun("team-b", "r1"))->uid, "u3");
  EXPECT_FALSE(store_->FindRun("team-c", "r1")->has_value());
  EXPECT_FALSE(store_->FindRun("team-a", "r1' OR '1'='1")->has_value()) << "parameters, not SQL";
}

TEST_F(QueryDbTest, CallsPageByTimeAndByCostWithoutGapsOrRepeats) {
  for (CallOrder order : {CallOrder::kTime, CallOrder::kCost}) {
    std::optional<CallKey> after;
    std::vector<CallRow> all;
    for (int page = 0; page < 10; ++page) {
      auto rows = store_->Calls("u1", order, after, 500);
      ASSERT_TRUE(rows.ok()) << rows.status();
      if (rows->empty()) break;
      all.insert(all.end(), rows->begin(), rows->end());
      const CallRow& last = rows->back();
      after = CallKey{last.usd ? *last.usd : -1.0, last.epoch, last.seq};
    }
    ASSERT_EQ(all.size(), 1205u);
    std::set<int64_t> seqs;
    for (const auto& c : all) seqs.insert(c.seq);
    EXPECT_EQ(seqs.size(), 1205u);
    if (order == CallOrder::kCost) {
      for (size_t i = 1; i < all.size(); ++i) {
        const double a = all[i - 1].usd.value_or(-1), b = all[i].usd.value_or(-1);
        ASSERT_GE(a, b) << "at " << i;
      }
      const std::string top = pg_->Psql("postgres",
          "SELECT seq FROM flowrun.llm_calls WHERE run_uid = 'u1' ORDER BY cost_usd DESC NULLS LAST, epoch, seq LIMIT 1");
      EXPECT_EQ(std::to_string(all.front().seq), top);
      EXPECT_FALSE(all.back().usd.has_value());
    }
  }
}

TEST_F(QueryDbTest, TotalsAndGroupsMatchTheDatabase) {
  auto t = store_->RunTotals("u1");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(FormatUsd(t->spent_usd),
            FormatUsd(std::stod(pg_->Psql("postgres", "SELECT sum(cost_usd) FROM flowrun.llm_calls WHERE run_uid = 'u1'"))));
  EXPECT_EQ(t->llm_calls, 1205);
  EXPECT_EQ(t->unpriced_calls, std::stoll(pg_->Psql("postgres",
      "SELECT count(*) FROM flowrun.llm_calls WHERE run_uid = 'u1' AND cost_usd IS NULL")));
  EXPECT_EQ(FormatUsd(t->saved_usd), "0.0125");
  EXPECT_EQ(t->checkpoints, 31);
  auto models = store_->UsageByModel("u1", 100);
  ASSERT_TRUE(models.ok());
  ASSERT_EQ(models->size(), 2u);
  EXPECT_GE((*models)[0].usd, (*models)[1].usd);
  EXPECT_EQ((*models)[0].llm_calls + (*models)[1].llm_calls, 1205);
  auto cps = store_->UsageByCheckpoint("u1", 3);
  ASSERT_TRUE(cps.ok());
  EXPECT_EQ(cps->size(), 3u);
  auto all_cps = store_->UsageByCheckpoint("u1", 100);
  bool outside = false;
  for (const auto& g : *all_cps) outside |= !g.key.has_value();
  EXPECT_TRUE(outside) << "calls outside any checkpoint form their own group";
  auto wait = store_->FindOpenWait("u1");
  ASSERT_TRUE(wait.ok() && wait->has_value());
  EXPECT_EQ((*wait)->name, "proceed");
  auto attempts = store_->LastAttempts("u1", 1);
  ASSERT_TRUE(attempts.ok());
  EXPECT_EQ(attempts->total, 2);
  ASSERT_EQ(attempts->rows.size(), 1u);
  EXPECT_EQ(attempts->rows[0].attempt, 2) << "the last ones";
}

TEST_F(QueryDbTest, CheckpointsTimelinePages) {
  std::optional<CheckpointKey> after;
  std::vector<CheckpointRow> all;
  for (int i = 0; i < 10; ++i) {
    auto rows = store_->Checkpoints("u1", after, 7);
    ASSERT_TRUE(rows.ok()) << rows.status();
    if (rows->empty()) break;
    all.insert(all.end(), rows->begin(), rows->end());
    after = CheckpointKey{rows->back().start_key, rows->back().name, rows->back().occurrence};
  }
  ASSERT_EQ(all.size(), 31u);
  EXPECT_EQ(all.front().started_at, "2026-12-01T10:00:00.000000Z");
  for (size_t i = 1; i < all.size(); ++i) EXPECT_LE(all[i - 1].start_key, all[i].start_key);
  EXPECT_TRUE(all.back().started_at.empty()) << "not started: last";
}

TEST_F(QueryDbTest, PayloadsWithinLimits) {
  auto a = store_->Artifact("u1", "report.md", std::nullopt, 1 << 20);
  ASSERT_TRUE(a.ok() && a->has_value()) << a.status();
  EXPECT_EQ((*a)->meta.version, 2);
  EXPECT_EQ((*a)->bytes, std::string("v2\n\x01", 4));
  EXPECT_EQ((*store_->Artifact("u1", "report.md", 1, 1 << 20))->bytes, "v1");
  EXPECT_FALSE(store_->Artifact("u1", "report.md", 3, 1 << 20)->has_value());
  auto big = store_->Artifact("u1", "big.bin", std::nullopt, 100);
  ASSERT_TRUE(big.ok() && big->has_value());
  EXPECT_EQ((*big)->meta.size_bytes, 3000);
  EXPECT_TRUE((*big)->bytes.empty()) << "not read above the limit";
  auto list = store_->Artifacts("u1", ArtifactKey{"big.bin", 1}, 10);
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].name, "report.md");
  auto out = store_->Output("u1", "step0", 1, 1000);
  ASSERT_TRUE(out.ok() && out->has_value());
  EXPECT_EQ(json::parse(*(*out)->output_json)["i"], 0);
  auto huge = store_->Output("u1", "huge", 1, 1000);
  ASSERT_TRUE(huge.ok() && huge->has_value());
  EXPECT_FALSE((*huge)->output_json.has_value());
  EXPECT_GT((*huge)->size_bytes, 5000);
}

TEST_F(QueryDbTest, DiffComparesCheckpointsAndLatestArtifacts) {
  auto d = store_->DiffCheckpoints("u1", "u2", 1000);
  ASSERT_TRUE(d.ok()) << d.status();
  std::map<std::string, DiffCheckpointRow> by;
  for (const auto& r : *d) by[r.name + "#" + std::to_string(r.occurrence)] = r;
  EXPECT_TRUE(by.at("step0#1").output_equal);
  EXPECT_FALSE(by.at("step1#1").output_equal);
  EXPECT_FALSE(by.at("only2#1").self.has_value());
  EXPECT_FALSE(by.at("step0#2").other.has_value());
  auto arts = store_->DiffArtifacts("u1", "u2", 10);
  ASSERT_TRUE(arts.ok());
  ASSERT_EQ(arts->size(), 2u);
  EXPECT_EQ((*arts)[1].name, "report.md");
  EXPECT_EQ((*arts)[1].self_version, 2);
  EXPECT_EQ((*arts)[1].self_sha256, (*arts)[1].other_sha256);
}

// A replay of r2 prepared by the runtime's own RunAdmin (the snapshot), then
// rows as the engine serves them: step0 copied (usage inherited, no call),
// step1 recomputed live (a priced call), new1 live only in the replay.
TEST_F(QueryDbTest, ReplayCopiedInheritedAndTheLineageDiff) {
  PostgresOptions po;
  po.conninfo = pg_->ConnectionString();
  auto admin = OpenPostgresRunAdmin(po);
  ASSERT_TRUE(admin.ok()) << admin.status();
  ReplayRequest req;
  req.run_uid = "u4";
  req.namespace_ = "team-a";
  req.name = "r2-r1";
  req.flow = "research";
  req.source_run_uid = "u2";
  req.source_name = "r2";
  req.cut = {"step1", 1};
  auto info = (*admin)->PrepareReplay(req);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->snapshot_checkpoints, 2);  // step0, step1 (only2 failed)
  pg_->Psql("postgres", R"SQL(
INSERT INTO flowrun.checkpoints (run_uid, name, occurrence, kind, fingerprint, status, output, attempt, epoch,
                                 started_at, cost_usd, llm_calls, copied)
  VALUES ('u4', 'step0', 1, 'step', 'fp', 'completed', '{"i": 0}', 1, 1, '2026-12-02 10:00:00+00', 0.5, 1, true),
         ('u4', 'step1', 1, 'step', 'fp', 'completed', '{"i": "new"}', 1, 1, '2026-12-02 10:00:01+00', 0.125, 1, false),
         ('u4', 'new1', 1, 'step', 'fp', 'completed', '{}', 1, 1, '2026-12-02 10:00:02+00', 0.0625, 1, false);
INSERT INTO flowrun.llm_calls (run_uid, epoch, seq, checkpoint_name, occurrence, attempt, model, input_tokens,
                               output_tokens, cached_tokens, latency_ms, cost_usd, price_source)
  VALUES ('u4', 1, 1, 'step1', 1, 1, 'gpt-4o', 10, 10, 0, 5, 0.125, 'table'),
         ('u4', 1, 2, 'new1', 1, 1, 'gpt-4o', 10, 10, 0, 5, 0.0625, 'table');
UPDATE flowrun.replays SET cut_reached = true WHERE run_uid = 'u4';
)SQL");
  auto replay = store_->FindReplay("u4");
  ASSERT_TRUE(replay.ok() && replay->has_value()) << replay.status();
  EXPECT_EQ((*replay)->source_uid, "u2");
  EXPECT_EQ((*replay)->source_name, "r2");
  EXPECT_EQ((*replay)->cut_name, "step1");
  EXPECT_TRUE((*replay)->cut_reached);
  EXPECT_FALSE(store_->FindReplay("u2")->has_value());
  auto t = store_->RunTotals("u4");
  ASSERT_TRUE(t.ok());
  EXPECT_DOUBLE_EQ(t->spent_usd, 0.1875);  // the calls only
  EXPECT_DOUBLE_EQ(t->inherited_usd, 0.5);
  EXPECT_EQ(t->copied_checkpoints, 1);
  auto cps = store_->Checkpoints("u4", std::nullopt, 10);
  ASSERT_TRUE(cps.ok());
  ASSERT_EQ(cps->size(), 3u);
  EXPECT_TRUE((*cps)[0].copied);
  EXPECT_FALSE((*cps)[1].copied);
  auto rc = store_->Recomputed("u4", "u2");
  ASSERT_TRUE(rc.ok());
  EXPECT_EQ(rc->checkpoints, 1);  // step1 (new1: the source never ran it)
  EXPECT_DOUBLE_EQ(rc->replay_usd, 0.125);
  EXPECT_DOUBLE_EQ(rc->source_usd, 0.5);

  AllowAll allow;
  QueryApi api(store_.get(), &allow);
  HttpRequest r;
  r.method = "GET";
  r.path = "/apis/query.flowrun.dev/v1alpha1/namespaces/team-a/flowruns/r2/diff";
  r.query = {{"other", "r2-r1"}};
  HttpResponse resp = api.Handle(r, Identity{"u", {}, {}});
  ASSERT_EQ(resp.code, 200) << resp.body;
  json d = json::parse(resp.body);
  std::map<std::string, std::string> reuse;
  for (const auto& c : d["checkpoints"]) reuse[c["name"]] = c["reuse"].is_null() ? "-" : c["reuse"].get<std::string>();
  EXPECT_EQ(reuse, (std::map<std::string, std::string>{{"new1", "new"}, {"only2", "-"}, {"step0", "reused"},
                                                       {"step1", "recomputed"}}));
  EXPECT_EQ(d["lineage"]["replay"], "other");
  EXPECT_EQ(d["lineage"]["inheritedUSD"], "0.50");
  EXPECT_EQ(d["lineage"]["recomputedUSD"]["delta"], "-0.375");
  EXPECT_EQ(d["spentUSD"]["other"], "0.1875");
  EXPECT_EQ(d["inheritedUSD"]["other"], "0.50");
  r.path = "/apis/query.flowrun.dev/v1alpha1/namespaces/team-a/flowruns/r2-r1/summary";
  r.query = {};
  json s = json::parse(api.Handle(r, Identity{"u", {}, {}}).body);
  EXPECT_EQ(s["replay"]["sourceName"], "r2");
  EXPECT_EQ(s["replay"]["copiedCheckpoints"], 1);
  EXPECT_EQ(s["totals"]["inheritedUSD"], "0.50");
}

TEST_F(QueryDbTest, ApiJsonMatchesPsqlToTheCent) {
  AllowAll allow;
  QueryApi api(store_.get(), &allow);
  auto get = [&](const std::string& sub, std::map<std::string, std::string> q = {}) {
    HttpRequest r;
    r.method = "GET";
    r.path = "/apis/query.flowrun.dev/v1alpha1/namespaces/team-a/flowruns/r1/" + sub;
    r.query = std::move(q);
    HttpResponse resp = api.Handle(r, Identity{"u", {}, {}});
    EXPECT_EQ(resp.code, 200) << resp.body;
    return json::parse(resp.body);
  };
  json costs = get("costs");
  const double spent = std::stod(pg_->Psql("postgres", "SELECT sum(cost_usd) FROM flowrun.llm_calls WHERE run_uid = 'u1'"));
  EXPECT_EQ(costs["spentUSD"], FormatUsd(spent));
  EXPECT_EQ(costs["budgetUSD"], "2.50");
  json calls = get("calls", {{"sort", "cost"}, {"limit", "1"}});
  EXPECT_EQ(calls["items"][0]["seq"].get<int64_t>(),
            std::stoll(pg_->Psql("postgres", "SELECT seq FROM flowrun.llm_calls WHERE run_uid = 'u1'"
                                             " ORDER BY cost_usd DESC NULLS LAST, epoch, seq LIMIT 1")));
  json summary = get("summary");
  EXPECT_EQ(summary["openWait"]["question"], "Proceed?");
  EXPECT_EQ(summary["totals"]["spentUSD"], costs["spentUSD"]);
  EXPECT_EQ(summary["mostExpensiveCall"]["seq"], calls["items"][0]["seq"]);
  json diff = get("diff", {{"other", "r2"}});
  EXPECT_EQ(diff["other"]["uid"], "u2");
  // The database goes away: 503, and back.
  pg_->Stop();
  HttpRequest r;
  r.method = "GET";
  r.path = "/apis/query.flowrun.dev/v1alpha1/namespaces/team-a/flowruns/r1/summary";
  EXPECT_EQ(api.Handle(r, Identity{"u", {}, {}}).code, 503);
  pg_->Restart();
  HttpResponse again;
  for (int i = 0; i < 50 && again.code != 200; ++i) again = api.Handle(r, Identity{"u", {}, {}});
  EXPECT_EQ(again.code, 200);
}

}  // namespace
}  // namespace flowrun::query
