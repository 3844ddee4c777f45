// Versioned schema migrations. Each entry is applied once, in order, inside a
// transaction holding a transaction-level advisory lock, so processes starting
// at the same time serialize here and all but the first find nothing to do.
// Append new versions; never edit an applied one.
#include <string>
#include <vector>

#include "postgres/pg_session.h"

namespace flowrun {

namespace {

// pg_advisory_xact_lock key: "flowrun" in ASCII, as a bigint.
constexpr long long kMigrationLockKey = 0x666c6f7772756eLL;

struct Migration {
  int version;
  const char* description;
  std::string sql;
};

// flowrun.metric_contributions(), the one definition of every exported
// counter. Migration 2 created it recognising a wait timeout by the run's
// error text; migration 3 replaces it with one that reads the typed
// failure_reason. The text is shared so the two differ only there, and
// migration 2's SQL stays byte-for-byte what it always was.
enum class FunctionVersion { kByErrorText, kByFailureReason, kCompletedCallsOnly };
std::string MetricContributionsSql(FunctionVersion v) {
  static const std::string kTemplate = R"SQL(@CREATE@ FUNCTION flowrun.metric_contributions(p_run_uid text)
RETURNS TABLE (metric text, namespace text, flow text, model text, label text, value double precision)
LANGUAGE sql STABLE AS $fn$
  WITH r AS (SELECT run_uid, namespace, flow, status, @REASON@ FROM flowrun.runs
             WHERE p_run_uid IS NULL OR run_uid = p_run_uid),
  calls AS (SELECT r.namespace, r.flow, c.model, count(*) AS n,
              count(*) FILTER (WHERE c.cost_usd IS NULL) AS unpriced,
              coalesce(sum(c.cost_usd), 0) AS usd, sum(c.input_tokens) AS inp,
              sum(c.output_tokens) AS outp, sum(c.cached_tokens) AS cach
            FROM flowrun.llm_calls c JOIN r USING (run_uid)@CALLS_WHERE@ GROUP BY 1, 2, 3),
  att AS (SELECT r.namespace, r.flow, a.outcome,
            lag(a.outcome) OVER (PARTITION BY a.run_uid ORDER BY a.epoch) AS prev,
            a.live_checkpoints, a.cached_checkpoints, a.saved_llm_calls, a.saved_input_tokens,
            a.saved_output_tokens, a.saved_cached_tokens, a.saved_usd
          FROM flowrun.attempts a JOIN r USING (run_uid)),
  w AS (SELECT r.namespace, r.flow, w.asked_at, w.answered_at, w.answered_by, w.answer IS NULL AS unanswered,
          w.deadline, r.status, r.@REASON@
        FROM flowrun.waits w JOIN r USING (run_uid) WHERE w.question IS NOT NULL),
  human AS (SELECT namespace, flow, extract(epoch FROM answered_at - asked_at)::double precision AS s FROM w
            WHERE answered_at IS NOT NULL AND answered_by <> 'timeout-default' AND answered_at >= asked_at),
  -- Each answer counted once in its smallest bucket, then summed upwards:
  -- cumulative counts without joining every answer to every bound.
  -- (the same bounds as metrics::WaitResponseBounds())
  bounds AS (SELECT ARRAY[10, 30, 60, 300, 900, 1800, 3600, 7200, 14400, 28800, 86400, 259200]::float8[] AS b),
  per_bucket AS (SELECT namespace, flow, CASE WHEN s <= 10 THEN 1 WHEN s <= 30 THEN 2 WHEN s <= 60 THEN 3
                   WHEN s <= 300 THEN 4 WHEN s <= 900 THEN 5 WHEN s <= 1800 THEN 6 WHEN s <= 3600 THEN 7
                   WHEN s <= 7200 THEN 8 WHEN s <= 14400 THEN 9 WHEN s <= 28800 THEN 10 WHEN s <= 86400 THEN 11
                   WHEN s <= 259200 THEN 12 ELSE 13 END AS i, count(*) AS n
                 FROM human GROUP BY 1, 2, 3),
  cumulative AS (SELECT p.namespace, p.flow, k AS i,
                   sum(p.n) AS n FROM per_bucket p, generate_series(1, 13) k WHERE p.i <= k GROUP BY 1, 2, 3),
  att_agg AS (SELECT namespace, flow, count(*) AS n, count(*) FILTER (WHERE outcome = 'budget_exceeded') AS budget,
                sum(live_checkpoints) AS live, sum(cached_checkpoints) AS cache, sum(saved_usd) AS s_usd,
                sum(saved_llm_calls) AS s_calls, sum(saved_input_tokens) AS s_in, sum(saved_output_tokens) AS s_out,
                sum(saved_cached_tokens) AS s_cach
              FROM att GROUP BY 1, 2),
  w_agg AS (SELECT namespace, flow, count(*) AS asked,
              count(*) FILTER (WHERE answered_by = 'timeout-default'
                 OR (unanswered AND deadline IS NOT NULL AND status = 'failed' AND @TIMED_OUT@))
                AS timeouts,
              sum(CASE WHEN answered_at IS NOT NULL AND answered_by <> 'timeout-default' AND answered_at >= asked_at
                       THEN extract(epoch FROM answered_at - asked_at)::double precision END) AS response_sum
            FROM w GROUP BY 1, 2)
  -- One scan per source, unpivoted: metric keys are DbFamilies' (db_snapshot.cc).
  SELECT v.metric, c.namespace, c.flow, c.model, v.label, v.value FROM calls c, LATERAL (VALUES
      ('cost_usd', '', c.usd), ('llm_calls', '', c.n::float8), ('unpriced_llm_calls', '', c.unpriced::float8),
      ('tokens', 'input', c.inp::float8), ('tokens', 'output', c.outp::float8), ('tokens', 'cached', c.cach::float8)
    ) v(metric, label, value)
  UNION ALL SELECT v.metric, a.namespace, a.flow, '', v.label, v.value FROM att_agg a, LATERAL (VALUES
      ('attempts', '', a.n::float8), ('budget_suspensions', '', a.budget::float8),
      ('checkpoints', 'live', a.live::float8), ('checkpoints', 'cache', a.cache::float8),
      ('saved_usd', '', a.s_usd), ('saved_llm_calls', '', a.s_calls::float8),
      ('saved_tokens', 'input', a.s_in::float8), ('saved_tokens', 'output', a.s_out::float8),
      ('saved_tokens', 'cached', a.s_cach::float8)
    ) v(metric, label, value)
  UNION ALL SELECT 'retries', namespace, flow, '', CASE WHEN prev = 'running' THEN 'interrupted' ELSE prev END,
              count(*) FROM att WHERE prev IS NOT NULL AND prev NOT IN ('waiting', 'budget_exceeded', 'succeeded')
              GROUP BY 2, 3, 5
  UNION ALL SELECT 'runs_finished', namespace, flow, '', status, count(*) FROM r
              WHERE status IN ('succeeded', 'failed', 'cancelled') GROUP BY 2, 3, 5
  UNION ALL SELECT v.metric, x.namespace, x.flow, '', '', v.value FROM w_agg x, LATERAL (VALUES
      ('waits_asked', x.asked::float8), ('wait_timeouts', x.timeouts::float8),
      ('wait_response_seconds_sum', x.response_sum)) v(metric, value) WHERE v.value IS NOT NULL
  UNION ALL SELECT 'wait_response_seconds_bucket', c.namespace, c.flow, '',
              CASE WHEN c.i = 13 THEN '+Inf' ELSE (SELECT b[c.i]::bigint::text FROM bounds) END, c.n FROM cumulative c
$fn$;
)SQL";
  const bool typed = v != FunctionVersion::kByErrorText;
  std::string sql = kTemplate;
  auto replace_all = [&sql](const std::string& from, const std::string& to) {
    for (size_t at = sql.find(from); at != std::string::npos; at = sql.find(from, at + to.size()))
      sql.replace(at, from.size(), to);
  };
  replace_all("@CREATE@", typed ? "CREATE OR REPLACE" : "CREATE");
  replace_all("@REASON@", typed ? "failure_reason" : "error");
  replace_all("@CALLS_WHERE@", v == FunctionVersion::kCompletedCallsOnly ? " WHERE c.state = 'completed'" : "");
  replace_all("@TIMED_OUT@", typed ? "failure_reason = 'wait_timed_out'" : "error LIKE 'wait % timed out%'");
  return sql;
}

// No foreign keys: every table is keyed by run_uid and DeleteRun removes a
// run's rows from each in one transaction. This keeps the checkpoint write a
// single cheap statement.
const std::vector<Migration>& AllMigrations() {
  static const std::vector<Migration> kMigrations = {
      {1, "runs, attempts, checkpoints, failures, llm calls, waits, artifacts", R"SQL(
CREATE TABLE flowrun.runs (
  run_uid      text PRIMARY KEY,
  namespace    text NOT NULL DEFAULT '',
  name         text NOT NULL DEFAULT '',
  flow         text NOT NULL DEFAULT 'default',
  epoch        bigint NOT NULL DEFAULT 0,
  attempt      int NOT NULL DEFAULT 0,
  status       text NOT NULL DEFAULT 'pending',
  parameters   jsonb,
  budget_usd   double precision,
  budget_set   boolean NOT NULL DEFAULT false,  -- set explicitly: the initial budget no longer applies
  result       jsonb,
  error        text NOT NULL DEFAULT '',
  open_wait    text,
  created_at   timestamptz NOT NULL DEFAULT now(),
  updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE flowrun.attempts (
  run_uid      text NOT NULL,
  epoch        bigint NOT NULL,
  attempt      int NOT NULL,
  started_at   timestamptz NOT NULL DEFAULT now(),
  finished_at  timestamptz,
  outcome      text NOT NULL DEFAULT 'running',
  error        text NOT NULL DEFAULT '',
  live_checkpoints        bigint NOT NULL DEFAULT 0,
  cached_checkpoints      bigint NOT NULL DEFAULT 0,
  reexecuted_checkpoints  bigint NOT NULL DEFAULT 0,
  saved_llm_calls      bigint NOT NULL DEFAULT 0,
  saved_input_tokens   bigint NOT NULL DEFAULT 0,
  saved_output_tokens  bigint NOT NULL DEFAULT 0,
  saved_cached_tokens  bigint NOT NULL DEFAULT 0,
  saved_usd            double precision NOT NULL DEFAULT 0,
  PRIMARY KEY (run_uid, epoch)
);
CREATE TABLE flowrun.checkpoints (
  run_uid      text NOT NULL,
  name         text NOT NULL,
  occurrence   int NOT NULL,
  kind         text NOT NULL,
  fingerprint  text NOT NULL,
  status       text NOT NULL,          -- running | completed | failed
  output       jsonb,
  attempt      int NOT NULL,
  epoch        bigint NOT NULL,
  starts       int NOT NULL DEFAULT 1,
  reexecutions int NOT NULL DEFAULT 0, -- starts after an interrupted start
  last_start_interrupted boolean NOT NULL DEFAULT false,
  started_at   timestamptz,
  finished_at  timestamptz,
  duration_ms  double precision,
  llm_calls    bigint NOT NULL DEFAULT 0,
  input_tokens bigint NOT NULL DEFAULT 0,
  output_tokens bigint NOT NULL DEFAULT 0,
  cached_tokens bigint NOT NULL DEFAULT 0,
  cost_usd     double precision NOT NULL DEFAULT 0,
  unknown_cost_calls bigint NOT NULL DEFAULT 0,
  error        text NOT NULL DEFAULT '',
  PRIMARY KEY (run_uid, name, occurrence)
);
CREATE TABLE flowrun.checkpoint_failures (
  run_uid      text NOT NULL,
  name         text NOT NULL,
  occurrence   int NOT NULL,
  epoch        bigint NOT NULL,
  try_number   int NOT NULL,
  attempt      int NOT NULL,
  final        boolean NOT NULL,
  message      text NOT NULL,
  at           timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (run_uid, name, occurrence, epoch, try_number)
);
CREATE TABLE flowrun.llm_calls (
  run_uid      text NOT NULL,
  epoch        bigint NOT NULL,
  seq          bigint NOT NULL,        -- per execution: makes the insert idempotent
  checkpoint_name text,
  occurrence   int,
  attempt      int NOT NULL,
  model        text NOT NULL,
  input_tokens bigint NOT NULL,
  output_tokens bigint NOT NULL,
  cached_tokens bigint NOT NULL,
  latency_ms   double precision NOT NULL,
  cost_usd     double precision,       -- NULL: unknown (model not in the price table)
  price_source text NOT NULL,
  at           timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (run_uid, epoch, seq)
);
CREATE TABLE flowrun.waits (
  run_uid      text NOT NULL,
  name         text NOT NULL,
  occurrence   int NOT NULL,
  question     text,                   -- NULL while only an early answer exists
  schema       jsonb,
  asked_at     timestamptz,
  deadline     timestamptz,
  on_timeout   text NOT NULL DEFAULT 'fail',
  default_answer jsonb,
  answer       jsonb,
  answered_at  timestamptz,
  answered_by  text NOT NULL DEFAULT '',
  consumed_at  timestamptz,
  rejected_answer jsonb,               -- an early answer that failed validation
  rejected_reason text,
  PRIMARY KEY (run_uid, name, occurrence)
);
CREATE TABLE flowrun.artifacts (
  run_uid      text NOT NULL,
  name         text NOT NULL,
  version      int NOT NULL,
  epoch        bigint NOT NULL,
  seq          bigint NOT NULL,
  content_type text NOT NULL,
  data         bytea NOT NULL,
  size_bytes   bigint NOT NULL,
  sha256       text NOT NULL,
  checkpoint   text NOT NULL DEFAULT '',
  created_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (run_uid, name, version),
  UNIQUE (run_uid, epoch, seq)
);
CREATE INDEX runs_flow_idx ON flowrun.runs (flow, namespace);
CREATE INDEX runs_finished_idx ON flowrun.runs (updated_at) WHERE status IN ('succeeded', 'failed', 'cancelled');
)SQL"},
      // Metrics (docs/metrics.md). metric_contributions() is the one definition
      // of every exported counter: the controller sums it over live rows plus
      // metric_rollup, into which a run's contributions are folded by a
      // BEFORE DELETE trigger on its runs row (DeleteRun deletes that row
      // first, while its other rows still exist) - so totals never drop when
      // FlowRuns are deleted. Statement triggers NOTIFY flowrun_metrics on
      // every write that changes a total; the notification is delivered at
      // commit (and collapsed within a transaction).
      {2, "metric totals: contributions function, rollup of deleted runs, change notifications", R"SQL(
CREATE TABLE flowrun.metric_rollup (
  metric    text NOT NULL,
  namespace text NOT NULL,
  flow      text NOT NULL,
  model     text NOT NULL,
  label     text NOT NULL,
  value     double precision NOT NULL,
  PRIMARY KEY (metric, namespace, flow, model, label)
);
)SQL" +
           MetricContributionsSql(FunctionVersion::kByErrorText) + R"SQL(CREATE FUNCTION flowrun.fold_run_metrics() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  INSERT INTO flowrun.metric_rollup AS m (metric, namespace, flow, model, label, value)
    SELECT c.metric, c.namespace, c.flow, c.model, c.label, c.value
    FROM flowrun.metric_contributions(OLD.run_uid) c WHERE c.value <> 0
    ON CONFLICT (metric, namespace, flow, model, label) DO UPDATE SET value = m.value + EXCLUDED.value;
  RETURN OLD;
END
$fn$;
CREATE TRIGGER runs_fold_metrics BEFORE DELETE ON flowrun.runs
  FOR EACH ROW EXECUTE FUNCTION flowrun.fold_run_metrics();
CREATE FUNCTION flowrun.notify_metrics() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  PERFORM pg_notify('flowrun_metrics', '');
  RETURN NULL;
END
$fn$;
CREATE TRIGGER runs_notify_metrics AFTER INSERT OR UPDATE OR DELETE ON flowrun.runs
  FOR EACH STATEMENT EXECUTE FUNCTION flowrun.notify_metrics();
CREATE TRIGGER attempts_notify_metrics AFTER INSERT OR UPDATE ON flowrun.attempts
  FOR EACH STATEMENT EXECUTE FUNCTION flowrun.notify_metrics();
CREATE TRIGGER llm_calls_notify_metrics AFTER INSERT ON flowrun.llm_calls
  FOR EACH STATEMENT EXECUTE FUNCTION flowrun.notify_metrics();
CREATE TRIGGER waits_notify_metrics AFTER INSERT OR UPDATE ON flowrun.waits
  FOR EACH STATEMENT EXECUTE FUNCTION flowrun.notify_metrics();
)SQL"},
      // The typed contract in the database (flowrun/run_states.h): every
      // column that holds one of its words accepts only those words, and a
      // failure carries its typed reason, on which the controller and the
      // metrics decide instead of the error's wording. Existing rows are made
      // to fit first (each UPDATE below names what older builds could have
      // written), so the constraints are validated, not just declared:
      //   runs.status        pending running waiting budget_exceeded succeeded failed cancelled
      //                      (builds before this one could store an execution's
      //                      config_error / database_unavailable / divergence there: failed)
      //   attempts.outcome   running + every OutcomeKind name
      //   failure_reason     '' flow_failed wait_timed_out (runs and attempts)
      //   checkpoints.status running completed failed;  checkpoints.kind step wait
      //   waits.on_timeout   fail default
      {3, "typed value sets enforced by CHECK constraints; typed failure reason on runs and attempts", R"SQL(
UPDATE flowrun.runs SET status = 'failed'
  WHERE status NOT IN ('pending', 'running', 'waiting', 'budget_exceeded', 'succeeded', 'failed', 'cancelled');
UPDATE flowrun.attempts SET outcome = 'failed'
  WHERE outcome NOT IN ('running', 'succeeded', 'failed', 'waiting', 'budget_exceeded', 'cancelled', 'fenced',
                        'divergence', 'config_error', 'database_unavailable');
ALTER TABLE flowrun.runs ADD CONSTRAINT runs_status_known
  CHECK (status IN ('pending', 'running', 'waiting', 'budget_exceeded', 'succeeded', 'failed', 'cancelled'));
ALTER TABLE flowrun.attempts ADD CONSTRAINT attempts_outcome_known
  CHECK (outcome IN ('running', 'succeeded', 'failed', 'waiting', 'budget_exceeded', 'cancelled', 'fenced',
                     'divergence', 'config_error', 'database_unavailable'));
ALTER TABLE flowrun.checkpoints ADD CONSTRAINT checkpoints_status_known
  CHECK (status IN ('running', 'completed', 'failed'));
ALTER TABLE flowrun.checkpoints ADD CONSTRAINT checkpoints_kind_known CHECK (kind IN ('step', 'wait'));
ALTER TABLE flowrun.waits ADD CONSTRAINT waits_on_timeout_known CHECK (on_timeout IN ('fail', 'default'));
ALTER TABLE flowrun.runs ADD COLUMN failure_reason text NOT NULL DEFAULT '';
ALTER TABLE flowrun.attempts ADD COLUMN failure_reason text NOT NULL DEFAULT '';
UPDATE flowrun.runs SET failure_reason = CASE WHEN error LIKE 'wait % timed out%' THEN 'wait_timed_out'
  ELSE 'flow_failed' END WHERE status = 'failed';
UPDATE flowrun.attempts SET failure_reason = CASE WHEN error LIKE 'wait % timed out%' THEN 'wait_timed_out'
  ELSE 'flow_failed' END WHERE outcome = 'failed';
ALTER TABLE flowrun.runs ADD CONSTRAINT runs_failure_reason_known
  CHECK (failure_reason IN ('', 'flow_failed', 'wait_timed_out'));
ALTER TABLE flowrun.attempts ADD CONSTRAINT attempts_failure_reason_known
  CHECK (failure_reason IN ('', 'flow_failed', 'wait_timed_out'));
)SQL" + MetricContributionsSql(FunctionVersion::kByFailureReason)},
      // LLM calls recorded as started before their request (issue 11 §7): a
      // call whose process died during the request stays 'started' — billed
      // by the provider, cost unknown — and is counted apart
      // (RunState::spent.unfinished_calls), never in the usage totals nor the
      // metrics, which count 'completed' calls only. 'failed': the request got
      // no response after the client's retries. Every row an older build wrote
      // was a completed call: the column's default makes it so, and the
      // constraints are validated against them.
      {4, "LLM calls recorded as started before the request: state, estimated input tokens, error", R"SQL(
ALTER TABLE flowrun.llm_calls ADD COLUMN state text NOT NULL DEFAULT 'completed';
ALTER TABLE flowrun.llm_calls ADD COLUMN estimated_input_tokens bigint NOT NULL DEFAULT 0;
ALTER TABLE flowrun.llm_calls ADD COLUMN error text NOT NULL DEFAULT '';
ALTER TABLE flowrun.llm_calls ADD CONSTRAINT llm_calls_state_known
  CHECK (state IN ('started', 'completed', 'failed'));
ALTER TABLE flowrun.llm_calls ADD CONSTRAINT llm_calls_estimate_not_negative CHECK (estimated_input_tokens >= 0);
ALTER TABLE flowrun.llm_calls ADD CONSTRAINT llm_calls_cost_only_when_completed
  CHECK (state = 'completed' OR cost_usd IS NULL);
CREATE INDEX llm_calls_started_idx ON flowrun.llm_calls (run_uid) WHERE state = 'started';
DROP TRIGGER llm_calls_notify_metrics ON flowrun.llm_calls;
CREATE TRIGGER llm_calls_notify_metrics AFTER INSERT OR UPDATE ON flowrun.llm_calls
  FOR EACH STATEMENT EXECUTE FUNCTION flowrun.notify_metrics();
)SQL" + MetricContributionsSql(FunctionVersion::kCompletedCallsOnly)},
      // Replay (issue 14, flowrun/replay.h). A replay is a run of its own; when
      // it is prepared (RunAdmin::PrepareReplay, once, before its first
      // attempt) the source's completed checkpoints and the artifacts saved
      // inside them are copied into snapshot tables keyed by the *replay's*
      // run_uid, so the replay no longer depends on the source's rows (deleting
      // the source leaves them) and DeleteRun of the replay removes them.
      //   replays              one row per prepared replay: source, cut, overrides
      //   replay_checkpoints   the snapshot of the source's completed checkpoints
      //   replay_artifacts     the artifacts saved inside them, with their versions
      //   checkpoints.copied   the row was served from the snapshot: its usage
      //                        columns hold the source's usage, *inherited* (never
      //                        spent: spend is counted from llm_calls, and a copied
      //                        checkpoint makes no call). Every older row was
      //                        computed by its own run: false.
      //   replays.cut_reached  the replay's execution asked for the cut (set by
      //                        the engine; false until then)
      {5, "replay: prepared replays, snapshots of the source's completed checkpoints and their artifacts, copied checkpoints", R"SQL(
CREATE TABLE flowrun.replays (
  run_uid         text PRIMARY KEY,          -- the replay
  source_run_uid  text NOT NULL,
  source_name     text NOT NULL DEFAULT '',
  cut_name        text NOT NULL,
  cut_occurrence  int NOT NULL,
  prepared_at     timestamptz NOT NULL DEFAULT now(),
  overrides       jsonb NOT NULL DEFAULT '{}',  -- checkpoint name -> the output served instead of the source's
  snapshot_checkpoints bigint NOT NULL DEFAULT 0,
  cut_reached     boolean NOT NULL DEFAULT false,
  CONSTRAINT replays_not_self CHECK (source_run_uid <> run_uid),
  CONSTRAINT replays_cut_occurrence_positive CHECK (cut_occurrence >= 1),
  CONSTRAINT replays_overrides_object CHECK (jsonb_typeof(overrides) = 'object')
);
CREATE TABLE flowrun.replay_checkpoints (
  run_uid      text NOT NULL,                -- the replay
  name         text NOT NULL,
  occurrence   int NOT NULL,
  kind         text NOT NULL CONSTRAINT replay_checkpoints_kind_known CHECK (kind IN ('step', 'wait')),
  fingerprint  text NOT NULL,
  output       jsonb,
  attempt      int NOT NULL,                 -- the source's attempt that computed it
  llm_calls    bigint NOT NULL DEFAULT 0,
  input_tokens bigint NOT NULL DEFAULT 0,
  output_tokens bigint NOT NULL DEFAULT 0,
  cached_tokens bigint NOT NULL DEFAULT 0,
  cost_usd     double precision NOT NULL DEFAULT 0,
  unknown_cost_calls bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (run_uid, name, occurrence)
);
CREATE TABLE flowrun.replay_artifacts (
  run_uid      text NOT NULL,                -- the replay
  name         text NOT NULL,
  version      int NOT NULL,                 -- the source's version, kept
  content_type text NOT NULL,
  data         bytea NOT NULL,
  size_bytes   bigint NOT NULL,
  sha256       text NOT NULL,
  checkpoint   text NOT NULL,                -- name#occurrence of the snapshot checkpoint that saved it
  created_at   timestamptz NOT NULL,         -- when the source saved it
  PRIMARY KEY (run_uid, name, version)
);
ALTER TABLE flowrun.checkpoints ADD COLUMN copied boolean NOT NULL DEFAULT false;
)SQL"},
      // Renamed checkpoints (issue 11; the rule is in runtime-lib/src/checkpoint_renames.h).
      // A completed step records where its execution asked for it and a digest of
      // its inputs that leaves the name out, so a later attempt can tell "the
      // checkpoint at this place, with these very inputs, got another name" from
      // a new checkpoint. Rows written before (and copies that do not carry them)
      // hold NULL: never taken for a rename.
      //   position       1-based: the how-manyth checkpoint or wait its execution
      //                  reserved (program order)
      //   inputs_digest  "v1:" + 32 hex digits of SHA-256 over the canonical inputs
      //                  the driver names (C++: CheckpointOptions::inputs; Python:
      //                  the bound arguments); NULL for a checkpoint without inputs
      {6, "renamed checkpoints: a completed step's position and name-independent inputs digest", R"SQL(
ALTER TABLE flowrun.checkpoints ADD COLUMN position int;
ALTER TABLE flowrun.checkpoints ADD COLUMN inputs_digest text;
ALTER TABLE flowrun.checkpoints ADD CONSTRAINT checkpoints_position_positive CHECK (position >= 1);
)SQL"},
      // The change notifications of runs, attempts and llm_calls (migration 2)
      // without PL/pgSQL on the agent's path (issue 10 §5). A backend's first
      // PL/pgSQL call loads the language and compiles the function: ~1 ms,
      // which every agent process paid inside its first Begin() (measured with
      // EXPLAIN ANALYZE on a fresh connection: trigger time 1.0 ms of 1.4 ms).
      // A statement may now say that it sends the notification itself, with
      // the built-in pg_notify('flowrun_metrics', ''): it sets the
      // transaction-local flowrun.metrics_notified to 'on' before its rows
      // are written, and the trigger's WHEN (evaluated in C, no PL/pgSQL)
      // skips the function. Every other writer (RunAdmin, the controller,
      // psql) is unchanged: the setting is unset, the trigger runs as before.
      // The notification is the same (channel, empty payload, delivered at
      // commit, collapsed within a transaction).
      {7, "change notifications: a statement that notifies itself skips the PL/pgSQL trigger", R"SQL(
DROP TRIGGER runs_notify_metrics ON flowrun.runs;
CREATE TRIGGER runs_notify_metrics AFTER INSERT OR UPDATE OR DELETE ON flowrun.runs
  FOR EACH STATEMENT WHEN (current_setting('flowrun.metrics_notified', true) IS DISTINCT FROM 'on')
  EXECUTE FUNCTION flowrun.notify_metrics();
DROP TRIGGER attempts_notify_metrics ON flowrun.attempts;
CREATE TRIGGER attempts_notify_metrics AFTER INSERT OR UPDATE ON flowrun.attempts
  FOR EACH STATEMENT WHEN (current_setting('flowrun.metrics_notified', true) IS DISTINCT FROM 'on')
  EXECUTE FUNCTION flowrun.notify_metrics();
DROP TRIGGER llm_calls_notify_metrics ON flowrun.llm_calls;
CREATE TRIGGER llm_calls_notify_metrics AFTER INSERT OR UPDATE ON flowrun.llm_calls
  FOR EACH STATEMENT WHEN (current_setting('flowrun.metrics_notified', true) IS DISTINCT FROM 'on')
  EXECUTE FUNCTION flowrun.notify_metrics();
)SQL"},
  };
  return kMigrations;
}

}  // namespace

