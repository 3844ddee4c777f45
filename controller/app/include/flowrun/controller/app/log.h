// Structured logs: one JSON object per line,
//   {"ts":"2026-01-01T00:00:00.000Z","level":"info","msg":"...",<fields>}
// Levels "debug" < "info" < "warn" = "error"; a line below the logger's
// level is not written. The field names and messages are read by tests and
// operators (tests/e2e, tests/helm wait on some): keep them stable.
//
// "ts" is the clock's time in UTC to the millisecond (flowrun::FormatTimeMillis,
// the same format as the agent's log lines).
//
// Ownership: the logger writes to `out` and reads `clock`, which must outlive
// it (nullptr: std::cerr, DefaultClock()). Thread safety:
// Log() may be called from any thread; each line is written whole.
#pragma once

#include <iosfwd>
#include <mutex>
#include <string>

#include <nlohmann/json.hpp>

#include "flowrun/clock.h"

namespace flowrun::controller::app {

class Logger {
 public:
  // `level`: "debug", "info", "warn" or "error" (anything else: "warn").
  explicit Logger(const std::string& level = "info", std::ostream* out = nullptr, Clock* clock = nullptr);

  void Log(const std::string& level, const std::string& msg,
           const nlohmann::json& fields = nlohmann::json::object()) const;

  // 0 debug, 1 info, 2 warn/error.
  static int LevelOf(const std::string& level);

 private:
  int min_level_;
  std::ostream* out_;  // not owned; std::cerr by default
  Clock* clock_;       // not owned; DefaultClock() by default
  mutable std::mutex mu_;
};

}  // namespace flowrun::controller::app
