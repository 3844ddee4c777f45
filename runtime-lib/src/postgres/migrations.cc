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
  const char* sql;
};

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
  };
  return kMigrations;
}

}  // namespace

int CurrentSchemaVersion() { return AllMigrations().back().version; }

Status Migrate(const PostgresOptions& options) {
  pg::PgSession session(options, {});
  auto applied = session.Run("migrating the flowrun schema", /*retry_safe=*/true, [](pqxx::connection& c) {
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
      if (m.version <= current) continue;
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
