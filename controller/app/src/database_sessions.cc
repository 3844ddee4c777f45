#include "flowrun/controller/app/database_sessions.h"

#include "flowrun/postgres.h"

namespace flowrun::controller::app {
namespace {

PostgresOptions Options(const std::string& url) {
  PostgresOptions po;
  po.conninfo = url;
  po.application_name = "flowrun-controller";
  return po;
}

}  // namespace

Status MigrateAtStart(const std::string& url, const Logger& log) {
  Status m = Migrate(Options(url));
  if (!m.ok()) log.Log("warn", "database migration failed; the workers' first sessions migrate", {{"error", m.ToString()}});
  return m;
}

SessionFactory PostgresSessionFactory(std::string url) {
  return [url = std::move(url)]() -> StatusOr<std::unique_ptr<RunAdmin>> {
    PostgresOptions po = Options(url);
    po.connect_attempts = 2;
    auto admin = OpenPostgresRunAdmin(po);
    if (!admin.ok() && admin.status().code() == StatusCode::kFailedPrecondition) {
      if (Status m = Migrate(po); !m.ok()) return m;
      admin = OpenPostgresRunAdmin(po);
    }
    return admin;
  };
}

}  // namespace flowrun::controller::app