int CurrentSchemaVersion() { return AllMigrations().back().version; }

namespace pg {

int SchemaVersionOf(pqxx::connection& c) {
  pqxx::nontransaction tx(c);  // autocommit: a missing table aborts nothing
  try {
    return tx.exec("SELECT coalesce(max(version), 0) FROM flowrun.schema_migrations")[0][0].as<int>();
  } catch (const pqxx::undefined_table&) {
    return 0;  // flowrun's schema was never created here
  }
}

Status CheckSchemaVersion(int version) {
  const int want = CurrentSchemaVersion();
  if (version == want) return Status::Ok();
  if (version > want)
    return FailedPrecondition("the database's flowrun schema is at version " + std::to_string(version) +
                              ", newer than this build's " + std::to_string(want) + "; upgrade flowrun");
  return FailedPrecondition("the database's flowrun schema is at version " + std::to_string(version) +
                            ", this build needs " + std::to_string(want) +
                            ": run `flowrunctl migrate` (or start flowrun-controller, which migrates at start)");
}

}  // namespace pg

Status Migrate(const PostgresOptions& options) { return MigrateTo(options, CurrentSchemaVersion()); }

Status MigrateTo(const PostgresOptions& options, int version) {
  if (version < 1 || version > CurrentSchemaVersion())
    return InvalidArgument("schema version " + std::to_string(version) + " is not one of this build's (1.." +
                           std::to_string(CurrentSchemaVersion()) + ")");
  pg::PgSession session(options, {});
  auto applied = session.Run("migrating the flowrun schema", /*retry_safe=*/true, [version](pqxx::connection& c) {
    int count = 0;
    pqxx::work tx(c);
    tx.exec_params("SELECT pg_advisory_xact_lock($1)", kMigrationLockKey);
    tx.exec("CREATE SCHEMA IF NOT EXISTS flowrun");
    tx.exec(
        "CREATE TABLE IF NOT EXISTS flowrun.schema_migrations ("
        " version int PRIMARY KEY, description text NOT NULL,"
        " applied_at timestamptz NOT NULL DEFAULT now())");
    int current = tx.exec("SELECT coalesce(max(version), 0) FROM flowrun.schema_migrations")[0][0].as<int>();
    if (current > CurrentSchemaVersion()) {
      throw std::runtime_error("database schema version " + std::to_string(current) +
                               " is newer than this build's " + std::to_string(CurrentSchemaVersion()) +
                               "; upgrade flowrun");
    }
    for (const Migration& m : AllMigrations()) {
      if (m.version <= current || m.version > version) continue;
      tx.exec(m.sql);
      tx.exec_params("INSERT INTO flowrun.schema_migrations (version, description) VALUES ($1, $2)",
                     m.version, m.description);
      ++count;
    }
    tx.commit();
    return count;
  });
  if (!applied.ok()) return applied.status();
  return Status::Ok();
}

}  // namespace flowrun
