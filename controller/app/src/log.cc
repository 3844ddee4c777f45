#include "flowrun/controller/app/log.h"

#include <chrono>
#include <cstdio>
#include <ctime>
#include <iostream>

namespace flowrun::controller::app {

using nlohmann::json;

Logger::Logger(const std::string& level, std::ostream* out)
    : min_level_(LevelOf(level)), out_(out ? out : &std::cerr) {}

int Logger::LevelOf(const std::string& l) { return l == "debug" ? 0 : (l == "info" ? 1 : 2); }

void Logger::Log(const std::string& level, const std::string& msg, const json& fields) const {
  if (LevelOf(level) < min_level_) return;
  json line = json::object();
  auto now = std::chrono::system_clock::now();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  std::time_t secs = ms / 1000;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[40];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  char full[48];
  std::snprintf(full, sizeof full, "%s.%03dZ", buf, static_cast<int>(ms % 1000));
  line["ts"] = full;
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
