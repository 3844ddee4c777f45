// base/: the helpers every part of flowrun shares (flowrun::base). Each has
// one implementation; these tests pin the edges where the copies it replaced
// differed (fractions of a second, the "..." of a cut text, integral floats).
#include <chrono>
#include <cmath>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "flowrun/json_fields.h"
#include "flowrun/money.h"
#include "flowrun/rfc3339.h"
#include "flowrun/status.h"
#include "flowrun/utf8.h"

namespace flowrun {
namespace {

using nlohmann::json;
using std::chrono::microseconds;
using std::chrono::milliseconds;
using std::chrono::nanoseconds;
using std::chrono::system_clock;

const system_clock::time_point kT0 = *ParseTime("2026-11-26T10:06:27Z");

// ---------------------------------------------------------------------------
// RFC 3339

TEST(Rfc3339Test, SecondsDropTheFraction) {
  EXPECT_EQ(FormatTime(kT0), "2026-11-26T10:06:27Z");
  EXPECT_EQ(FormatTime(kT0 + milliseconds(999)), "2026-11-26T10:06:27Z");
}

TEST(Rfc3339Test, MillisecondsAlwaysHaveThreeDigitsAndRoundDown) {
  EXPECT_EQ(FormatTimeMillis(kT0), "2026-11-26T10:06:27.000Z");
  EXPECT_EQ(FormatTimeMillis(kT0 + milliseconds(42)), "2026-11-26T10:06:27.042Z");
  // 999.9 ms is still this second: never ".1000" nor the next second.
  EXPECT_EQ(FormatTimeMillis(kT0 + microseconds(999900)), "2026-11-26T10:06:27.999Z");
}

TEST(Rfc3339Test, MicrosecondsAlwaysHaveSixDigits) {
  EXPECT_EQ(FormatTimeMicros(kT0), "2026-11-26T10:06:27.000000Z");
  EXPECT_EQ(FormatTimeMicros(kT0 + microseconds(42)), "2026-11-26T10:06:27.000042Z");
  EXPECT_EQ(FormatTimeMicros(kT0 + nanoseconds(999999999)), "2026-11-26T10:06:27.999999Z");
}

TEST(Rfc3339Test, BeforeTheEpochTheFractionStillCountsForward) {
  system_clock::time_point t = system_clock::time_point() - milliseconds(1);
  EXPECT_EQ(FormatTimeMillis(t), "1969-12-31T23:59:59.999Z");
  EXPECT_EQ(FormatTime(t), "1969-12-31T23:59:59Z");
}

TEST(Rfc3339Test, EveryFormatParsesBack) {
  system_clock::time_point t = kT0 + microseconds(123456);
  EXPECT_EQ(ParseTime(FormatTime(t)), kT0);
  EXPECT_EQ(ParseTime(FormatTimeMillis(t)), kT0 + milliseconds(123));
  EXPECT_EQ(ParseTime(FormatTimeMicros(t)), t);
}

TEST(Rfc3339Test, ParseAcceptsOffsetsAndRejectsWhatIsNotRfc3339) {
  EXPECT_EQ(ParseTime("2026-11-26T12:06:27+02:00"), kT0);
  EXPECT_EQ(ParseTime("2026-11-26t10:06:27z"), kT0);
  EXPECT_FALSE(ParseTime("2026-11-26T10:06:27").has_value());
  EXPECT_FALSE(ParseTime("2026-11-26T10:06:27.Z").has_value());
  EXPECT_FALSE(ParseTime("2026-13-26T10:06:27Z").has_value());
  EXPECT_FALSE(ParseTime("").has_value());
}

// ---------------------------------------------------------------------------
// UTF-8

TEST(TruncateUtf8Test, TextThatFitsIsUnchanged) {
  EXPECT_EQ(TruncateUtf8("short", 5), "short");
  EXPECT_EQ(TruncateUtf8("", 0), "");
}

TEST(TruncateUtf8Test, ALongerTextIsCutAndMarkedWithinTheBudget) {
  EXPECT_EQ(TruncateUtf8("abcdefgh", 6), "abc...");
}

TEST(TruncateUtf8Test, NeverSplitsACodePoint) {
  std::string s = "ab\xe2\x82\xac" "cdef";  // "ab€cdef": the euro sign is 3 bytes
  // Room for 4 bytes of text: "ab" and the first two bytes of the euro sign.
  EXPECT_EQ(TruncateUtf8(s, 7), "ab...");
  EXPECT_EQ(TruncateUtf8(s, 8), "ab\xe2\x82\xac...");
}

TEST(TruncateUtf8Test, ABudgetTooSmallForTheMarkerIsAllDots) {
  EXPECT_EQ(TruncateUtf8("abcdef", 2), "..");
  EXPECT_EQ(TruncateUtf8("abcdef", 0), "");
}

// ---------------------------------------------------------------------------
// JSON fields

TEST(JsonFieldsTest, MissingMistypedOrNotAnObjectReadsAsAbsent) {
  json o = {{"s", "text"}, {"n", 3}, {"arr", json::array({1})}};
  EXPECT_EQ(JsonString(o, "s"), "text");
  EXPECT_EQ(JsonString(o, "n"), "");
  EXPECT_EQ(JsonString(o, "missing"), "");
  EXPECT_EQ(JsonString(json::array({"s"}), "s"), "");
  EXPECT_EQ(JsonString(json(), "s"), "");
  EXPECT_TRUE(JsonField(o, "missing").is_null());
  EXPECT_TRUE(JsonField(json("s"), "s").is_null());
}

TEST(JsonFieldsTest, OneLevelDownAsKubernetesObjectsNestThem) {
  json obj = {{"metadata", {{"name", "fr-1"}, {"generation", 2}}}, {"spec", "not an object"}};
  EXPECT_EQ(JsonString(obj, "metadata", "name"), "fr-1");
  EXPECT_EQ(JsonString(obj, "metadata", "generation"), "");
  EXPECT_EQ(JsonString(obj, "metadata", "missing"), "");
  EXPECT_EQ(JsonString(obj, "spec", "flow"), "");
  EXPECT_EQ(JsonString(obj, "status", "phase"), "");
  EXPECT_EQ(JsonString(json(), "metadata", "name"), "");
}

TEST(JsonFieldsTest, IntegersAcceptIntegralFloatsOnly) {
  json o = {{"i", 15}, {"f", 15.0}, {"half", 1.5}, {"s", "15"}, {"neg", -4}, {"huge", 1e300}};
  EXPECT_EQ(JsonInt(o, "i"), 15);
  EXPECT_EQ(JsonInt(o, "f"), 15);  // YAML and JavaScript clients write 15.0
  EXPECT_EQ(JsonInt(o, "half", -1), -1);
  EXPECT_EQ(JsonInt(o, "s", -1), -1);
  EXPECT_EQ(JsonInt(o, "neg"), -4);
  EXPECT_EQ(JsonInt(o, "huge", -1), -1);
  EXPECT_EQ(JsonInt(o, "missing", 7), 7);
}

TEST(JsonFieldsTest, NumbersAreAnyNumber) {
  json o = {{"i", 2}, {"f", 0.25}, {"s", "0.25"}};
  EXPECT_EQ(JsonNumber(o, "i"), 2.0);
  EXPECT_EQ(JsonNumber(o, "f"), 0.25);
  EXPECT_EQ(JsonNumber(o, "s", -1), -1.0);
}

// ---------------------------------------------------------------------------
// Status

TEST(StatusTest, CodesAndContext) {
  Status s = Aborted("fenced");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.ToString(), "ABORTED: fenced");
  EXPECT_EQ(s.WithContext("checkpoint 'x'").message(), "checkpoint 'x': fenced");
  EXPECT_TRUE(Status::Ok().WithContext("ctx").ok());
  EXPECT_EQ(Status::Ok().ToString(), "OK");
  StatusOr<int> from_ok_status = Status::Ok();
  EXPECT_FALSE(from_ok_status.ok());
  EXPECT_EQ(from_ok_status.status().code(), StatusCode::kInternal);
  StatusOr<int> v = 5;
  EXPECT_TRUE(v.ok());
  EXPECT_EQ(*v, 5);
}

TEST(StatusTest, PayloadsSurviveContext) {
  Status s = Unavailable("down");
  s.SetPayload("k8s.reason", "ServiceUnavailable");
  Status c = s.WithContext("list pods");
  EXPECT_EQ(c.GetPayload("k8s.reason"), "ServiceUnavailable");
  EXPECT_FALSE(c.GetPayload("other").has_value());
}

}  // namespace
}  // namespace flowrun

