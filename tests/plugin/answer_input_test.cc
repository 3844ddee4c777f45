// The answer from what a person types, driven by the wait's schema:
// conversion by type, paths, files, prompts, and validation with the
// controller's validator.
#include <sstream>

#include <gtest/gtest.h>

#include "flowrun/plugin/answer_input.h"

namespace flowrun::plugin {
namespace {

using nlohmann::json;

const json kReview = {
    {"type", "object"},
    {"properties",
     {{"approve", {{"type", "boolean"}}},
      {"score", {{"type", "integer"}, {"minimum", 1}, {"maximum", 5}}},
      {"ratio", {{"type", "number"}}},
      {"comment", {{"type", "string"}, {"maxLength", 10}}},
      {"tags", {{"type", "array"}, {"items", {{"type", "string"}}}}},
      {"level", {{"enum", {"low", "high"}}}},
      {"meta", {{"type", "object"}, {"properties", {{"owner", {{"type", "string"}}}, {"n", {{"type", "integer"}}}}}}}}},
    {"required", {"approve", "score"}},
    {"additionalProperties", false}};

StatusOr<json> Build(const json& schema, std::vector<std::string> words, std::vector<std::string> sets = {},
                     std::optional<json> file = std::nullopt) {
  return BuildAnswer(schema, "review", {std::move(words), std::move(sets), std::move(file)});
}

TEST(ConvertValue, BooleansAcceptCommonSpellings) {
  json b = {{"type", "boolean"}};
  for (const char* t : {"true", "TRUE", "yes", "y", "on"}) EXPECT_EQ(*ConvertValue(t, b, "x"), json(true)) << t;
  for (const char* t : {"false", "No", "n", "off"}) EXPECT_EQ(*ConvertValue(t, b, "x"), json(false)) << t;
  auto bad = ConvertValue("maybe", b, "approve");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(), "approve: 'maybe' is not a boolean (true/false, yes/no)");
}

TEST(ConvertValue, IntegersAndNumbers) {
  json i = {{"type", "integer"}};
  EXPECT_EQ(*ConvertValue("42", i, ""), json(42));
  EXPECT_EQ(*ConvertValue("-7", i, ""), json(-7));
  EXPECT_EQ(*ConvertValue("3.0", i, ""), json(3));  // an integer in JSON Schema
  EXPECT_FALSE(ConvertValue("3.5", i, "").ok());
  EXPECT_FALSE(ConvertValue("12abc", i, "").ok());
  EXPECT_FALSE(ConvertValue("99999999999999999999999", i, "").ok());
  json n = {{"type", "number"}};
  EXPECT_EQ(*ConvertValue("2.5", n, ""), json(2.5));
  EXPECT_EQ(*ConvertValue("1e3", n, ""), json(1000.0));
  EXPECT_FALSE(ConvertValue("inf", n, "").ok());
  EXPECT_FALSE(ConvertValue("nan", n, "").ok());
  EXPECT_FALSE(ConvertValue("0x10", n, "").ok());
  EXPECT_FALSE(ConvertValue("", n, "").ok());
}

TEST(ConvertValue, StringsAreVerbatim) {
  json s = {{"type", "string"}};
  EXPECT_EQ(*ConvertValue("true", s, ""), json("true"));
  EXPECT_EQ(*ConvertValue("42", s, ""), json("42"));
  EXPECT_EQ(*ConvertValue("", s, ""), json(""));
  EXPECT_EQ(*ConvertValue("a=b, c", s, ""), json("a=b, c"));
}

TEST(ConvertValue, TypeListsTryTheNarrowestFirst) {
  json s = {{"type", {"string", "integer", "null"}}};
  EXPECT_EQ(*ConvertValue("5", s, ""), json(5));
  EXPECT_EQ(*ConvertValue("null", s, ""), json(nullptr));
  EXPECT_EQ(*ConvertValue("five", s, ""), json("five"));
  json any = {{"anyOf", {{{"type", "boolean"}}, {{"type", "string"}}}}};
  EXPECT_EQ(*ConvertValue("yes", any, ""), json(true));
  EXPECT_EQ(*ConvertValue("perhaps", any, ""), json("perhaps"));
  auto bad = ConvertValue("x", {{"type", {"integer", "boolean"}}}, "v");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(), "v: 'x' is not a boolean (true/false, yes/no) or an integer");
}

TEST(ConvertValue, EnumsNameTheirValues) {
  json e = {{"enum", {"low", "high", 3, true}}};
  EXPECT_EQ(*ConvertValue("high", e, ""), json("high"));
  EXPECT_EQ(*ConvertValue("3", e, ""), json(3));
  EXPECT_EQ(*ConvertValue("yes", e, ""), json(true));
  auto bad = ConvertValue("medium", e, "level");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(), "level: 'medium' is not one of: low, high, 3, true");
  EXPECT_EQ(*ConvertValue("x", {{"const", "x"}}, ""), json("x"));
}

