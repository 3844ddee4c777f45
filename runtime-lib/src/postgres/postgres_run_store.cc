// PostgresRunStore: RunStore on PostgreSQL.
//
// Fencing: Begin() bumps runs.epoch under the row lock that UPDATE takes.
// Every later write is one statement that first takes `FOR SHARE` on the run
// row *with our epoch*; a concurrent bump either waits for that write to
// commit, or wins first, after which the re-checked row no longer matches and
// the write changes nothing. The statement then reports fence_ok = 0.
#include <openssl/evp.h>

#include <cstdio>
#include <map>

#include "flowrun/schema_validator.h"
#include "postgres/checkpoint_sql.h"
#include "postgres/pg_session.h"

namespace flowrun {

namespace {

constexpr const char* kFence =
    "WITH fence AS (SELECT 1 FROM flowrun.runs WHERE run_uid = $1 AND epoch = $2 FOR SHARE) ";

// The change notification of runs, attempts and llm_calls without PL/pgSQL
// (migration 7): a statement that writes them evaluates kNotifiesItself
// before its first row is written (a one-time filter of the writing
// SELECT/UPDATE), so those tables' statement triggers skip their PL/pgSQL
// function, and it sends kNotify itself. A backend's first PL/pgSQL call costs
// ~1 ms (loading the language, compiling the function): every agent paid it
// in its first Begin(). Should the filter not run, the trigger does: the
// notification is never lost, at worst sent twice (collapsed at commit).
#define FLOWRUN_NOTIFIES_ITSELF "set_config('flowrun.metrics_notified', 'on', true) = 'on'"
#define FLOWRUN_NOTIFY "pg_notify('flowrun_metrics', '')"

pg::Statements RunStoreStatements() {
  return {
      // Begin is two statements, where it was a transaction of four (six
      // round trips). 1: take the fence and record the attempt, one
      // statement and one durable commit (a cancelled run returns no row and
      // records nothing).
      {"begin_run",
       "WITH r AS (INSERT INTO flowrun.runs AS r (run_uid, namespace, name, flow, epoch, attempt, status,"
       "  parameters, budget_usd, budget_set)"
       " SELECT $1, $2, $3, $4, 1, $5, 'running', $6::jsonb, $7::double precision, $7 IS NOT NULL"
       "  WHERE " FLOWRUN_NOTIFIES_ITSELF
       " ON CONFLICT (run_uid) DO UPDATE SET epoch = r.epoch + 1, attempt = EXCLUDED.attempt,"
       "  status = 'running', failure_reason = '', namespace = EXCLUDED.namespace, name = EXCLUDED.name, flow = EXCLUDED.flow,"
       "  parameters = EXCLUDED.parameters, "
       "  budget_usd = CASE WHEN r.budget_set THEN r.budget_usd ELSE EXCLUDED.budget_usd END,"
       "  budget_set = r.budget_set OR EXCLUDED.budget_set,"
       "  error = '', open_wait = NULL, updated_at = now()"
       "  WHERE r.status <> 'cancelled'"
       " RETURNING epoch, budget_usd),"
       " a AS (INSERT INTO flowrun.attempts (run_uid, epoch, attempt) SELECT $1, epoch, $5 FROM r"
       "  ON CONFLICT DO NOTHING)"
       // The third column says whether the run is a prepared replay, so only
       // a replay pays for loading its snapshot (load_replay).
       " SELECT epoch, budget_usd, EXISTS (SELECT 1 FROM flowrun.replays WHERE run_uid = $1), " FLOWRUN_NOTIFY
       " FROM r"},
      // 2: what the execution starts from, read after the fence committed (a
      // statement of its own, so its snapshot includes every write an older
      // execution committed before the fence took its lock): the run's spend
      // and its completed checkpoints, one row each (one row of NULLs when
      // there are none).
      {"load_completed",
       "SELECT s.spent, c.name, c.occurrence, c.kind, c.fingerprint, c.output::text, c.attempt, c.llm_calls,"
       " c.input_tokens, c.output_tokens, c.cached_tokens, c.cost_usd, c.unknown_cost_calls,"
       " c.position, c.inputs_digest"
       " FROM (SELECT coalesce(sum(cost_usd), 0) AS spent FROM flowrun.llm_calls WHERE run_uid = $1) s"
       " LEFT JOIN flowrun.checkpoints c ON c.run_uid = $1 AND c.status = 'completed'"},
      // The running marker only counts re-executed bodies (a start that
      // finds its row still "running" was interrupted). An agent crash loses
      // nothing the server accepted, so the marker commits asynchronously
      // (synchronous_commit off for this statement's own transaction, set
      // inside it: no extra round trip) and a live checkpoint waits for one
      // WAL flush, the completion's, not two. A database crash can lose the
      // newest markers: a body re-run after that is not counted as
      // re-executed (docs/runtime.md). Its output is never lost: the
      // completion stays durable.
      {"checkpoint_started",
       "WITH async AS (SELECT set_config('synchronous_commit', 'off', true)), " +
           std::string(kFence).substr(5) +
           ", w AS (INSERT INTO flowrun.checkpoints AS c (run_uid, name, occurrence, kind, fingerprint, status,"
           "  attempt, epoch, started_at)"
           "  SELECT $1, $3, $4, $5, $6, 'running', $7, $2, now() FROM fence"
           "  ON CONFLICT (run_uid, name, occurrence) DO UPDATE SET kind = EXCLUDED.kind,"
           "   fingerprint = EXCLUDED.fingerprint, status = 'running', output = NULL, attempt = EXCLUDED.attempt,"
           "   epoch = EXCLUDED.epoch, starts = c.starts + 1,"
           "   reexecutions = c.reexecutions + (CASE WHEN c.status = 'running' THEN 1 ELSE 0 END),"
           "   last_start_interrupted = (c.status = 'running'), started_at = now(), finished_at = NULL,"
           "   duration_ms = NULL, error = '', copied = false"
           "  RETURNING last_start_interrupted)"
           " SELECT (SELECT count(*) FROM fence), (SELECT bool_or(last_start_interrupted) FROM w),"
           "  (SELECT count(*) FROM async)"},
      {"checkpoint_completed",
       std::string(kFence) + ", w AS (" + pg::sql::kCompletedInsert + " SELECT" + pg::sql::kCompletedValues +
           " FROM fence" + pg::sql::kCompletedOnConflict + " RETURNING 1)" +
           " SELECT (SELECT count(*) FROM fence), (SELECT count(*) FROM w)"},
      {"checkpoint_row",
       "SELECT status, epoch, fingerprint, last_start_interrupted FROM flowrun.checkpoints"
       " WHERE run_uid = $1 AND name = $2 AND occurrence = $3"},
      {"checkpoint_failed",
       std::string(kFence) +
           ", f AS (INSERT INTO flowrun.checkpoint_failures (run_uid, name, occurrence, epoch, try_number,"
           "  attempt, final, message) SELECT $1, $3, $4, $2, $5, $6, $7, $8 FROM fence ON CONFLICT DO NOTHING"
           "  RETURNING 1)"
           ", w AS (UPDATE flowrun.checkpoints SET status = 'failed', error = $8, finished_at = now()"
           "  WHERE run_uid = $1 AND name = $3 AND occurrence = $4 AND epoch = $2 AND EXISTS (SELECT 1 FROM fence)"
           "  RETURNING 1)"
           " SELECT (SELECT count(*) FROM fence), (SELECT count(*) FROM f)"},
      {"llm_call",
       std::string(kFence) +
           ", w AS (INSERT INTO flowrun.llm_calls (run_uid, epoch, seq, checkpoint_name, occurrence, attempt,"
           "  model, input_tokens, output_tokens, cached_tokens, latency_ms, cost_usd, price_source)"
           "  SELECT $1, $2, $3, $4, $5::int, $6, $7, $8, $9, $10, $11, $12::double precision, $13 FROM fence"
           "  WHERE " FLOWRUN_NOTIFIES_ITSELF " ON CONFLICT DO NOTHING RETURNING 1)"
           " SELECT (SELECT count(*) FROM fence), (SELECT count(*) FROM w), " FLOWRUN_NOTIFY},
      // A call's start commits asynchronously, like a checkpoint's start: an
      // agent killed during the request loses nothing the server accepted.
      {"llm_call_started",
       "WITH async AS (SELECT set_config('synchronous_commit', 'off', true)), " + std::string(kFence).substr(5) +
           ", w AS (INSERT INTO flowrun.llm_calls (run_uid, epoch, seq, checkpoint_name, occurrence, attempt,"
           "  model, input_tokens, output_tokens, cached_tokens, latency_ms, cost_usd, price_source, state,"
           "  estimated_input_tokens)"
           "  SELECT $1, $2, $3, $4, $5::int, $6, $7, 0, 0, 0, 0, NULL, 'unknown', 'started', $8 FROM fence"
           "  WHERE " FLOWRUN_NOTIFIES_ITSELF " ON CONFLICT DO NOTHING RETURNING 1)"
           " SELECT (SELECT count(*) FROM fence), (SELECT count(*) FROM w), (SELECT count(*) FROM async), " FLOWRUN_NOTIFY},
      // Completion (or failure) of a started call: an upsert, so it lands even
      // if the asynchronous start was lost, and a retry changes nothing.
      {"llm_call_finished",
       std::string(kFence) +
           ", w AS (INSERT INTO flowrun.llm_calls AS c (run_uid, epoch, seq, checkpoint_name, occurrence, attempt,"
           "  model, input_tokens, output_tokens, cached_tokens, latency_ms, cost_usd, price_source, state, error)"
           "  SELECT $1, $2, $3, $4, $5::int, $6, $7, $8, $9, $10, $11, $12::double precision, $13, $14, $15 FROM fence"
           "  WHERE " FLOWRUN_NOTIFIES_ITSELF
           "  ON CONFLICT (run_uid, epoch, seq) DO UPDATE SET model = EXCLUDED.model,"
           "   input_tokens = EXCLUDED.input_tokens, output_tokens = EXCLUDED.output_tokens,"
           "   cached_tokens = EXCLUDED.cached_tokens, latency_ms = EXCLUDED.latency_ms, cost_usd = EXCLUDED.cost_usd,"
           "   price_source = EXCLUDED.price_source, state = EXCLUDED.state, error = EXCLUDED.error"
           "  RETURNING 1)"
           " SELECT (SELECT count(*) FROM fence), (SELECT count(*) FROM w), " FLOWRUN_NOTIFY},
      {"read_budget",
       "SELECT budget_usd, (SELECT coalesce(sum(cost_usd), 0) FROM flowrun.llm_calls WHERE run_uid = $1)"
       " FROM flowrun.runs WHERE run_uid = $1"},
      {"fence_share", "SELECT epoch FROM flowrun.runs WHERE run_uid = $1 FOR SHARE"},
      {"wait_row",
       "SELECT question IS NOT NULL, answer::text, answered_by, extract(epoch FROM deadline),"
       " deadline IS NOT NULL AND deadline <= now(), extract(epoch FROM asked_at)"
       " FROM flowrun.waits WHERE run_uid = $1 AND name = $2 AND occurrence = $3 FOR UPDATE"},
      {"wait_consume",
       "UPDATE flowrun.waits SET consumed_at = now(), question = coalesce(question, $4),"
       " schema = coalesce(schema, $5::jsonb), asked_at = coalesce(asked_at, now()),"
       " answer = $6::jsonb, answered_by = $7, answered_at = coalesce(answered_at, now())"
       " WHERE run_uid = $1 AND name = $2 AND occurrence = $3"},
      {"wait_reject_early",
       "UPDATE flowrun.waits SET rejected_answer = answer, rejected_reason = $4, answer = NULL,"
       " answered_at = NULL, answered_by = '' WHERE run_uid = $1 AND name = $2 AND occurrence = $3"},
      {"wait_ask",
       "INSERT INTO flowrun.waits AS w (run_uid, name, occurrence, question, schema, asked_at, deadline,"
       " on_timeout, default_answer)"
       " VALUES ($1, $2, $3, $4, $5::jsonb, now(), now() + make_interval(secs => $6::double precision), $7, $8::jsonb)"
       " ON CONFLICT (run_uid, name, occurrence) DO UPDATE SET question = EXCLUDED.question,"
       "  schema = EXCLUDED.schema, asked_at = coalesce(w.asked_at, EXCLUDED.asked_at),"
       "  deadline = coalesce(w.deadline, EXCLUDED.deadline), on_timeout = EXCLUDED.on_timeout,"
       "  default_answer = EXCLUDED.default_answer"
       " RETURNING extract(epoch FROM asked_at), extract(epoch FROM deadline)"},
      {"wait_checkpoint",
       "INSERT INTO flowrun.checkpoints AS c (run_uid, name, occurrence, kind, fingerprint, status, output,"
       " attempt, epoch, started_at, finished_at, duration_ms)"
       " VALUES ($1, $2, $3, 'wait', $4, 'completed', $5::jsonb, $6, $7, now(), now(), 0)"
       " ON CONFLICT (run_uid, name, occurrence) DO UPDATE SET status = 'completed', kind = 'wait',"
       "  fingerprint = EXCLUDED.fingerprint, output = EXCLUDED.output, attempt = EXCLUDED.attempt,"
       "  epoch = EXCLUDED.epoch, finished_at = now(), error = '', copied = false"},
      {"save_artifact",
       std::string(kFence) +
           ", w AS (INSERT INTO flowrun.artifacts (run_uid, name, version, epoch, seq, content_type, data,"
           "  size_bytes, sha256, checkpoint)"
           "  SELECT $1, $3, (SELECT coalesce(max(version), 0) + 1 FROM flowrun.artifacts"
           "   WHERE run_uid = $1 AND name = $3), $2, $4, $5, $6, $7, $8, $9 FROM fence"
           "  ON CONFLICT (run_uid, epoch, seq) DO NOTHING RETURNING version)"
           " SELECT (SELECT count(*) FROM fence), (SELECT max(version) FROM w),"
           "  (SELECT max(version) FROM flowrun.artifacts WHERE run_uid = $1 AND epoch = $2 AND seq = $4)"},
      // Replay (flowrun/replay.h). A replay's snapshot, cut and overrides,
      // one row per snapshot checkpoint (one row of NULL checkpoint columns
      // when the snapshot is empty); the last column marks the snapshot rows
      // this run already holds as copied (a later execution serves those as
      // its own cached rows and must not count their usage as saved).
      {"load_replay",
       "SELECT rp.source_run_uid, rp.cut_name, rp.cut_occurrence, rp.overrides::text, rp.cut_reached,"
       " s.name, s.occurrence, s.kind, s.fingerprint, s.output::text, s.attempt, s.llm_calls, s.input_tokens,"
       " s.output_tokens, s.cached_tokens, s.cost_usd, s.unknown_cost_calls, c.copied IS NOT NULL"
       " FROM flowrun.replays rp"
       " LEFT JOIN flowrun.replay_checkpoints s ON s.run_uid = rp.run_uid"
       " LEFT JOIN flowrun.checkpoints c ON c.run_uid = rp.run_uid AND c.name = s.name"
       "  AND c.occurrence = s.occurrence AND c.status = 'completed' AND c.copied"
       " WHERE rp.run_uid = $1"},
      // A checkpoint served from the snapshot, in one statement: its completed
      // row (copied, the source's usage as inherited) and the snapshot
      // artifacts saved inside it ($15, "name#occurrence"), with their
      // versions. A copied artifact's seq is minus its rank in the snapshot:
      // unique within the epoch and never a live save's (those count from 1).
      // An artifact version the run already holds with the same bytes and
      // content type is kept (DO NOTHING: a repeat is idempotent). One it holds
      // with other bytes or another type (the new code saved that name live
      // before the copy) is a clash: nothing is written, and the last column
      // names the clashing versions, so the copy fails loudly instead of
      // silently dropping the source's version or overwriting the replay's.
      // It commits asynchronously, like a start marker: everything it writes
      // is derived from the durable snapshot, so a copy lost in a database
      // crash is simply made again (identically) by the next execution, and
      // any later durable commit of this session flushes it first. Serving a
      // copied prefix then costs no WAL flush per checkpoint.
      {"checkpoint_copied",
       "WITH async AS (SELECT set_config('synchronous_commit', 'off', true)), " + std::string(kFence).substr(5) +
           ", rp AS (SELECT 1 FROM flowrun.replays WHERE run_uid = $1)"
           ", clash AS (SELECT ra.name, ra.version, x.sha256 AS have, ra.sha256 AS want"
           "  FROM flowrun.replay_artifacts ra JOIN flowrun.artifacts x ON x.run_uid = $1 AND x.name = ra.name"
           "   AND x.version = ra.version"
           "  WHERE ra.run_uid = $1 AND ra.checkpoint = $15"
           "   AND (x.sha256 <> ra.sha256 OR x.content_type <> ra.content_type))"
           ", w AS (INSERT INTO flowrun.checkpoints AS c (run_uid, name, occurrence, kind, fingerprint, status,"
           "  output, attempt, epoch, started_at, finished_at, duration_ms, llm_calls, input_tokens,"
           "  output_tokens, cached_tokens, cost_usd, unknown_cost_calls, copied)"
           "  SELECT $1, $3, $4, $5, $6, 'completed', $7::jsonb, $8, $2, now(), now(), 0, $9, $10, $11, $12,"
           "   $13::double precision, $14, true FROM fence, rp WHERE NOT EXISTS (SELECT 1 FROM clash)"
           "  ON CONFLICT (run_uid, name, occurrence) DO UPDATE SET kind = EXCLUDED.kind,"
           "   fingerprint = EXCLUDED.fingerprint, status = 'completed', output = EXCLUDED.output,"
           "   attempt = EXCLUDED.attempt, epoch = EXCLUDED.epoch, started_at = EXCLUDED.started_at,"
           "   finished_at = EXCLUDED.finished_at, duration_ms = 0, llm_calls = EXCLUDED.llm_calls,"
           "   input_tokens = EXCLUDED.input_tokens, output_tokens = EXCLUDED.output_tokens,"
           "   cached_tokens = EXCLUDED.cached_tokens, cost_usd = EXCLUDED.cost_usd,"
           "   unknown_cost_calls = EXCLUDED.unknown_cost_calls, error = '', copied = true"
           "  RETURNING 1)"
           ", a AS (INSERT INTO flowrun.artifacts (run_uid, name, version, epoch, seq, content_type, data,"
           "  size_bytes, sha256, checkpoint, created_at)"
           "  SELECT $1, ra.name, ra.version, $2, ra.seq, ra.content_type, ra.data, ra.size_bytes, ra.sha256,"
           "   ra.checkpoint, ra.created_at"
           "  FROM (SELECT *, -row_number() OVER (ORDER BY name, version) AS seq FROM flowrun.replay_artifacts"
           "   WHERE run_uid = $1) ra WHERE ra.checkpoint = $15 AND EXISTS (SELECT 1 FROM w)"
           "  ON CONFLICT DO NOTHING RETURNING 1)"
           " SELECT (SELECT count(*) FROM fence), (SELECT count(*) FROM rp), (SELECT count(*) FROM w),"
           "  (SELECT count(*) FROM a), (SELECT count(*) FROM async),"
           "  (SELECT string_agg(format('%s version %s (the replay holds sha256 %s, the source saved %s)',"
           "   quote_literal(name), version, left(have, 12), left(want, 12)), '; ' ORDER BY name, version)"
           "   FROM clash)"},
      {"replay_cut_reached",
       std::string(kFence) +
           ", w AS (UPDATE flowrun.replays SET cut_reached = true"
           "  WHERE run_uid = $1 AND NOT cut_reached AND EXISTS (SELECT 1 FROM fence) RETURNING 1)"
           " SELECT (SELECT count(*) FROM fence), (SELECT count(*) FROM w)"},
      {"finish",
       "WITH r AS (UPDATE flowrun.runs SET status = $3, result = $4::jsonb, error = $5, open_wait = $6,"
       "  failure_reason = $16, updated_at = now() WHERE run_uid = $1 AND epoch = $2 AND " FLOWRUN_NOTIFIES_ITSELF
       "  RETURNING 1),"
       " a AS (UPDATE flowrun.attempts SET finished_at = now(), outcome = $15, error = $5, failure_reason = $16,"
       "  live_checkpoints = $7, cached_checkpoints = $8, reexecuted_checkpoints = $9,"
       "  saved_llm_calls = $10, saved_input_tokens = $11, saved_output_tokens = $12,"
       "  saved_cached_tokens = $13, saved_usd = $14"
       "  WHERE run_uid = $1 AND epoch = $2 AND EXISTS (SELECT 1 FROM r) RETURNING 1)"
       " SELECT (SELECT count(*) FROM r), " FLOWRUN_NOTIFY},
  };
}

std::string Sha256Hex(const std::string& data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  std::string hex;
  char buf[3];
  for (unsigned int i = 0; i < len; ++i) {
    std::snprintf(buf, sizeof buf, "%02x", md[i]);
    hex += buf;
  }
  return hex;
}

Status Fenced(const std::string& uid, int64_t epoch) {
  return Aborted("fenced: run " + uid + " was taken over by a newer execution (this one held epoch " +
                 std::to_string(epoch) + "); this execution must stop");
}

class PostgresRunStore final : public RunStore {
 public:
  explicit PostgresRunStore(const PostgresOptions& options) : session_(options, RunStoreStatements(), /*check_schema=*/true) {}