// Money (flowrun/money.h): whole nano-dollars, never float noise.
TEST(MoneyTest, NoisyDoubleSumsBecomeTheDecimalTheyStandFor) {
  const double noisy = 6.35e-06 + 6.35e-06 + 6.35e-06;
  ASSERT_NE(nlohmann::json(noisy).dump(), "1.905e-05");  // the premise: 1.9050000000000002e-05
  EXPECT_EQ(flowrun::UsdDecimal(noisy), "0.00001905");
  EXPECT_EQ(flowrun::UsdDecimal(1.9050000000000002e-05), "0.00001905");
  EXPECT_EQ(nlohmann::json(flowrun::RoundUsd(noisy)).dump(), "1.905e-05");
  EXPECT_EQ(flowrun::RoundUsd(0.1 + 0.2), 0.3);
  EXPECT_EQ(nlohmann::json(flowrun::RoundUsd(0.1 + 0.2)).dump(), "0.3");
  // Every sum of n calls at a price with at most 9 decimals reads back as its decimal.
  for (int n = 1; n <= 1000; ++n) {
    double sum = 0;
    for (int i = 0; i < n; ++i) sum += 6.35e-06;
    const std::string text = nlohmann::json(flowrun::RoundUsd(sum)).dump();
    EXPECT_LE(text.size(), 12u) << n << " calls: " << text;
    EXPECT_DOUBLE_EQ(std::stod(flowrun::UsdDecimal(sum)), n * 6.35e-06) << n;
  }
}

