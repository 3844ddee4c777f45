// Ages, money, tables, -o json|yaml, the log cursor and exit codes.
#include <gtest/gtest.h>

#include "flowrun/plugin/exit_codes.h"
#include "flowrun/plugin/format.h"
#include "flowrun/plugin/logs.h"
#include "flowrun/plugin/output.h"
#include "flowrun/plugin/table.h"
#include "flowrun/rfc3339.h"

namespace flowrun::plugin {
namespace {

using nlohmann::json;
using std::chrono::seconds;

TEST(Format, AgesLikeKubectl) {
  EXPECT_EQ(FormatAge(seconds(-5)), "0s");
  EXPECT_EQ(FormatAge(seconds(45)), "45s");
  EXPECT_EQ(FormatAge(seconds(119)), "119s");
  EXPECT_EQ(FormatAge(seconds(125)), "2m5s");
  EXPECT_EQ(FormatAge(seconds(600)), "10m");
  EXPECT_EQ(FormatAge(seconds(3 * 3600 + 4 * 60)), "3h4m");
  EXPECT_EQ(FormatAge(seconds(30 * 3600)), "30h");
  EXPECT_EQ(FormatAge(seconds(5 * 86400)), "5d");
  EXPECT_EQ(FormatAge(seconds(800LL * 86400)), "2y");
  TimePoint now = *ParseTime("2026-12-03T12:00:00Z");
  EXPECT_EQ(AgeOf("2026-12-03T11:55:00Z", now), "5m");
  EXPECT_EQ(AgeOf("", now), "");
  EXPECT_EQ(AgeOf("yesterday", now), "<unknown>");
  EXPECT_EQ(DeadlineOf("2026-12-03T15:04:00Z", now), "in 3h4m");
  EXPECT_EQ(DeadlineOf("2026-12-03T11:50:00Z", now), "overdue by 10m");
  EXPECT_EQ(DeadlineOf("", now), "none");
  EXPECT_EQ(FormatMillis(812.0), "812ms");
  EXPECT_EQ(FormatMillis(1532.5), "1.5s");
  EXPECT_EQ(FormatMillis(nullptr), "-");
}

TEST(Format, MoneyFromDecimalTextOrNumbers) {
  EXPECT_EQ(FormatUsd("0.00001905"), "$0.000019");
  EXPECT_EQ(FormatUsd("0.0123"), "$0.012");
  EXPECT_EQ(FormatUsd("0.12"), "$0.12");
  EXPECT_EQ(FormatUsd("1.50"), "$1.50");
  EXPECT_EQ(FormatUsd("12.345"), "$12.35");  // rounded; the exact text stays in ExactUsd
  EXPECT_EQ(FormatUsd("0.00"), "$0");
  EXPECT_EQ(FormatUsd("-0.0077"), "-$0.0077");
  EXPECT_EQ(FormatUsd(1.9050000000000002e-05), "$0.000019");
  EXPECT_EQ(FormatUsd(nullptr), "-");
  EXPECT_EQ(ExactUsd("0.01230000"), "0.01230000");
  EXPECT_EQ(ExactUsd(1.9050000000000002e-05), "0.00001905");  // 9 decimals, float noise gone
  EXPECT_EQ(ExactUsd(2.5), "2.5");
  EXPECT_EQ(ExactUsd(nullptr), "");
  EXPECT_EQ(*ParseUsd("2.50"), 2.5);
  EXPECT_EQ(*ParseUsd("$3"), 3.0);
  EXPECT_FALSE(ParseUsd("-1").has_value());
  EXPECT_FALSE(ParseUsd("1.2.3").has_value());
  EXPECT_FALSE(ParseUsd("ten").has_value());
  EXPECT_FALSE(ParseUsd("").has_value());
}

TEST(Format, OneLineCutsAtCharacterBoundaries) {
  EXPECT_EQ(OneLine("a\nb", 10), "a b");
  EXPECT_EQ(OneLine("abcdefghij", 6), "abc...");
  EXPECT_EQ(OneLine("ééééé", 7), "éé...");  // 2 bytes each: 4 bytes + "..."
}

TEST(Table, PaddedColumnsUpperCaseHeadersWideColumns) {
  Table t({{"name"}, {"phase"}, {"job", true}});
  t.AddRow({"research-1", "Waiting", "research-1-a1"});
  t.AddRow({"é", "Running"});
  EXPECT_EQ(t.Render(false),
            "NAME         PHASE\n"
            "research-1   Waiting\n"
            "é            Running\n");
  EXPECT_EQ(t.Render(true),
            "NAME         PHASE     JOB\n"
            "research-1   Waiting   research-1-a1\n"
            "é            Running\n");
  EXPECT_EQ(Table({{"a"}}).Render(false), "");
  EXPECT_EQ(Table({{"a"}}).Render(false, true), "A\n");
}

TEST(Output, FormatsAndYamlQuotesAmbiguousStrings) {
  EXPECT_EQ(*ParseOutputFormat(""), OutputFormat::kTable);
  EXPECT_EQ(*ParseOutputFormat("wide"), OutputFormat::kWide);
  EXPECT_EQ(*ParseOutputFormat("json"), OutputFormat::kJson);
  EXPECT_EQ(*ParseOutputFormat("yaml"), OutputFormat::kYaml);
  EXPECT_FALSE(ParseOutputFormat("xml").ok());
  json j = {{"usd", "0.0123"}, {"ok", "true"}, {"n", 3}, {"b", false}, {"none", nullptr}, {"s", "plain"},
            {"list", {1, "2"}}, {"empty", ""}};
  std::string y = ToYamlText(j);
  EXPECT_NE(y.find("usd: \"0.0123\""), std::string::npos) << y;
  EXPECT_NE(y.find("ok: \"true\""), std::string::npos) << y;
  EXPECT_NE(y.find("n: 3"), std::string::npos) << y;
  EXPECT_NE(y.find("b: false"), std::string::npos) << y;
  EXPECT_NE(y.find("s: plain"), std::string::npos) << y;
  EXPECT_NE(y.find("empty: \"\""), std::string::npos) << y;
  EXPECT_EQ(json::parse(ToJsonText(j)), j);
}

TEST(LogCursor, HandsOutOnlyNewLinesAcrossOverlappingPolls) {
  LogCursor c;
  EXPECT_EQ(c.since(), "");
  std::string first =
      "2026-12-03T11:40:00.100000000Z starting\n"
      "2026-12-03T11:40:00.5Z same second\n";
  EXPECT_EQ(c.Take(first, false), "starting\nsame second\n");
  EXPECT_EQ(c.since(), "2026-12-03T11:40:00Z");
  // The next poll (sinceTime has second precision) repeats both, plus new lines.
  std::string second = first + "2026-12-03T11:40:00.5Z same time again\n2026-12-03T11:40:01Z next\n";
  EXPECT_EQ(c.Take(second, false), "same time again\nnext\n");
  EXPECT_EQ(c.Take(second, true), "");
  EXPECT_EQ(c.Take("2026-12-03T11:40:02Z x\nno timestamp here\n", true), "2026-12-03T11:40:02Z x\nno timestamp here\n");
  int64_t ns = 0;
  ASSERT_TRUE(ParseNanos("2026-12-03T11:40:00.000000001Z", &ns, nullptr));
  int64_t ns2 = 0;
  ASSERT_TRUE(ParseNanos("2026-12-03T11:40:00.00000001Z", &ns2, nullptr));
  EXPECT_EQ(ns2 - ns, 9);
  EXPECT_FALSE(ParseNanos("garbage", &ns, nullptr));
}

TEST(ExitCodes, StatusCodesMapToTheDocumentedCodes) {
  EXPECT_EQ(ExitCodeFor(Status::Ok()), 0);
  EXPECT_EQ(ExitCodeFor(NotFound("x")), kExitNotFound);
  EXPECT_EQ(ExitCodeFor(Status(StatusCode::kPermissionDenied, "x")), kExitForbidden);
  EXPECT_EQ(ExitCodeFor(Status(StatusCode::kUnauthenticated, "x")), kExitForbidden);
  EXPECT_EQ(ExitCodeFor(Unavailable("x")), kExitUnavailable);
  EXPECT_EQ(ExitCodeFor(FailedPrecondition("x")), kExitNotWaiting);
  EXPECT_EQ(ExitCodeFor(InvalidArgument("x")), kExitUsage);
  EXPECT_EQ(ExitCodeFor(Internal("x")), kExitError);
}

}  // namespace
}  // namespace flowrun::plugin