  Status Connect() { return session_.Connect(); }

  StatusOr<ExecutionStart> Begin(const RunIdentity& run, int attempt, const nlohmann::json& parameters,
                                 std::optional<double> initial_budget) override {
    uid_ = run.uid;
    attempt_ = attempt;
    std::optional<std::string> budget;
    if (initial_budget) budget = pg::ExactDouble(*initial_budget);
    auto res = session_.Run("beginning execution", /*retry_safe=*/true,
                            [&](pqxx::connection& c) -> StatusOr<ExecutionStart> {
      pqxx::nontransaction tx(c);  // each statement commits on its own
      pqxx::result r = tx.exec_prepared("begin_run", run.uid, run.namespace_, run.name, run.flow, attempt,
                                        parameters.dump(), pg::NullableText(budget));
      if (r.empty()) return FailedPrecondition("run " + run.uid + " is cancelled; it is not executed again");
      ExecutionStart start;
      start.epoch = r[0][0].as<int64_t>();
      if (!r[0][1].is_null()) start.budget_usd = r[0][1].as<double>();
      for (const auto& row : tx.exec_prepared("load_completed", run.uid)) {
        start.spent_usd = row[0].as<double>();
        if (row[1].is_null()) continue;  // no completed checkpoint
        CachedCheckpoint cp;
        cp.kind = row[3].as<std::string>() == "wait" ? CheckpointKind::kWait : CheckpointKind::kStep;
        cp.fingerprint = row[4].as<std::string>();
        cp.output = row[5].is_null() ? nlohmann::json(nullptr) : nlohmann::json::parse(row[5].c_str());
        cp.attempt = row[6].as<int>();
        cp.usage.llm_calls = row[7].as<int64_t>();
        cp.usage.input_tokens = row[8].as<int64_t>();
        cp.usage.output_tokens = row[9].as<int64_t>();
        cp.usage.cached_tokens = row[10].as<int64_t>();
        cp.usage.cost_usd = row[11].as<double>();
        cp.usage.unknown_cost_calls = row[12].as<int64_t>();
        if (!row[13].is_null()) cp.place.position = row[13].as<int>();
        if (!row[14].is_null()) cp.place.inputs_digest = row[14].as<std::string>();
        start.completed.emplace(CheckpointKey{row[1].as<std::string>(), row[2].as<int>()}, std::move(cp));
      }
      if (r[0][2].as<bool>()) LoadReplay(tx, run.uid, start);
      return start;
    });
    if (!res.ok()) return res.status();
    if (!res->ok()) return res->status();
    epoch_ = (*res)->epoch;
    return std::move(*res).value();
  }