TEST(ConvertValue, ArraysFromJsonOrCommas) {
  json a = {{"type", "array"}, {"items", {{"type", "integer"}}}};
  EXPECT_EQ(*ConvertValue("[1,2]", a, ""), json({1, 2}));
  EXPECT_EQ(*ConvertValue("1,2,3", a, ""), json({1, 2, 3}));
  EXPECT_EQ(*ConvertValue("", a, ""), json::array());
  auto bad = ConvertValue("1,x", a, "ids");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(), "ids[1]: 'x' is not an integer");
}

TEST(ConvertValue, ObjectsAreJsonAndUntypedTextIsJsonOrString) {
  json o = {{"type", "object"}};
  EXPECT_EQ(*ConvertValue(R"({"a":1})", o, ""), json({{"a", 1}}));
  EXPECT_FALSE(ConvertValue("[1]", o, "").ok());
  EXPECT_EQ(*ConvertValue("true", json(nullptr), ""), json(true));
  EXPECT_EQ(*ConvertValue("{\"a\":1}", json::object(), ""), json({{"a", 1}}));
  EXPECT_EQ(*ConvertValue("hello world", json::object(), ""), json("hello world"));
}

TEST(SplitPath, DotsBracketsAndEscapes) {
  EXPECT_EQ(*SplitPath("a.b.c"), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(*SplitPath("tags[0]"), (std::vector<std::string>{"tags", "0"}));
  EXPECT_EQ(*SplitPath("a[1].b"), (std::vector<std::string>{"a", "1", "b"}));
  EXPECT_EQ(*SplitPath("a\\.b"), (std::vector<std::string>{"a.b"}));
  EXPECT_FALSE(SplitPath("a..b").ok());
  EXPECT_FALSE(SplitPath("a.").ok());
  EXPECT_FALSE(SplitPath("a[x]").ok());
  EXPECT_FALSE(SplitPath("a[1").ok());
  EXPECT_FALSE(SplitPath("").ok());
}

TEST(SchemaAt, FollowsPropertiesItemsAndAdditionalProperties) {
  EXPECT_EQ(SchemaAt(kReview, {"score"})["type"], "integer");
  EXPECT_EQ(SchemaAt(kReview, {"meta", "owner"})["type"], "string");
  EXPECT_EQ(SchemaAt(kReview, {"tags", "3"})["type"], "string");
  EXPECT_TRUE(SchemaAt(kReview, {"nope"}).is_null());
  json map = {{"type", "object"}, {"additionalProperties", {{"type", "integer"}}}};
  EXPECT_EQ(SchemaAt(map, {"anything"})["type"], "integer");
  json tuple = {{"type", "array"}, {"items", {{{"type", "string"}}, {{"type", "integer"}}}}};
  EXPECT_EQ(SchemaAt(tuple, {"1"})["type"], "integer");
}

TEST(BuildAnswer, KeyValueWordsAreConvertedPerProperty) {
  auto a = Build(kReview, {"approve=yes", "score=4", "comment=ok", "tags=a,b", "level=high", "ratio=0.5"});
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(*a, json({{"approve", true}, {"score", 4}, {"comment", "ok"}, {"tags", {"a", "b"}}, {"level", "high"},
                      {"ratio", 0.5}}));
}

TEST(BuildAnswer, SetPathsBuildNestedObjectsAndArrays) {
  auto a = Build(kReview, {}, {"approve=false", "score=2", "meta.owner=alice", "meta.n=3", "tags[1]=b", "tags[0]=a"});
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(*a, json({{"approve", false}, {"score", 2}, {"meta", {{"owner", "alice"}, {"n", 3}}}, {"tags", {"a", "b"}}}));
  auto bad = Build(kReview, {}, {"score=2", "score.x=1"});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("cannot set 'x' inside 2"), std::string::npos);
}

TEST(BuildAnswer, FileFirstThenWordsOnTop) {
  auto a = Build(kReview, {"score=5"}, {}, json({{"approve", true}, {"score", 1}}));
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(*a, json({{"approve", true}, {"score", 5}}));
  auto whole = Build(kReview, {}, {}, json({{"approve", true}, {"score", 3}}));
  EXPECT_EQ(*whole, json({{"approve", true}, {"score", 3}}));
}

TEST(BuildAnswer, ScalarWaitsTakeABareValueOrTheWaitsName) {
  json b = {{"type", "boolean"}};
  EXPECT_EQ(*BuildAnswer(b, "proceed", {{"true"}, {}, {}}), json(true));
  EXPECT_EQ(*BuildAnswer(b, "proceed", {{"proceed=no"}, {}, {}}), json(false));
  auto wrong = BuildAnswer(b, "proceed", {{"approve=true"}, {}, {}});
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.status().message(),
            "'approve=…': the wait 'proceed' asks for boolean, which has no property 'approve'; answer with "
            "'proceed=<value>' or the bare value");
  EXPECT_EQ(*BuildAnswer({{"type", "string"}}, "title", {{"Final report"}, {}, {}}), json("Final report"));
  EXPECT_EQ(*BuildAnswer({{"type", "string"}}, "title", {{"title=a=b"}, {}, {}}), json("a=b"));
}

