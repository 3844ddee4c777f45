// The PostgreSQL adapters: the only place flowrun talks to libpqxx.
//
// Tables live in the schema "flowrun", created and upgraded by versioned
// migrations that Migrate() applies idempotently under an advisory lock, so
// any number of processes may start at once. Only the controller (at start)
// and `flowrunctl migrate` call it; opening a store checks the version. Every row is keyed by the run's
// uid; DeleteRun() removes all of a run's rows.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "flowrun/clock.h"
#include "flowrun/run_admin.h"
#include "flowrun/run_store.h"
#include "flowrun/status.h"

namespace flowrun {

struct PostgresOptions {
  std::string conninfo;          // libpq string or URI; "" = PG* variables. A secret.
  std::string application_name = "flowrun";
  int connect_attempts = 5;      // bounded retries at connect and reconnect
  std::chrono::milliseconds initial_backoff{200};  // doubles each retry, capped at 5 s
  Clock* clock = nullptr;        // not owned; nullptr = a SystemClock owned by the adapter
  // Test seam: called after a write statement executed and before its result
  // is read; may throw to simulate a lost acknowledgement. Empty in production.
  std::function<void(const std::string& statement)> fault_injector;
};

// The schema version this build expects.
int CurrentSchemaVersion();

// Applies pending migrations. Safe to call concurrently from many processes.
Status Migrate(const PostgresOptions& options);
// Applies pending migrations up to `version` only (an upgrade in stages; the
// tests use it to build a database as an older flowrun left it).
// kInvalidArgument for a version this build does not have.
Status MigrateTo(const PostgresOptions& options, int version);

// Connects (with bounded retries), checks the schema version and returns a
// store for one execution. They never migrate: migrating is the
// controller's job at start (and `flowrunctl migrate`'s), so an agent
// execution pays one cheap version read, not a migration under a global lock.
// Errors: kUnavailable when the database stays unreachable; kInvalidArgument
// for a malformed connection string; kFailedPrecondition when the schema is
// behind (the message names `flowrunctl migrate`) or ahead of this build.
StatusOr<std::unique_ptr<RunStore>> OpenPostgresRunStore(const PostgresOptions& options);

// The same for the admin API (controller, flowrunctl, dashboards).
StatusOr<std::unique_ptr<RunAdmin>> OpenPostgresRunAdmin(const PostgresOptions& options);

}  // namespace flowrun