  StatusOr<bool> CheckpointStarted(const CheckpointKey& key, CheckpointKind kind,
                                   const std::string& fingerprint, int /*try_number*/) override {
    auto write = [&](pqxx::connection& c) -> std::pair<int64_t, bool> {
      pqxx::nontransaction tx(c);
      pqxx::result r = tx.exec_prepared("checkpoint_started", uid_, epoch_, key.name, key.occurrence,
                                        std::string(CheckpointKindName(kind)), fingerprint, attempt_);
      session_.AfterWrite("checkpoint_started");
      return {r[0][0].as<int64_t>(), !r[0][1].is_null() && r[0][1].as<bool>()};
    };
    auto res = session_.Run("recording checkpoint start", false, write);
    if (!res.ok() && (res.status().code() == StatusCode::kUnknown ||
                      res.status().code() == StatusCode::kUnavailable)) {
      // Outcome unknown: settle by re-reading. If our start landed, use it.
      auto row = ReadCheckpointRow(key);
      if (!row.ok()) return row.status();
      ++in_doubt_settled_;
      if (row->status == "running" && row->epoch == epoch_) return row->last_start_interrupted;
      res = session_.Run("recording checkpoint start", false, write);
    }
    if (!res.ok()) return res.status();
    if (res->first == 0) return Fenced(uid_, epoch_);
    return res->second;
  }