TEST(BuildAnswer, ObjectWaitsRefuseBareValuesAndNoInput) {
  auto bare = Build(kReview, {"true"});
  ASSERT_FALSE(bare.ok());
  EXPECT_NE(bare.status().message().find("give its properties as key=value"), std::string::npos);
  auto none = Build(kReview, {});
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.status().message().find("no answer given"), std::string::npos);
  EXPECT_FALSE(Build(kReview, {"=x"}).ok());
  // The wait's name as the key takes a whole JSON object.
  EXPECT_EQ(*Build(kReview, {R"(review={"approve":true,"score":1})"}), json({{"approve", true}, {"score", 1}}));
}

TEST(BuildAnswer, DefaultsFillLeftOutProperties) {
  json s = {{"type", "object"},
            {"properties", {{"ok", {{"type", "boolean"}}}, {"note", {{"type", "string"}, {"default", "none"}}}}}};
  EXPECT_EQ(*BuildAnswer(s, "w", {{"ok=true"}, {}, {}}), json({{"ok", true}, {"note", "none"}}));
}

TEST(ValidateAnswer, ListsTheSchemasReasonsOnePerLine) {
  EXPECT_TRUE(ValidateAnswer(kReview, {{"approve", true}, {"score", 3}}).ok());
  Status s = ValidateAnswer(kReview, {{"approve", true}, {"score", 9}, {"comment", "far too long a comment"}});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("  /score: "), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("  /comment: "), std::string::npos) << s.message();
  EXPECT_NE(s.message().find('\n'), std::string::npos);
  Status missing = ValidateAnswer(kReview, {{"approve", true}});
  EXPECT_FALSE(missing.ok());
  Status extra = ValidateAnswer(kReview, {{"approve", true}, {"score", 1}, {"extra", 1}});
  EXPECT_FALSE(extra.ok());
  EXPECT_TRUE(ValidateAnswer(nullptr, json("anything")).ok());
}

TEST(DescribeSchema, SaysWhatIsAsked) {
  EXPECT_EQ(DescribeSchema({{"type", "boolean"}}), "boolean");
  EXPECT_EQ(DescribeSchema({{"enum", {"a", "b"}}}), "one of: a, b");
  EXPECT_EQ(DescribeSchema(json::object()), "any JSON value");
  EXPECT_EQ(DescribeSchema({{"type", "array"}, {"items", {{"type", "string"}}}}), "array of string");
  json s = {{"type", "object"},
            {"properties", {{"approve", {{"type", "boolean"}}}, {"comment", {{"type", "string"}}}}},
            {"required", {"approve"}}};
  EXPECT_EQ(DescribeSchema(s), "object {approve: boolean (required), comment: string}");
}

TEST(PromptAnswer, AsksPerPropertyRetriesAndTakesDefaults) {
  json s = {{"type", "object"},
            {"properties",
             {{"approve", {{"type", "boolean"}}},
              {"score", {{"type", "integer"}}},
              {"note", {{"type", "string"}, {"default", "n/a"}}},
              {"extra", {{"type", "string"}}}}},
            {"required", {"score", "approve"}}};
  // Required first, in "required" order: score (blank → asked again, then "x" → asked again), approve, then
  // the optional ones alphabetically: extra (skipped), note (default).
  std::istringstream in("\nx\n4\nyes\n\n\n");
  std::ostringstream out;
  auto a = PromptAnswer(s, "review", "Review it", in, out);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(*a, json({{"score", 4}, {"approve", true}, {"note", "n/a"}}));
  EXPECT_NE(out.str().find("Question (review): Review it"), std::string::npos);
  EXPECT_NE(out.str().find("'score' is required"), std::string::npos);
  EXPECT_NE(out.str().find("score: 'x' is not an integer"), std::string::npos);
  EXPECT_NE(out.str().find("note (string, default \"n/a\")"), std::string::npos);
}

TEST(PromptAnswer, ScalarOnceAndEndOfInputIsAnError) {
  std::istringstream in("no\n");
  std::ostringstream out;
  EXPECT_EQ(*PromptAnswer({{"type", "boolean"}}, "proceed", "Go?", in, out), json(false));
  std::istringstream empty("");
  EXPECT_FALSE(PromptAnswer({{"type", "boolean"}}, "proceed", "Go?", empty, out).ok());
}

}  // namespace
}  // namespace flowrun::plugin
