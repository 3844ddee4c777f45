#include "flowrun/controller/app/log.h"

#include <iostream>

#include "flowrun/rfc3339.h"

namespace flowrun::controller::app {

using nlohmann::json;

Logger::Logger(const std::string& level, std::ostream* out, Clock* clock)
    : min_level_(LevelOf(level)), out_(out ? out : &std::cerr), clock_(clock ? clock : DefaultClock()) {}

int Logger::LevelOf(const std::string& l) { return l == "debug" ? 0 : (l == "info" ? 1 : 2); }

void Logger::Log(const std::string& level, const std::string& msg, const json& fields) const {
  if (LevelOf(level) < min_level_) return;
  json line = json::object();
  line["ts"] = FormatTimeMillis(clock_->Now());
  line["level"] = level;
  line["msg"] = msg;
  if (fields.is_object())
    for (auto it = fields.begin(); it != fields.end(); ++it) line[it.key()] = it.value();
  // Line and newline in one write: std::cerr is unbuffered, and two writes let
  // another writer's bytes land between them.
  std::string text = line.dump(-1, ' ', false, json::error_handler_t::replace);
  text += '\n';
  std::lock_guard<std::mutex> lock(mu_);
  *out_ << text << std::flush;
}

}  // namespace flowrun::controller::app