  Status CheckpointCompleted(const CheckpointKey& key, CheckpointKind kind, const std::string& fingerprint,
                             const std::string& output_json, TimePoint started, TimePoint finished,
                             const Usage& usage, const CheckpointPlace& place = {}) override {
    std::optional<std::string> position, digest;
    if (place.position > 0) position = std::to_string(place.position);
    if (!place.inputs_digest.empty()) digest = place.inputs_digest;
    double duration_ms = std::chrono::duration<double, std::milli>(finished - started).count();
    auto write = [&](pqxx::connection& c) -> int64_t {
      pqxx::nontransaction tx(c);
      pqxx::result r = tx.exec_prepared(
          "checkpoint_completed", uid_, epoch_, key.name, key.occurrence, std::string(CheckpointKindName(kind)),
          fingerprint, output_json, attempt_, pg::EpochSeconds(started), pg::EpochSeconds(finished),
          duration_ms, usage.llm_calls, usage.input_tokens, usage.output_tokens, usage.cached_tokens,
          usage.cost_usd, usage.unknown_cost_calls, pg::NullableText(position), pg::NullableText(digest));
      session_.AfterWrite("checkpoint_completed");
      return r[0][0].as<int64_t>();
    };
    auto res = session_.Run("storing checkpoint output", false, write);
    if (!res.ok() && (res.status().code() == StatusCode::kUnknown ||
                      res.status().code() == StatusCode::kUnavailable)) {
      // The commit may or may not have happened. Re-read instead of retrying blindly.
      auto row = ReadCheckpointRow(key);
      if (!row.ok()) return row.status();
      ++in_doubt_settled_;
      if (row->status == "completed" && row->epoch == epoch_ && row->fingerprint == fingerprint)
        return Status::Ok();
      res = session_.Run("storing checkpoint output", false, write);
    }
    if (!res.ok()) return res.status();
    if (*res == 0) return Fenced(uid_, epoch_);
    return Status::Ok();
  }

