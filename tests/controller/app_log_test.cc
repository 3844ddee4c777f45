// The controller's JSON-line logger (controller/app/log.h): the shape tests
// and operators read, and level filtering, with no global state.
#include <chrono>
#include <sstream>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "flowrun/controller/app/log.h"
#include "support/fake_clock.h"

namespace {

using nlohmann::json;
using flowrun::controller::app::Logger;

TEST(AppLogger, OneJsonObjectPerLineWithFields) {
  std::ostringstream out;
  Logger log("info", &out);
  log.Log("info", "informers synced", {{"flowruns", 3}, {"jobs", 1}});
  std::string text = out.str();
  ASSERT_EQ(text.back(), '\n');
  json line = json::parse(text);
  EXPECT_EQ(line["level"], "info");
  EXPECT_EQ(line["msg"], "informers synced");
  EXPECT_EQ(line["flowruns"], 3);
  std::string ts = line["ts"];
  ASSERT_EQ(ts.size(), 24u) << ts;  // 2026-01-01T00:00:00.000Z
  EXPECT_EQ(ts.back(), 'Z');
}

TEST(AppLogger, TimestampIsTheInjectedClocksTimeToTheMillisecondRoundedDown) {
  flowrun::testing::FakeClock clock;  // starts at 2019-12-20T00:00:00Z
  clock.Advance(std::chrono::microseconds(1999999));
  std::ostringstream out;
  Logger log("info", &out, &clock);
  log.Log("info", "tick");
  EXPECT_EQ(json::parse(out.str())["ts"], "2019-12-20T00:00:01.999Z");
}

TEST(AppLogger, LevelsFilterAndLoggersAreIndependent) {
  std::ostringstream quiet_out, debug_out;
  Logger quiet("warn", &quiet_out), debug("debug", &debug_out);
  quiet.Log("debug", "a");
  quiet.Log("info", "b");
  quiet.Log("error", "c");
  debug.Log("debug", "d");
  EXPECT_EQ(quiet_out.str().find("\"msg\":\"b\""), std::string::npos);
  EXPECT_NE(quiet_out.str().find("\"msg\":\"c\""), std::string::npos);
  EXPECT_NE(debug_out.str().find("\"msg\":\"d\""), std::string::npos);
}

TEST(AppLogger, InvalidUtf8IsReplacedNotThrown) {
  std::ostringstream out;
  Logger log("info", &out);
  log.Log("info", "bad \xff byte");
  json line;
  EXPECT_NO_THROW(line = json::parse(out.str()));
  EXPECT_EQ(line.value("level", ""), "info");
}

}  // namespace