TEST(MoneyTest, DecimalTextRoundsHalfAwayFromZeroAndTrimsZeros) {
  EXPECT_EQ(flowrun::UsdDecimal(12.5), "12.5");
  EXPECT_EQ(flowrun::UsdDecimal(3), "3");
  EXPECT_EQ(flowrun::UsdDecimal(0), "0");
  EXPECT_EQ(flowrun::UsdDecimal(1.5, 2), "1.50");
  EXPECT_EQ(flowrun::UsdDecimal(0, 2), "0.00");
  EXPECT_EQ(flowrun::UsdDecimal(-0.0077), "-0.0077");
  EXPECT_EQ(flowrun::UsdDecimal(4e-10), "0");
  EXPECT_EQ(flowrun::UsdDecimal(-4e-10, 2), "0.00");  // never "-0"
  EXPECT_EQ(flowrun::UsdDecimal(5e-10), "0.000000001");
  EXPECT_EQ(flowrun::UsdDecimal(12345.678901234), "12345.678901234");
  EXPECT_EQ(flowrun::UsdDecimal(1e21), "9200000000");  // clamped: no such spend is real
  EXPECT_EQ(flowrun::UsdDecimal(std::nan(""), 2), "0.00");
  EXPECT_EQ(flowrun::RoundUsd(std::nan("")), 0);
  EXPECT_EQ(flowrun::RoundUsd(-1.9050000000000002e-05), -1.905e-05);
  EXPECT_EQ(flowrun::RoundUsd(4e-10), 0);
}