  Status CheckpointCopied(const CheckpointKey& key, CheckpointKind kind, const std::string& fingerprint,
                          const std::string& output_json, const Usage& inherited) override {
    const std::string label = key.name + "#" + std::to_string(key.occurrence);  // SaveArtifact's label
    struct Copied {
      int64_t fence = 0, replay = 0;
      std::string clash;  // the artifact versions that clash, "" when none
    };
    auto write = [&](pqxx::connection& c) -> Copied {
      pqxx::nontransaction tx(c);
      pqxx::result r = tx.exec_prepared(
          "checkpoint_copied", uid_, epoch_, key.name, key.occurrence, std::string(CheckpointKindName(kind)),
          fingerprint, output_json, attempt_, inherited.llm_calls, inherited.input_tokens, inherited.output_tokens,
          inherited.cached_tokens, pg::ExactDouble(inherited.cost_usd), inherited.unknown_cost_calls, label);
      session_.AfterWrite("checkpoint_copied");
      return {r[0][0].as<int64_t>(), r[0][1].as<int64_t>(), r[0][5].is_null() ? "" : r[0][5].as<std::string>()};
    };
    auto res = session_.Run("recording a copied checkpoint", true, write);
    if (!res.ok() && (res.status().code() == StatusCode::kUnknown ||
                      res.status().code() == StatusCode::kUnavailable)) {
      // Outcome unknown. The write is an upsert of the same row plus inserts
      // that skip what exists, so repeating it settles the doubt either way.
      ++in_doubt_settled_;
      res = session_.Run("recording a copied checkpoint", true, write);
    }
    if (!res.ok()) return res.status();
    if (res->fence == 0) return Fenced(uid_, epoch_);
    if (res->replay == 0) return FailedPrecondition("run " + uid_ + " is not a prepared replay");
    if (!res->clash.empty())
      return AlreadyExists("the source's artifacts saved inside " + label +
                           " cannot be copied with their versions: this replay already holds other content under " +
                           res->clash + "; the new code saved these names before the copied checkpoint (save them "
                           "under other names, or cut the replay before the checkpoint that saves them)");
    return Status::Ok();
  }

