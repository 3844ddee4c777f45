#include "flowrun/query/postgres_query_store.h"

#include <climits>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <vector>

#include <pqxx/pqxx>

#include "flowrun/environment.h"

namespace flowrun::query {

namespace {

#define TS(x) "to_char((" x ") AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"

const char* const kStatements[][2] = {
    {"find_run",
     "SELECT run_uid, namespace, name, flow, status, failure_reason, error, " TS("created_at") ", " TS("updated_at")
     ", epoch, attempt, budget_usd FROM flowrun.runs WHERE namespace = $1 AND name = $2"
     " ORDER BY created_at DESC, run_uid DESC LIMIT 1"},
    {"attempts",
     "SELECT attempt, epoch, " TS("started_at") ", " TS("finished_at") ", outcome, failure_reason, error,"
     " live_checkpoints, cached_checkpoints, reexecuted_checkpoints, saved_llm_calls, saved_usd,"
     " (SELECT count(*) FROM flowrun.attempts WHERE run_uid = $1)"
     " FROM (SELECT * FROM flowrun.attempts WHERE run_uid = $1 ORDER BY epoch DESC LIMIT $2) a ORDER BY epoch"},
    {"attempt_count", "SELECT count(*) FROM flowrun.attempts WHERE run_uid = $1"},
    {"totals",
     "SELECT coalesce(sum(cost_usd), 0), count(*), count(*) FILTER (WHERE cost_usd IS NULL),"
     " coalesce(sum(input_tokens), 0), coalesce(sum(output_tokens), 0), coalesce(sum(cached_tokens), 0),"
     " (SELECT coalesce(sum(saved_usd), 0) FROM flowrun.attempts WHERE run_uid = $1),"
     " (SELECT count(*) FROM flowrun.checkpoints WHERE run_uid = $1),"
     " (SELECT coalesce(sum(cost_usd), 0) FROM flowrun.checkpoints WHERE run_uid = $1 AND copied),"
     " (SELECT count(*) FROM flowrun.checkpoints WHERE run_uid = $1 AND copied)"
     " FROM flowrun.llm_calls WHERE run_uid = $1"},
    {"open_wait",
     "SELECT name, occurrence, question, " TS("asked_at") ", " TS("deadline") ", on_timeout FROM flowrun.waits"
     " WHERE run_uid = $1 AND question IS NOT NULL AND answer IS NULL AND consumed_at IS NULL"
     " ORDER BY asked_at DESC NULLS LAST, name, occurrence LIMIT 1"},
#define CALL_COLUMNS \
  "epoch, seq, attempt, model, checkpoint_name, occurrence, input_tokens, output_tokens, cached_tokens, cost_usd," \
  " latency_ms, price_source, " TS("at")
    {"calls_time",
     "SELECT " CALL_COLUMNS " FROM flowrun.llm_calls WHERE run_uid = $1 AND (epoch, seq) > ($2, $3)"
     " ORDER BY epoch, seq LIMIT $4"},
    {"calls_cost",
     "SELECT " CALL_COLUMNS " FROM flowrun.llm_calls WHERE run_uid = $1 AND ($2 OR coalesce(cost_usd, -1) < $3::float8"
     " OR (coalesce(cost_usd, -1) = $3::float8 AND (epoch, seq) > ($4, $5)))"
     " ORDER BY coalesce(cost_usd, -1) DESC, epoch, seq LIMIT $6"},
#define START_KEY "coalesce((extract(epoch FROM started_at) * 1000000)::bigint, 9223372036854775807)"
    {"checkpoints",
     "SELECT name, kind, status, " TS("started_at") ", " TS("finished_at") ", error, occurrence, attempt, starts,"
     " reexecutions, epoch, duration_ms, llm_calls, input_tokens, output_tokens, cached_tokens, unknown_cost_calls,"
     " cost_usd, " START_KEY ", copied FROM flowrun.checkpoints WHERE run_uid = $1 AND (" START_KEY ", name, occurrence) >"
     " ($2, $3, $4) ORDER BY 19, name, occurrence LIMIT $5"},
#define USAGE_COLUMNS \
  "count(*), coalesce(sum(input_tokens), 0), coalesce(sum(output_tokens), 0), coalesce(sum(cached_tokens), 0)," \
  " count(*) FILTER (WHERE cost_usd IS NULL), coalesce(sum(cost_usd), 0) AS usd"
    {"by_model",
     "SELECT model, " USAGE_COLUMNS " FROM flowrun.llm_calls WHERE run_uid = $1 GROUP BY model"
     " ORDER BY usd DESC, model LIMIT $2"},
    {"by_checkpoint",
     "SELECT checkpoint_name, occurrence, " USAGE_COLUMNS " FROM flowrun.llm_calls WHERE run_uid = $1"
     " GROUP BY checkpoint_name, occurrence ORDER BY usd DESC, checkpoint_name NULLS LAST, occurrence LIMIT $2"},
#define ARTIFACT_COLUMNS "name, version, content_type, size_bytes, sha256, checkpoint, epoch, " TS("created_at")
    {"artifacts",
     "SELECT " ARTIFACT_COLUMNS " FROM flowrun.artifacts WHERE run_uid = $1 AND (name, version) > ($2, $3)"
     " ORDER BY name, version LIMIT $4"},
    {"artifact",
     "SELECT " ARTIFACT_COLUMNS ", CASE WHEN size_bytes <= $4 THEN data END FROM flowrun.artifacts"
     " WHERE run_uid = $1 AND name = $2 AND ($3 = 0 OR version = $3) ORDER BY version DESC LIMIT 1"},
    {"output",
     "SELECT kind, status, attempt, CASE WHEN octet_length(output::text) <= $4 THEN output::text END,"
     " coalesce(octet_length(output::text), 0) FROM flowrun.checkpoints"
     " WHERE run_uid = $1 AND name = $2 AND occurrence = $3"},
    {"diff_checkpoints",
     "SELECT coalesce(a.name, b.name) AS n, coalesce(a.occurrence, b.occurrence) AS o, a.status, a.cost_usd,"
     " b.status, b.cost_usd, (a.output IS NOT DISTINCT FROM b.output), a.copied, b.copied"
     " FROM (SELECT name, occurrence, status, cost_usd, output, copied FROM flowrun.checkpoints WHERE run_uid = $1) a"
     " FULL OUTER JOIN (SELECT name, occurrence, status, cost_usd, output, copied FROM flowrun.checkpoints"
     " WHERE run_uid = $2) b ON a.name = b.name AND a.occurrence = b.occurrence ORDER BY n, o LIMIT $3"},
    {"diff_artifacts",
     "SELECT coalesce(a.name, b.name) AS n, a.version, b.version, a.sha256, b.sha256"
     " FROM (SELECT DISTINCT ON (name) name, version, sha256 FROM flowrun.artifacts WHERE run_uid = $1"
     " ORDER BY name, version DESC) a FULL OUTER JOIN (SELECT DISTINCT ON (name) name, version, sha256"
     " FROM flowrun.artifacts WHERE run_uid = $2 ORDER BY name, version DESC) b ON a.name = b.name"
     " ORDER BY n LIMIT $3"},
    {"find_replay",
     "SELECT source_run_uid, source_name, cut_name, cut_occurrence, " TS("prepared_at") ", snapshot_checkpoints,"
     " cut_reached FROM flowrun.replays WHERE run_uid = $1"},
    {"recomputed",
     "SELECT count(*), coalesce(sum(r.cost_usd), 0), coalesce(sum(s.cost_usd), 0) FROM flowrun.checkpoints r"
     " JOIN flowrun.checkpoints s ON s.run_uid = $2 AND s.name = r.name AND s.occurrence = r.occurrence"
     " WHERE r.run_uid = $1 AND NOT r.copied"},
    {"ping", "SELECT 1"},
};

std::string Str(const pqxx::field& f) { return f.is_null() ? std::string() : f.as<std::string>(); }
std::optional<std::string> OptStr(const pqxx::field& f) {
  return f.is_null() ? std::nullopt : std::optional<std::string>(f.as<std::string>());
}
std::optional<double> OptDouble(const pqxx::field& f) {
  return f.is_null() ? std::nullopt : std::optional<double>(f.as<double>());
}
int64_t I64(const pqxx::field& f) { return f.is_null() ? 0 : f.as<int64_t>(); }
double Dbl(const pqxx::field& f) { return f.is_null() ? 0 : f.as<double>(); }

std::string ExactDouble(double v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

CallRow ReadCall(const pqxx::row& r) {
  CallRow c;
  c.epoch = I64(r[0]);
  c.seq = I64(r[1]);
  c.attempt = static_cast<int>(I64(r[2]));
  c.model = Str(r[3]);
  c.checkpoint = OptStr(r[4]);
  if (!r[5].is_null()) c.occurrence = r[5].as<int>();
  c.input_tokens = I64(r[6]);
  c.output_tokens = I64(r[7]);
  c.cached_tokens = I64(r[8]);
  c.usd = OptDouble(r[9]);
  c.latency_ms = Dbl(r[10]);
  c.price_source = Str(r[11]);
  c.at = Str(r[12]);
  return c;
}

UsageGroup ReadUsage(const pqxx::row& r, int first) {
  UsageGroup g;
  g.llm_calls = I64(r[first]);
  g.input_tokens = I64(r[first + 1]);
  g.output_tokens = I64(r[first + 2]);
  g.cached_tokens = I64(r[first + 3]);
  g.unpriced_calls = I64(r[first + 4]);
  g.usd = Dbl(r[first + 5]);
  return g;
}

ArtifactMeta ReadArtifact(const pqxx::row& r) {
  ArtifactMeta a;
  a.name = Str(r[0]);
  a.version = static_cast<int>(I64(r[1]));
  a.content_type = Str(r[2]);
  a.size_bytes = I64(r[3]);
  a.sha256 = Str(r[4]);
  a.checkpoint = Str(r[5]);
  a.epoch = I64(r[6]);
  a.created_at = Str(r[7]);
  return a;
}

class PostgresQueryStore final : public QueryStore {
 public:
  explicit PostgresQueryStore(PostgresQueryStoreOptions o) : o_(std::move(o)) {
    if (o_.max_connections < 1) o_.max_connections = 1;
  }

  StatusOr<std::optional<RunRow>> FindRun(const std::string& ns, const std::string& name) override {
    return Read<std::optional<RunRow>>([&](pqxx::read_transaction& tx) -> std::optional<RunRow> {
      pqxx::result res = tx.exec_prepared("find_run", ns, name);
      if (res.empty()) return std::nullopt;
      const pqxx::row r = res[0];
      RunRow run;
      run.uid = Str(r[0]);
      run.ns = Str(r[1]);
      run.name = Str(r[2]);
      run.flow = Str(r[3]);
      run.status = Str(r[4]);
      run.failure_reason = Str(r[5]);
      run.error = Str(r[6]);
      run.created_at = Str(r[7]);
      run.updated_at = Str(r[8]);
      run.epoch = I64(r[9]);
      run.attempt = static_cast<int>(I64(r[10]));
      run.budget_usd = OptDouble(r[11]);
      return run;
    });
  }

  StatusOr<AttemptPage> LastAttempts(const std::string& uid, int limit) override {
    return Read<AttemptPage>([&](pqxx::read_transaction& tx) {
      AttemptPage page;
      for (const auto& r : tx.exec_prepared("attempts", uid, limit)) {
        AttemptRow a;
        a.attempt = static_cast<int>(I64(r[0]));
        a.epoch = I64(r[1]);
        a.started_at = Str(r[2]);
        a.finished_at = Str(r[3]);
        a.outcome = Str(r[4]);
        a.failure_reason = Str(r[5]);
        a.error = Str(r[6]);
        a.live_checkpoints = I64(r[7]);
        a.cached_checkpoints = I64(r[8]);
        a.reexecuted_checkpoints = I64(r[9]);
        a.saved_llm_calls = I64(r[10]);
        a.saved_usd = Dbl(r[11]);
        page.total = I64(r[12]);
        page.rows.push_back(std::move(a));
      }
      if (page.rows.empty()) page.total = I64(tx.exec_prepared("attempt_count", uid)[0][0]);
      return page;
    });
  }

  StatusOr<Totals> RunTotals(const std::string& uid) override {
    return Read<Totals>([&](pqxx::read_transaction& tx) {
      const pqxx::row r = tx.exec_prepared("totals", uid)[0];
      Totals t;
      t.spent_usd = Dbl(r[0]);
      t.llm_calls = I64(r[1]);
      t.unpriced_calls = I64(r[2]);
      t.input_tokens = I64(r[3]);
      t.output_tokens = I64(r[4]);
      t.cached_tokens = I64(r[5]);
      t.saved_usd = Dbl(r[6]);
      t.checkpoints = I64(r[7]);
      t.inherited_usd = Dbl(r[8]);
      t.copied_checkpoints = I64(r[9]);
      return t;
    });
  }

  StatusOr<std::optional<OpenWait>> FindOpenWait(const std::string& uid) override {
    return Read<std::optional<OpenWait>>([&](pqxx::read_transaction& tx) -> std::optional<OpenWait> {
      pqxx::result res = tx.exec_prepared("open_wait", uid);
      if (res.empty()) return std::nullopt;
      const pqxx::row r = res[0];
      OpenWait w;
      w.name = Str(r[0]);
      w.occurrence = static_cast<int>(I64(r[1]));
      w.question = Str(r[2]);
      w.asked_at = Str(r[3]);
      w.deadline = Str(r[4]);
      w.on_timeout = Str(r[5]);
      return w;
    });
  }

  StatusOr<std::vector<CallRow>> Calls(const std::string& uid, CallOrder order, const std::optional<CallKey>& after,
                                       int limit) override {
    return Read<std::vector<CallRow>>([&](pqxx::read_transaction& tx) {
      pqxx::result res;
      if (order == CallOrder::kTime) {
        res = tx.exec_prepared("calls_time", uid, after ? after->epoch : LLONG_MIN, after ? after->seq : LLONG_MIN,
                               limit);
      } else {
        res = tx.exec_prepared("calls_cost", uid, !after.has_value(), ExactDouble(after ? after->cost_key : 0),
                               after ? after->epoch : 0, after ? after->seq : 0, limit);
      }
      std::vector<CallRow> out;
      for (const auto& r : res) out.push_back(ReadCall(r));
      return out;
    });
  }

  StatusOr<std::vector<CheckpointRow>> Checkpoints(const std::string& uid, const std::optional<CheckpointKey>& after,
                                                   int limit) override {
    return Read<std::vector<CheckpointRow>>([&](pqxx::read_transaction& tx) {
      std::vector<CheckpointRow> out;
      for (const auto& r : tx.exec_prepared("checkpoints", uid, after ? after->start_key : LLONG_MIN,
                                            after ? after->name : std::string(), after ? after->occurrence : INT_MIN,
                                            limit)) {
        CheckpointRow c;
        c.name = Str(r[0]);
        c.kind = Str(r[1]);
        c.status = Str(r[2]);
        c.started_at = Str(r[3]);
        c.finished_at = Str(r[4]);
        c.error = Str(r[5]);
        c.occurrence = static_cast<int>(I64(r[6]));
        c.attempt = static_cast<int>(I64(r[7]));
        c.starts = static_cast<int>(I64(r[8]));
        c.reexecutions = static_cast<int>(I64(r[9]));
        c.epoch = I64(r[10]);
        c.duration_ms = OptDouble(r[11]);
        c.llm_calls = I64(r[12]);
        c.input_tokens = I64(r[13]);
        c.output_tokens = I64(r[14]);
        c.cached_tokens = I64(r[15]);
        c.unpriced_calls = I64(r[16]);
        c.usd = Dbl(r[17]);
        c.start_key = I64(r[18]);
        c.copied = !r[19].is_null() && r[19].as<bool>();
        out.push_back(std::move(c));
      }
      return out;
    });
  }

  StatusOr<std::vector<UsageGroup>> UsageByModel(const std::string& uid, int limit) override {
    return Read<std::vector<UsageGroup>>([&](pqxx::read_transaction& tx) {
      std::vector<UsageGroup> out;
      for (const auto& r : tx.exec_prepared("by_model", uid, limit)) {
        UsageGroup g = ReadUsage(r, 1);
        g.key = Str(r[0]);
        out.push_back(std::move(g));
      }
      return out;
    });
  }

  StatusOr<std::vector<UsageGroup>> UsageByCheckpoint(const std::string& uid, int limit) override {
    return Read<std::vector<UsageGroup>>([&](pqxx::read_transaction& tx) {
      std::vector<UsageGroup> out;
      for (const auto& r : tx.exec_prepared("by_checkpoint", uid, limit)) {
        UsageGroup g = ReadUsage(r, 2);
        g.key = OptStr(r[0]);
        if (!r[1].is_null()) g.occurrence = r[1].as<int>();
        out.push_back(std::move(g));
      }
      return out;
    });
  }

  StatusOr<std::vector<ArtifactMeta>> Artifacts(const std::string& uid, const std::optional<ArtifactKey>& after,
                                                int limit) override {
    return Read<std::vector<ArtifactMeta>>([&](pqxx::read_transaction& tx) {
      std::vector<ArtifactMeta> out;
      for (const auto& r : tx.exec_prepared("artifacts", uid, after ? after->name : std::string(),
                                            after ? after->version : INT_MIN, limit))
        out.push_back(ReadArtifact(r));
      return out;
    });
  }

  StatusOr<std::optional<ArtifactData>> Artifact(const std::string& uid, const std::string& name,
                                                 std::optional<int> version, int64_t max_bytes) override {
    return Read<std::optional<ArtifactData>>([&](pqxx::read_transaction& tx) -> std::optional<ArtifactData> {
      pqxx::result res = tx.exec_prepared("artifact", uid, name, version.value_or(0), max_bytes);
      if (res.empty()) return std::nullopt;
      ArtifactData d;
      d.meta = ReadArtifact(res[0]);
      if (!res[0][8].is_null()) d.bytes = pqxx::binarystring(res[0][8]).str();
      return d;
    });
  }

  StatusOr<std::optional<OutputRow>> Output(const std::string& uid, const std::string& checkpoint, int occurrence,
                                            int64_t max_bytes) override {
    return Read<std::optional<OutputRow>>([&](pqxx::read_transaction& tx) -> std::optional<OutputRow> {
      pqxx::result res = tx.exec_prepared("output", uid, checkpoint, occurrence, max_bytes);
      if (res.empty()) return std::nullopt;
      const pqxx::row r = res[0];
      OutputRow o;
      o.kind = Str(r[0]);
      o.status = Str(r[1]);
      o.attempt = static_cast<int>(I64(r[2]));
      o.output_json = OptStr(r[3]);
      o.size_bytes = I64(r[4]);
      return o;
    });
  }

  StatusOr<std::vector<DiffCheckpointRow>> DiffCheckpoints(const std::string& uid, const std::string& other_uid,
                                                           int limit) override {
    return Read<std::vector<DiffCheckpointRow>>([&](pqxx::read_transaction& tx) {
      std::vector<DiffCheckpointRow> out;
      for (const auto& r : tx.exec_prepared("diff_checkpoints", uid, other_uid, limit)) {
        DiffCheckpointRow d;
        d.name = Str(r[0]);
        d.occurrence = static_cast<int>(I64(r[1]));
        if (!r[2].is_null()) d.self = DiffSide{Str(r[2]), Dbl(r[3]), !r[7].is_null() && r[7].as<bool>()};
        if (!r[4].is_null()) d.other = DiffSide{Str(r[4]), Dbl(r[5]), !r[8].is_null() && r[8].as<bool>()};
        d.output_equal = !r[6].is_null() && r[6].as<bool>();
        out.push_back(std::move(d));
      }
      return out;
    });
  }

  StatusOr<std::vector<DiffArtifactRow>> DiffArtifacts(const std::string& uid, const std::string& other_uid,
                                                       int limit) override {
    return Read<std::vector<DiffArtifactRow>>([&](pqxx::read_transaction& tx) {
      std::vector<DiffArtifactRow> out;
      for (const auto& r : tx.exec_prepared("diff_artifacts", uid, other_uid, limit)) {
        DiffArtifactRow d;
        d.name = Str(r[0]);
        if (!r[1].is_null()) d.self_version = r[1].as<int>();
        if (!r[2].is_null()) d.other_version = r[2].as<int>();
        d.self_sha256 = OptStr(r[3]);
        d.other_sha256 = OptStr(r[4]);
        out.push_back(std::move(d));
      }
      return out;
    });
  }

  StatusOr<std::optional<ReplayRow>> FindReplay(const std::string& uid) override {
    return Read<std::optional<ReplayRow>>([&](pqxx::read_transaction& tx) -> std::optional<ReplayRow> {
      pqxx::result res = tx.exec_prepared("find_replay", uid);
      if (res.empty()) return std::nullopt;
      const pqxx::row r = res[0];
      ReplayRow p;
      p.source_uid = Str(r[0]);
      p.source_name = Str(r[1]);
      p.cut_name = Str(r[2]);
      p.cut_occurrence = static_cast<int>(I64(r[3]));
      p.prepared_at = Str(r[4]);
      p.snapshot_checkpoints = I64(r[5]);
      p.cut_reached = !r[6].is_null() && r[6].as<bool>();
      return p;
    });
  }

  StatusOr<RecomputedCost> Recomputed(const std::string& replay_uid, const std::string& source_uid) override {
    return Read<RecomputedCost>([&](pqxx::read_transaction& tx) {
      const pqxx::row r = tx.exec_prepared("recomputed", replay_uid, source_uid)[0];
      return RecomputedCost{I64(r[0]), Dbl(r[1]), Dbl(r[2])};
    });
  }

  Status Ping() override {
    auto r = Read<int>([](pqxx::read_transaction& tx) { return tx.exec_prepared("ping")[0][0].as<int>(); });
    return r.ok() ? Status() : r.status();
  }

 private:
  StatusOr<std::unique_ptr<pqxx::connection>> Acquire() {
    {
      std::unique_lock<std::mutex> l(mu_);
      if (!cv_.wait_for(l, std::chrono::seconds(5), [&] { return !idle_.empty() || open_ < o_.max_connections; }))
        return Unavailable("every read API database connection is busy");
      if (!idle_.empty()) {
        auto c = std::move(idle_.back());
        idle_.pop_back();
        return c;
      }
      ++open_;
    }
    try {
      auto c = std::make_unique<pqxx::connection>(o_.conninfo);
      {
        pqxx::nontransaction tx(*c);
        tx.exec("SET application_name = 'flowrun-controller-query'");
        tx.exec("SET statement_timeout = " + std::to_string(o_.statement_timeout.count()));
        tx.exec("SET default_transaction_read_only = on");
      }
      for (const auto& s : kStatements) c->prepare(s[0], s[1]);
      return c;
    } catch (const std::exception& e) {
      Release(nullptr);
      return Unavailable(std::string("read API database connection: ") + RedactConnectionString(e.what()));
    }
  }

  // c nullptr: the connection is gone (broken or never opened).
  void Release(std::unique_ptr<pqxx::connection> c) {
    std::lock_guard<std::mutex> l(mu_);
    if (c) idle_.push_back(std::move(c));
    else --open_;
    cv_.notify_one();
  }

  template <typename T, typename F>
  StatusOr<T> Read(F&& f) {
    auto conn = Acquire();
    if (!conn.ok()) return conn.status();
    std::unique_ptr<pqxx::connection> c = std::move(*conn);
    try {
      pqxx::read_transaction tx(*c);
      T out = f(tx);
      tx.commit();
      Release(std::move(c));
      return out;
    } catch (const pqxx::broken_connection& e) {
      Release(nullptr);
      return Unavailable(std::string("read API database connection lost: ") + RedactConnectionString(e.what()));
    } catch (const pqxx::sql_error& e) {
      Release(nullptr);
      if (e.sqlstate() == "57014") return Unavailable(std::string("read API query timed out: ") + e.what());
      return Internal(std::string("read API query failed: ") + RedactConnectionString(e.what()));
    } catch (const std::exception& e) {
      Release(nullptr);  // the connection's state is unknown
      return Internal(std::string("read API query failed: ") + RedactConnectionString(e.what()));
    }
  }

  PostgresQueryStoreOptions o_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<pqxx::connection>> idle_;  // guarded by mu_
  int open_ = 0;                                          // guarded by mu_: idle + in use
};

}  // namespace

std::unique_ptr<QueryStore> NewPostgresQueryStore(PostgresQueryStoreOptions options) {
  return std::make_unique<PostgresQueryStore>(std::move(options));
}

}  // namespace flowrun::query
