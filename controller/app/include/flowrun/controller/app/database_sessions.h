// The controller's PostgreSQL. The controller owns the schema: it migrates
// at start, and when that failed (the database was down then) a worker's
// first session migrates before it opens (agents and flowrunctl never
// migrate; docs/install.md). The URL is never logged.
// Thread safety: both functions may be called from any thread; each session
// the factory opens is used by one worker.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "flowrun/controller/app/log.h"
#include "flowrun/run_admin.h"
#include "flowrun/status.h"

namespace flowrun::controller::app {

using SessionFactory = std::function<StatusOr<std::unique_ptr<RunAdmin>>()>;

// Migrate (application_name flowrun-controller). A failure is logged at warn
// ("database migration failed; the workers' first sessions migrate") and
// returned; the process goes on.
Status MigrateAtStart(const std::string& url, const Logger& log);

// For FlowRunControllerDeps::open_admin: a RunAdmin session (2 connect
// attempts); a schema that is behind (kFailedPrecondition) is migrated, then
// the session opened again.
SessionFactory PostgresSessionFactory(std::string url);

}  // namespace flowrun::controller::app