  Status ReplayCutReached() override {
    auto res = session_.Run("recording that the replay reached its cut", true, [&](pqxx::connection& c) {
      pqxx::nontransaction tx(c);
      return tx.exec_prepared("replay_cut_reached", uid_, epoch_)[0][0].as<int64_t>();
    });
    if (!res.ok()) return res.status();
    if (*res == 0) return Fenced(uid_, epoch_);
    return Status::Ok();
  }

  Status CheckpointFailed(const CheckpointKey& key, int try_number, bool final_try,
                          const std::string& message) override {
    auto res = session_.Run("recording checkpoint failure", true, [&](pqxx::connection& c) {
      pqxx::nontransaction tx(c);
      pqxx::result r = tx.exec_prepared("checkpoint_failed", uid_, epoch_, key.name, key.occurrence, try_number,
                                        attempt_, final_try, message);
      return r[0][0].as<int64_t>();
    });
    if (!res.ok()) return res.status();
    if (*res == 0) return Fenced(uid_, epoch_);
    return Status::Ok();
  }

  Status RecordLlmCall(const std::optional<CheckpointKey>& cp, const PricedLlmCall& call) override {
    int64_t seq = ++llm_seq_;  // fixed before the first try: a retry inserts the same row
    auto [cp_name, occurrence] = CheckpointColumns(cp);
    std::optional<std::string> cost;
    if (call.cost_usd) cost = pg::ExactDouble(*call.cost_usd);
    auto res = session_.Run("recording an LLM call", true, [&](pqxx::connection& c) {
      pqxx::nontransaction tx(c);
      pqxx::result r = tx.exec_prepared(
          "llm_call", uid_, epoch_, seq, pg::NullableText(cp_name), pg::NullableText(occurrence), attempt_,
          call.call.model, call.call.input_tokens, call.call.output_tokens, call.call.cached_tokens,
          static_cast<double>(call.call.latency.count()), pg::NullableText(cost), call.price_source);
      return r[0][0].as<int64_t>();
    });
    if (!res.ok()) return res.status();
    if (*res == 0) return Fenced(uid_, epoch_);
    return Status::Ok();
  }

  StatusOr<int64_t> LlmCallStarted(const std::optional<CheckpointKey>& cp, const std::string& model,
                                   int64_t estimated_input_tokens) override {
    int64_t seq = ++llm_seq_;
    auto [cp_name, occurrence] = CheckpointColumns(cp);
    auto res = session_.Run("recording an LLM call's start", true, [&](pqxx::connection& c) {
      pqxx::nontransaction tx(c);
      pqxx::result r = tx.exec_prepared("llm_call_started", uid_, epoch_, seq, pg::NullableText(cp_name),
                                        pg::NullableText(occurrence), attempt_, model, estimated_input_tokens);
      return r[0][0].as<int64_t>();
    });
    if (!res.ok()) return res.status();
    if (*res == 0) return Fenced(uid_, epoch_);
    started_calls_[seq] = StartedCall{cp, model};
    return seq;
  }

  Status LlmCallCompleted(int64_t call_id, const PricedLlmCall& call) override {
    return FinishCall(call_id, call, "completed", "");
  }

  Status LlmCallFailed(int64_t call_id, const std::string& error) override {
    PricedLlmCall none;
    none.price_source = "unknown";
    return FinishCall(call_id, none, "failed", error);
  }

  StatusOr<std::pair<std::optional<double>, double>> ReadBudget() override {
    return session_.Run("reading the budget", true, [&](pqxx::connection& c) {
      pqxx::nontransaction tx(c);
      pqxx::result r = tx.exec_prepared("read_budget", uid_);
      std::pair<std::optional<double>, double> out{std::nullopt, 0};
      if (r.empty()) return out;
      if (!r[0][0].is_null()) out.first = r[0][0].as<double>();
      out.second = r[0][1].as<double>();
      return out;
    });
  }

