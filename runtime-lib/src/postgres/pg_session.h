// PgSession: one PostgreSQL connection with flowrun's connection policy.
//
// - Connects with bounded retries and exponential backoff.
// - Normalizes the connection string (keyword or URI form) and adds
//   connect_timeout and application_name unless given.
// - Prepares its statements eagerly after every (re)connect: libpqxx 6
//   reconnects silently and prepares lazily, so flowrun owns both.
// - Converts libpqxx exceptions to Status at this boundary.
//
// Not thread-safe: a libpq connection holds one transaction at a time.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <pqxx/pqxx>

#include "flowrun/clock.h"
#include "flowrun/postgres.h"
#include "flowrun/status.h"

namespace flowrun::pg {

using Statements = std::vector<std::pair<std::string, std::string>>;  // name, SQL

// Parses and normalizes `conninfo`. kInvalidArgument for malformed strings
// (message redacted of secrets).
StatusOr<std::string> NormalizeConnectionString(const std::string& conninfo,
                                                const std::string& application_name);

// Converts an exception from libpqxx to a Status. Lost acknowledgements
// (in_doubt_error, statement_completion_unknown) become kUnknown; connection
// loss kUnavailable; constraint and data errors kInvalidArgument.
Status FromException(const std::exception& e, std::string_view what);

// The schema version of the database behind `c` (0: flowrun's schema does
// not exist yet); one statement. Throws like any libpqxx call.
int SchemaVersionOf(pqxx::connection& c);

// OK when `version` is exactly the schema this build expects; else
// kFailedPrecondition saying which command brings the database there.
Status CheckSchemaVersion(int version);

class PgSession {
 public:
  // check_schema: every (re)connect first reads the schema version and fails
  // with CheckSchemaVersion's error before preparing anything — what opening
  // a store or an admin session does instead of migrating.
  PgSession(PostgresOptions options, Statements statements, bool check_schema = false);
  ~PgSession();

  // Connects, retrying up to options.connect_attempts times.
  Status Connect();
  bool connected() const { return conn_ != nullptr && conn_->is_open(); }

  // Runs `fn(pqxx::connection&)`. A connection lost before or during `fn` is
  // reconnected (bounded); if `retry_safe`, `fn` runs once more. Every other
  // failure is returned as a Status.
  template <typename F>
  auto Run(std::string_view what, bool retry_safe, F&& fn) -> StatusOr<decltype(fn(std::declval<pqxx::connection&>()))> {
    for (int round = 0;; ++round) {
      if (!connected()) FLOWRUN_RETURN_IF_ERROR(Connect());
      try {
        return fn(*conn_);
      } catch (const pqxx::broken_connection& e) {
        conn_.reset();
        if (!retry_safe || round >= 1) return FromException(e, what);
      } catch (const std::exception& e) {
        Status s = FromException(e, what);
        if (s.code() == StatusCode::kUnavailable || s.code() == StatusCode::kUnknown) conn_.reset();
        return s;
      }
    }
  }

  // The test seam of PostgresOptions: call after a write executed.
  void AfterWrite(const std::string& statement) {
    if (options_.fault_injector) options_.fault_injector(statement);
  }

  Clock& clock() { return *clock_; }
  const PostgresOptions& options() const { return options_; }

 private:
  PostgresOptions options_;
  Statements statements_;
  bool check_schema_ = false;
  std::unique_ptr<SystemClock> owned_clock_;
  Clock* clock_;
  std::string normalized_;
  std::unique_ptr<pqxx::connection> conn_;
};

// Helpers for parameters: libpqxx 6 passes a null for a null const char*.
inline const char* NullableText(const std::optional<std::string>& s) { return s ? s->c_str() : nullptr; }
// A double as text that converts back to the same double (std::to_string
// keeps 6 decimals: a $1.5e-7 call would become 0).
std::string ExactDouble(double v);
// Seconds since the epoch, for to_timestamp($n).
double EpochSeconds(std::chrono::system_clock::time_point t);
std::chrono::system_clock::time_point FromEpochSeconds(double s);

}  // namespace flowrun::pg
