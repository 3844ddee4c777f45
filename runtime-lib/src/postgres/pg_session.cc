#include "postgres/pg_session.h"

#include <libpq-fe.h>

#include <cstdio>

#include "flowrun/environment.h"

namespace flowrun::pg {

namespace {

std::string QuoteConnValue(const std::string& v) {
  std::string out = "'";
  for (char c : v) {
    if (c == '\'' || c == '\\') out += '\\';
    out += c;
  }
  return out + "'";
}

}  // namespace

StatusOr<std::string> NormalizeConnectionString(const std::string& conninfo,
                                                const std::string& application_name) {
  char* err = nullptr;
  PQconninfoOption* opts = PQconninfoParse(conninfo.c_str(), &err);
  if (opts == nullptr) {
    std::string msg = err ? err : "out of memory";
    if (err) PQfreemem(err);
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
    return InvalidArgument("malformed database connection string (" + RedactConnectionString(msg) + ")");
  }
  std::string out;
  bool has_timeout = false, has_app = false;
  for (PQconninfoOption* o = opts; o->keyword != nullptr; ++o) {
    if (o->val == nullptr) continue;
    std::string key = o->keyword;
    if (o->val[0] == '\0' && (key == "host" || key == "hostaddr" || key == "port" || key == "dbname")) {
      PQconninfoFree(opts);
      return InvalidArgument("malformed database connection string (" + key + " is empty)");
    }
    if (key == "connect_timeout") has_timeout = true;
    if (key == "application_name") has_app = true;
    if (!out.empty()) out += ' ';
    out += key + "=" + QuoteConnValue(o->val);
  }
  PQconninfoFree(opts);
  if (!has_timeout) out += std::string(out.empty() ? "" : " ") + "connect_timeout=5";
  if (!has_app) out += " application_name=" + QuoteConnValue(application_name);
  return out;
}

Status FromException(const std::exception& e, std::string_view what) {
  std::string msg = std::string(what) + ": " + RedactConnectionString(e.what());
  while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
  if (dynamic_cast<const pqxx::in_doubt_error*>(&e) ||
      dynamic_cast<const pqxx::statement_completion_unknown*>(&e))
    return UnknownError(msg);
  if (dynamic_cast<const pqxx::broken_connection*>(&e)) return Unavailable(msg);
  if (auto* sql = dynamic_cast<const pqxx::sql_error*>(&e)) {
    std::string state = sql->sqlstate();
    // 22: data exception (bad JSON text, \u0000 in jsonb), 23: integrity constraint.
    if (state.rfind("22", 0) == 0 || state.rfind("23", 0) == 0) return InvalidArgument(msg);
    // 57P01..57P03: the server is shutting down or our backend was terminated.
    if (state.rfind("57P", 0) == 0 || state.rfind("08", 0) == 0) return Unavailable(msg);
    if (state == "40001" || state == "40P01") return Unavailable(msg);
    return Internal(msg + " [SQLSTATE " + state + "]");
  }
  return Internal(msg);
}

PgSession::PgSession(PostgresOptions options, Statements statements, bool check_schema)
    : options_(std::move(options)), statements_(std::move(statements)), check_schema_(check_schema) {
  if (options_.clock == nullptr) {
    owned_clock_ = std::make_unique<SystemClock>();
    clock_ = owned_clock_.get();
  } else {
    clock_ = options_.clock;
  }
}

PgSession::~PgSession() = default;

Status PgSession::Connect() {
  if (normalized_.empty()) {
    FLOWRUN_ASSIGN_OR_RETURN(normalized_,
                             NormalizeConnectionString(options_.conninfo, options_.application_name));
  }
  conn_.reset();
  auto backoff = options_.initial_backoff;
  Status last;
  int attempts = std::max(1, options_.connect_attempts);
  for (int i = 1; i <= attempts; ++i) {
    try {
      auto c = std::make_unique<pqxx::connection>(normalized_);
      if (check_schema_)
        if (Status v = CheckSchemaVersion(SchemaVersionOf(*c)); !v.ok()) return v;  // not an outage: no retry
      // libpqxx 6 prepares lazily; prepare_now sends each statement to the
      // server at connect, so a broken statement fails here, not mid-run.
      for (const auto& [name, sql] : statements_) {
        c->prepare(name, sql);
        c->prepare_now(name);
      }
      conn_ = std::move(c);
      return Status::Ok();
    } catch (const pqxx::broken_connection& e) {
      last = FromException(e, "connecting to PostgreSQL");
    } catch (const std::exception& e) {
      // A statement that does not prepare is a bug, not an outage: no retry.
      return FromException(e, "preparing statements");
    }
    if (i < attempts) {
      clock_->SleepFor(backoff);
      backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
    }
  }
  return Unavailable("PostgreSQL unreachable after " + std::to_string(attempts) +
                     " attempts: " + last.message());
}

std::string ExactDouble(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

double EpochSeconds(std::chrono::system_clock::time_point t) {
  return std::chrono::duration<double>(t.time_since_epoch()).count();
}

std::chrono::system_clock::time_point FromEpochSeconds(double s) {
  return std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(std::chrono::duration<double>(s)));
}

}  // namespace flowrun::pg