  StatusOr<WaitResolution> ResolveWait(const WaitRequest& req) override {
    std::optional<std::string> timeout_secs, default_answer;
    if (req.timeout) timeout_secs = std::to_string(req.timeout->count());
    if (req.default_answer) default_answer = req.default_answer->dump();
    std::string schema = req.schema.dump();
    auto res = session_.Run("resolving a wait", true, [&](pqxx::connection& c) -> StatusOr<WaitResolution> {
      pqxx::work tx(c);
      pqxx::result fence = tx.exec_prepared("fence_share", uid_);
      if (fence.empty() || fence[0][0].as<int64_t>() != epoch_) return Fenced(uid_, epoch_);
      WaitResolution out;
      pqxx::result row = tx.exec_prepared("wait_row", uid_, req.key.name, req.key.occurrence);
      auto consume = [&](const nlohmann::json& answer, const std::string& by) {
        tx.exec_prepared("wait_consume", uid_, req.key.name, req.key.occurrence, req.question, schema,
                         answer.dump(), by);
        tx.exec_prepared("wait_checkpoint", uid_, req.key.name, req.key.occurrence, req.fingerprint,
                         answer.dump(), attempt_, epoch_);
        out.kind = WaitResolution::Kind::kAnswered;
        out.answer = answer;
        out.answered_by = by;
      };
      if (!row.empty() && !row[0][1].is_null()) {
        nlohmann::json answer = nlohmann::json::parse(row[0][1].c_str());
        Status valid = ValidateAgainstSchema(req.schema, answer);
        if (valid.ok()) {
          consume(answer, row[0][2].as<std::string>());
          tx.commit();
          return out;
        }
        // Only an early answer can be invalid here (answers to an asked wait
        // are validated when recorded): keep it for inspection, ask anew.
        out.rejected_early_answer = valid.message();
        tx.exec_prepared("wait_reject_early", uid_, req.key.name, req.key.occurrence, valid.message());
      } else if (!row.empty() && row[0][0].as<bool>() && row[0][4].as<bool>()) {
        // Asked before, unanswered, and the deadline has passed.
        if (req.on_timeout == OnTimeout::kUseDefault && req.default_answer) {
          consume(*req.default_answer, "timeout-default");
          tx.commit();
          return out;
        }
        out.kind = WaitResolution::Kind::kTimedOutFail;
        tx.commit();
        return out;
      }
      pqxx::result asked = tx.exec_prepared("wait_ask", uid_, req.key.name, req.key.occurrence, req.question,
                                            schema, pg::NullableText(timeout_secs),
                                            std::string(OnTimeoutName(req.on_timeout)),
                                            pg::NullableText(default_answer));
      out.kind = WaitResolution::Kind::kPending;
      if (!asked[0][1].is_null()) out.deadline = pg::FromEpochSeconds(asked[0][1].as<double>());
      tx.commit();
      return out;
    });
    if (!res.ok()) return res.status();
    return std::move(*res);
  }

  StatusOr<int> SaveArtifact(const std::string& name, const std::string& content_type, const std::string& data,
                             const std::optional<CheckpointKey>& cp) override {
    int64_t seq = ++artifact_seq_;
    std::string sha = Sha256Hex(data);
    std::string cp_label = cp ? cp->name + "#" + std::to_string(cp->occurrence) : "";
    auto res = session_.Run("saving an artifact", true, [&](pqxx::connection& c) -> StatusOr<int> {
      pqxx::nontransaction tx(c);
      pqxx::binarystring bytes(data.data(), data.size());
      pqxx::result r = tx.exec_prepared("save_artifact", uid_, epoch_, name, seq, content_type, bytes,
                                        static_cast<int64_t>(data.size()), sha, cp_label);
      if (r[0][0].as<int64_t>() == 0) return Fenced(uid_, epoch_);
      if (!r[0][1].is_null()) return r[0][1].as<int>();
      if (!r[0][2].is_null()) return r[0][2].as<int>();  // a retry of a write that had landed
      return Internal("artifact insert reported neither a new nor an existing version");
    });
    if (!res.ok()) return res.status();
    return std::move(*res);
  }

  Status Finish(const FinishRequest& f) override {
    std::optional<std::string> result, open_wait;
    if (f.result) result = f.result->dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    if (!f.open_wait.empty()) open_wait = f.open_wait;
    auto res = session_.Run("finishing execution", true, [&](pqxx::connection& c) {
      pqxx::nontransaction tx(c);
      pqxx::result r = tx.exec_prepared(
          "finish", uid_, epoch_, std::string(RunStatusName(RunStatusAfter(f.outcome))), pg::NullableText(result),
          f.error, pg::NullableText(open_wait), f.live_checkpoints, f.cached_checkpoints, f.reexecuted_checkpoints,
          f.saved.llm_calls, f.saved.input_tokens, f.saved.output_tokens, f.saved.cached_tokens, f.saved.cost_usd,
          std::string(OutcomeKindName(f.outcome)), std::string(FailureReasonName(f.reason)));
      return r[0][0].as<int64_t>();
    });
    if (!res.ok()) return res.status();
    if (*res == 0) return Fenced(uid_, epoch_);
    return Status::Ok();
  }

  int64_t in_doubt_writes_settled() const override { return in_doubt_settled_; }

 private:
  static std::pair<std::optional<std::string>, std::optional<std::string>> CheckpointColumns(
      const std::optional<CheckpointKey>& cp) {
    if (!cp) return {std::nullopt, std::nullopt};
    return {cp->name, std::to_string(cp->occurrence)};
  }

  Status FinishCall(int64_t call_id, const PricedLlmCall& call, const std::string& state, const std::string& error) {
    auto started = started_calls_.find(call_id);
    if (started == started_calls_.end())
      return InvalidArgument("LLM call " + std::to_string(call_id) + " was not started by this execution");
    auto [cp_name, occurrence] = CheckpointColumns(started->second.checkpoint);
    std::optional<std::string> cost;
    if (call.cost_usd) cost = pg::ExactDouble(*call.cost_usd);
    std::string model = call.call.model.empty() ? started->second.model : call.call.model;
    auto res = session_.Run("recording an LLM call", true, [&](pqxx::connection& c) {
      pqxx::nontransaction tx(c);
      pqxx::result r = tx.exec_prepared(
          "llm_call_finished", uid_, epoch_, call_id, pg::NullableText(cp_name), pg::NullableText(occurrence),
          attempt_, model, call.call.input_tokens, call.call.output_tokens, call.call.cached_tokens,
          static_cast<double>(call.call.latency.count()), pg::NullableText(cost), call.price_source, state, error);
      return r[0][0].as<int64_t>();
    });
    if (!res.ok()) return res.status();
    if (*res == 0) return Fenced(uid_, epoch_);
    started_calls_.erase(started);
    return Status::Ok();
  }

  // ExecutionStart::replay of a prepared replay (load_replay), read in the
  // Begin's own session after the fence committed.
  static void LoadReplay(pqxx::nontransaction& tx, const std::string& uid, ExecutionStart& start) {
    ReplaySnapshot snap;
    bool first = true;
    for (const auto& row : tx.exec_prepared("load_replay", uid)) {
      if (first) {
        snap.source_run_uid = row[0].as<std::string>();
        snap.cut.name = row[1].as<std::string>();
        snap.cut.occurrence = row[2].as<int>();
        nlohmann::json overrides = nlohmann::json::parse(row[3].c_str());
        for (auto it = overrides.begin(); it != overrides.end(); ++it) snap.output_overrides[it.key()] = it.value();
        snap.cut_reached = row[4].as<bool>();
        first = false;
      }
      if (row[5].is_null()) continue;  // an empty snapshot
      CheckpointKey key{row[5].as<std::string>(), row[6].as<int>()};
      CachedCheckpoint cp;
      cp.kind = row[7].as<std::string>() == "wait" ? CheckpointKind::kWait : CheckpointKind::kStep;
      cp.fingerprint = row[8].as<std::string>();
      cp.output = row[9].is_null() ? nlohmann::json(nullptr) : nlohmann::json::parse(row[9].c_str());
      cp.attempt = row[10].as<int>();
      cp.usage.llm_calls = row[11].as<int64_t>();
      cp.usage.input_tokens = row[12].as<int64_t>();
      cp.usage.output_tokens = row[13].as<int64_t>();
      cp.usage.cached_tokens = row[14].as<int64_t>();
      cp.usage.cost_usd = row[15].as<double>();
      cp.usage.unknown_cost_calls = row[16].as<int64_t>();
      if (row[17].as<bool>()) {
        // Already copied by an earlier execution: its own row is served as
        // cached, and what it serves is inherited, not saved.
        if (auto own = start.completed.find(key); own != start.completed.end()) own->second.copied = true;
      }
      snap.checkpoints.emplace(std::move(key), std::move(cp));
    }
    if (!first) start.replay = std::move(snap);  // no row: the replay vanished meanwhile (deleted)
  }

  struct Row {
    std::string status;
    int64_t epoch = 0;
    std::string fingerprint;
    bool last_start_interrupted = false;
  };

  StatusOr<Row> ReadCheckpointRow(const CheckpointKey& key) {
    return session_.Run("re-reading a checkpoint", true, [&](pqxx::connection& c) {
      pqxx::nontransaction tx(c);
      pqxx::result r = tx.exec_prepared("checkpoint_row", uid_, key.name, key.occurrence);
      Row row;
      if (!r.empty()) {
        row.status = r[0][0].as<std::string>();
        row.epoch = r[0][1].as<int64_t>();
        row.fingerprint = r[0][2].as<std::string>();
        row.last_start_interrupted = r[0][3].as<bool>();
      }
      return row;
    });
  }

  pg::PgSession session_;
  std::string uid_;
  int attempt_ = 0;
  int64_t epoch_ = 0;
  int64_t llm_seq_ = 0;
  struct StartedCall {
    std::optional<CheckpointKey> checkpoint;
    std::string model;
  };
  std::map<int64_t, StartedCall> started_calls_;  // started, not yet finished
  int64_t artifact_seq_ = 0;
  int64_t in_doubt_settled_ = 0;
};

}  // namespace

std::string_view CheckpointKindName(CheckpointKind k) { return k == CheckpointKind::kWait ? "wait" : "step"; }

Usage& Usage::operator+=(const Usage& o) {
  llm_calls += o.llm_calls;
  input_tokens += o.input_tokens;
  output_tokens += o.output_tokens;
  cached_tokens += o.cached_tokens;
  cost_usd += o.cost_usd;
  unknown_cost_calls += o.unknown_cost_calls;
  unfinished_calls += o.unfinished_calls;
  return *this;
}

StatusOr<std::unique_ptr<RunStore>> OpenPostgresRunStore(const PostgresOptions& options) {
  auto store = std::make_unique<PostgresRunStore>(options);
  FLOWRUN_RETURN_IF_ERROR(store->Connect());
  return std::unique_ptr<RunStore>(std::move(store));
}

}  // namespace flowrun
