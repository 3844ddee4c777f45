// Unit tests of the runtime library's pure pieces: no database, no network.
//
//   ReadRunEnvironment, RedactConnectionString, PriceTable,
//   ValidateAgainstSchema, EncodeTerminationMessage / DecodeTerminationMessage,
//   ExitCodeFor, CheckpointFingerprint, Flow::DefaultSchemaFor.
#include <gtest/gtest.h>
#include <unistd.h>

#include <csignal>
#include <cstdint>
#include <cstdio>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "support/expect_contains.h"
#include "flowrun/environment.h"
#include "flowrun/flow.h"
#include "flowrun/outcome.h"
#include "flowrun/price_table.h"
#include "flowrun/schema_validator.h"
#include "flowrun/status.h"

namespace flowrun {
namespace {

using json = nlohmann::json;


// ---------------------------------------------------------------------------
// ReadRunEnvironment

using EnvMap = std::map<std::string, std::string>;

StatusOr<RunEnvironment> ReadFrom(const EnvMap& vars) {
  return ReadRunEnvironment([&](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  });
}

// Reads `vars` plus a valid FLOWRUN_RUN_UID, overriding `name` with `value`,
// and expects InvalidArgument naming `name`.
void ExpectRejected(const std::string& name, const std::string& value) {
  EnvMap vars = {{"FLOWRUN_RUN_UID", "uid-1"}};
  vars[name] = value;
  auto env = ReadFrom(vars);
  ASSERT_FALSE(env.ok()) << name << "=" << value << " was accepted";
  EXPECT_EQ(env.status().code(), StatusCode::kInvalidArgument) << env.status();
  EXPECT_CONTAINS(env.status().message(), name) << name << "=" << value;
}

TEST(ReadRunEnvironmentTest, DefaultsWithOnlyTheUid) {
  auto env = ReadFrom({{"FLOWRUN_RUN_UID", "6d1f0c2e"}});
  ASSERT_TRUE(env.ok()) << env.status();
  EXPECT_EQ(env->run.uid, "6d1f0c2e");
  EXPECT_EQ(env->run.name, "6d1f0c2e");  // defaults to the uid
  EXPECT_EQ(env->run.namespace_, "default");
  EXPECT_EQ(env->run.flow, "default");
  EXPECT_EQ(env->attempt, 1);
  EXPECT_EQ(env->parameters, json::object());
  EXPECT_EQ(env->database_url, "");
  EXPECT_EQ(env->price_table_path, "");
  EXPECT_EQ(env->termination_message_path, "/dev/termination-log");
  EXPECT_FALSE(env->initial_budget_usd.has_value());
  EXPECT_EQ(env->max_output_bytes, size_t{4} << 20);
  EXPECT_EQ(env->on_divergence, DivergencePolicy::kFail);
  EXPECT_FALSE(env->default_wait_timeout.has_value());
  EXPECT_EQ(env->default_on_timeout, OnTimeout::kFail);
  EXPECT_EQ(env->db_connect_attempts, 5);
  EXPECT_EQ(env->db_retry_initial_backoff, std::chrono::milliseconds(200));
  EXPECT_EQ(env->llm_base_url, "https://api.openai.com/v1");
  EXPECT_EQ(env->llm_api_key, "");
  EXPECT_EQ(env->llm_model, "gpt-4o-mini");
}

TEST(ReadRunEnvironmentTest, EveryVariableIsParsed) {
  auto env = ReadFrom({
      {"FLOWRUN_RUN_UID", "uid-42"},
      {"FLOWRUN_RUN_NAME", "nightly-research"},
      {"FLOWRUN_RUN_NAMESPACE", "team-a"},
      {"FLOWRUN_FLOW", "research"},
      {"FLOWRUN_ATTEMPT", "3"},
      {"FLOWRUN_PARAMETERS", R"({"topic":"llamas","depth":2,"tags":["a","b"]})"},
      {"FLOWRUN_DATABASE_URL", "postgresql://u:pw@db:5432/flowrun"},
      {"FLOWRUN_PRICE_TABLE", "/etc/flowrun/prices.yaml"},
      {"FLOWRUN_TERMINATION_MESSAGE_PATH", "/tmp/term"},
      {"FLOWRUN_BUDGET_USD", "2.5"},
      {"FLOWRUN_MAX_OUTPUT_BYTES", "1024"},
      {"FLOWRUN_ON_DIVERGENCE", "rerun"},
      {"FLOWRUN_WAIT_TIMEOUT_SECONDS", "3600"},
      {"FLOWRUN_WAIT_ON_TIMEOUT", "default"},
      {"FLOWRUN_DB_CONNECT_ATTEMPTS", "9"},
      {"FLOWRUN_DB_RETRY_BACKOFF_MS", "0"},
      {"OPENAI_BASE_URL", "http://127.0.0.1:8080/v1/"},
      {"OPENAI_API_KEY", "sk-test"},
      {"FLOWRUN_LLM_MODEL", "claude-sonnet-4"},
  });
  ASSERT_TRUE(env.ok()) << env.status();
  EXPECT_EQ(env->run.uid, "uid-42");
  EXPECT_EQ(env->run.name, "nightly-research");
  EXPECT_EQ(env->run.namespace_, "team-a");
  EXPECT_EQ(env->run.flow, "research");
  EXPECT_EQ(env->attempt, 3);
  EXPECT_EQ(env->parameters, json::parse(R"({"topic":"llamas","depth":2,"tags":["a","b"]})"));
  EXPECT_EQ(env->database_url, "postgresql://u:pw@db:5432/flowrun");
  EXPECT_EQ(env->price_table_path, "/etc/flowrun/prices.yaml");
  EXPECT_EQ(env->termination_message_path, "/tmp/term");
  ASSERT_TRUE(env->initial_budget_usd.has_value());
  EXPECT_DOUBLE_EQ(*env->initial_budget_usd, 2.5);
  EXPECT_EQ(env->max_output_bytes, 1024u);
  EXPECT_EQ(env->on_divergence, DivergencePolicy::kRerun);
  ASSERT_TRUE(env->default_wait_timeout.has_value());
  EXPECT_EQ(*env->default_wait_timeout, std::chrono::seconds(3600));
  EXPECT_EQ(env->default_on_timeout, OnTimeout::kUseDefault);
  EXPECT_EQ(env->db_connect_attempts, 9);
  EXPECT_EQ(env->db_retry_initial_backoff, std::chrono::milliseconds(0));
  EXPECT_EQ(env->llm_base_url, "http://127.0.0.1:8080/v1");  // trailing '/' dropped
  EXPECT_EQ(env->llm_api_key, "sk-test");
  EXPECT_EQ(env->llm_model, "claude-sonnet-4");
}

TEST(ReadRunEnvironmentTest, ZeroBudgetAndFailPoliciesAreAccepted) {
  auto env = ReadFrom({{"FLOWRUN_RUN_UID", "u"},
                       {"FLOWRUN_BUDGET_USD", "0"},
                       {"FLOWRUN_ON_DIVERGENCE", "fail"},
                       {"FLOWRUN_WAIT_ON_TIMEOUT", "fail"},
                       {"OPENAI_BASE_URL", "https://llm.example.com"}});
  ASSERT_TRUE(env.ok()) << env.status();
  ASSERT_TRUE(env->initial_budget_usd.has_value());
  EXPECT_EQ(*env->initial_budget_usd, 0.0);
  EXPECT_EQ(env->on_divergence, DivergencePolicy::kFail);
  EXPECT_EQ(env->default_on_timeout, OnTimeout::kFail);
  EXPECT_EQ(env->llm_base_url, "https://llm.example.com");
}

TEST(ReadRunEnvironmentTest, MissingUidIsRejected) {
  auto env = ReadFrom({{"FLOWRUN_ATTEMPT", "1"}});
  ASSERT_FALSE(env.ok());
  EXPECT_EQ(env.status().code(), StatusCode::kInvalidArgument);
  EXPECT_CONTAINS(env.status().message(), "FLOWRUN_RUN_UID");
}

TEST(ReadRunEnvironmentTest, EmptyUidCountsAsMissing) {
  auto env = ReadFrom({{"FLOWRUN_RUN_UID", ""}});
  ASSERT_FALSE(env.ok());
  EXPECT_EQ(env.status().code(), StatusCode::kInvalidArgument);
  EXPECT_CONTAINS(env.status().message(), "FLOWRUN_RUN_UID");
}

TEST(ReadRunEnvironmentTest, OverlongUidIsRejected) {
  auto env = ReadFrom({{"FLOWRUN_RUN_UID", std::string(129, 'u')}});
  ASSERT_FALSE(env.ok());
  EXPECT_EQ(env.status().code(), StatusCode::kInvalidArgument);
  EXPECT_CONTAINS(env.status().message(), "FLOWRUN_RUN_UID");
  EXPECT_TRUE(ReadFrom({{"FLOWRUN_RUN_UID", std::string(128, 'u')}}).ok());
}

TEST(ReadRunEnvironmentTest, MalformedAttemptIsRejected) {
  ExpectRejected("FLOWRUN_ATTEMPT", "0");
  ExpectRejected("FLOWRUN_ATTEMPT", "-1");
  ExpectRejected("FLOWRUN_ATTEMPT", "abc");
  ExpectRejected("FLOWRUN_ATTEMPT", "2x");
  ExpectRejected("FLOWRUN_ATTEMPT", "1.5");
}

// The contract: attempt >= 1, anything malformed is InvalidArgument. A value
// beyond int's range must not wrap into a negative (or different) attempt.
TEST(ReadRunEnvironmentTest, AttemptOutOfIntRangeIsRejected) {
  for (const std::string v : {"2147483648", "4294967297", "99999999999"}) {
    auto env = ReadFrom({{"FLOWRUN_RUN_UID", "u"}, {"FLOWRUN_ATTEMPT", v}});
    if (env.ok()) {
      ADD_FAILURE() << "FLOWRUN_ATTEMPT=" << v << " was accepted as attempt " << env->attempt;
    } else {
      EXPECT_EQ(env.status().code(), StatusCode::kInvalidArgument);
      EXPECT_CONTAINS(env.status().message(), "FLOWRUN_ATTEMPT");
    }
  }
}

TEST(ReadRunEnvironmentTest, MalformedParametersAreRejected) {
  ExpectRejected("FLOWRUN_PARAMETERS", "{not json");
  ExpectRejected("FLOWRUN_PARAMETERS", "[1,2,3]");
  ExpectRejected("FLOWRUN_PARAMETERS", "\"a string\"");
  ExpectRejected("FLOWRUN_PARAMETERS", "42");
  auto bad_json = ReadFrom({{"FLOWRUN_RUN_UID", "u"}, {"FLOWRUN_PARAMETERS", "{oops"}});
  ASSERT_FALSE(bad_json.ok());
  EXPECT_CONTAINS(bad_json.status().message(), "JSON");
  auto not_object = ReadFrom({{"FLOWRUN_RUN_UID", "u"}, {"FLOWRUN_PARAMETERS", "[]"}});
  ASSERT_FALSE(not_object.ok());
  EXPECT_CONTAINS(not_object.status().message(), "object");
}

TEST(ReadRunEnvironmentTest, MalformedBudgetIsRejected) {
  ExpectRejected("FLOWRUN_BUDGET_USD", "-1");
  ExpectRejected("FLOWRUN_BUDGET_USD", "-0.01");
  ExpectRejected("FLOWRUN_BUDGET_USD", "ten");
  ExpectRejected("FLOWRUN_BUDGET_USD", "5usd");
  ExpectRejected("FLOWRUN_BUDGET_USD", "nan");
}

TEST(ReadRunEnvironmentTest, MalformedPoliciesAreRejected) {
  ExpectRejected("FLOWRUN_ON_DIVERGENCE", "x");
  ExpectRejected("FLOWRUN_ON_DIVERGENCE", "FAIL");
  ExpectRejected("FLOWRUN_WAIT_ON_TIMEOUT", "x");
  ExpectRejected("FLOWRUN_WAIT_ON_TIMEOUT", "use_default");
}

TEST(ReadRunEnvironmentTest, MalformedNumbersAreRejected) {
  ExpectRejected("FLOWRUN_MAX_OUTPUT_BYTES", "0");
  ExpectRejected("FLOWRUN_MAX_OUTPUT_BYTES", "big");
  ExpectRejected("FLOWRUN_WAIT_TIMEOUT_SECONDS", "0");
  ExpectRejected("FLOWRUN_WAIT_TIMEOUT_SECONDS", "1h");
  ExpectRejected("FLOWRUN_DB_CONNECT_ATTEMPTS", "0");
  ExpectRejected("FLOWRUN_DB_CONNECT_ATTEMPTS", "many");
  ExpectRejected("FLOWRUN_DB_RETRY_BACKOFF_MS", "-5");
}

TEST(ReadRunEnvironmentTest, BaseUrlWithoutSchemeIsRejected) {
  ExpectRejected("OPENAI_BASE_URL", "api.openai.com/v1");
  ExpectRejected("OPENAI_BASE_URL", "ftp://api.openai.com/v1");
  ExpectRejected("OPENAI_BASE_URL", "localhost:8080");
}

TEST(ReadRunEnvironmentTest, ErrorsNeverEchoTheApiKeyOrDatabaseUrl) {
  auto env = ReadFrom({{"FLOWRUN_RUN_UID", "u"},
                       {"OPENAI_API_KEY", "sk-very-secret"},
                       {"FLOWRUN_DATABASE_URL", "postgresql://u:db-secret@h/db"},
                       {"FLOWRUN_ATTEMPT", "zero"}});
  ASSERT_FALSE(env.ok());
  EXPECT_NOT_CONTAINS(env.status().message(), "sk-very-secret");
  EXPECT_NOT_CONTAINS(env.status().message(), "db-secret");
}

TEST(OnTimeoutTest, NamesRoundTrip) {
  EXPECT_EQ(OnTimeoutName(OnTimeout::kFail), "fail");
  EXPECT_EQ(OnTimeoutName(OnTimeout::kUseDefault), "default");
  EXPECT_EQ(ParseOnTimeout("fail"), OnTimeout::kFail);
  EXPECT_EQ(ParseOnTimeout("default"), OnTimeout::kUseDefault);
  EXPECT_FALSE(ParseOnTimeout("").has_value());
  EXPECT_FALSE(ParseOnTimeout("Default").has_value());
}

// ---------------------------------------------------------------------------
// RedactConnectionString

void ExpectRedacted(const std::string& conninfo, const std::string& secret) {
  std::string redacted = RedactConnectionString(conninfo);
  EXPECT_NOT_CONTAINS(redacted, secret) << "input: " << conninfo;
  EXPECT_CONTAINS(redacted, "***") << "input: " << conninfo;
}

TEST(RedactConnectionStringTest, KeywordFormQuotedPasswordWithSpace) {
  std::string in = "host=db port=5432 user=app password='se cret' dbname=flowrun";
  ExpectRedacted(in, "se cret");
  ExpectRedacted(in, "cret");
  std::string out = RedactConnectionString(in);
  EXPECT_CONTAINS(out, "host=db");
  EXPECT_CONTAINS(out, "dbname=flowrun");
  EXPECT_CONTAINS(out, "user=app");
}

TEST(RedactConnectionStringTest, KeywordFormPlainPassword) {
  std::string out = RedactConnectionString("host=db password=x user=app");
  EXPECT_EQ(out, "host=db password=*** user=app");
  ExpectRedacted("password=hunter2", "hunter2");
  ExpectRedacted("host=db password = spaced-out user=u", "spaced-out");
  ExpectRedacted("host=db password='it\\'s' user=u", "it\\'s");
  ExpectRedacted("host=db password='it\\'s' user=u", "s' user");
}

TEST(RedactConnectionStringTest, UriPassword) {
  std::string out = RedactConnectionString("postgresql://u:pw@h/db");
  EXPECT_NOT_CONTAINS(out, ":pw@");
  EXPECT_CONTAINS(out, "u:***@h/db");
  ExpectRedacted("postgres://admin:Sup3rS3cret@db.example.com:5432/flowrun?sslmode=require", "Sup3rS3cret");
}

TEST(RedactConnectionStringTest, UriQueryPassword) {
  std::string out = RedactConnectionString("postgresql://h/db?user=u&password=topsecret&sslmode=disable");
  EXPECT_NOT_CONTAINS(out, "topsecret");
  EXPECT_CONTAINS(out, "sslmode=disable");
  EXPECT_CONTAINS(out, "user=u");
}

TEST(RedactConnectionStringTest, StringsWithoutPasswordAreUnchanged) {
  EXPECT_EQ(RedactConnectionString("host=127.0.0.1 port=5432 user=flowrun dbname=x"),
            "host=127.0.0.1 port=5432 user=flowrun dbname=x");
  EXPECT_EQ(RedactConnectionString("postgresql://h:5432/db"), "postgresql://h:5432/db");
  EXPECT_EQ(RedactConnectionString(""), "");
}

// In the keyword form '&' is an ordinary character of an unquoted value (it
// separates parameters only in a URI's query string), so a generated password
// such as "s3&cr3t" must be hidden entirely.
TEST(RedactConnectionStringTest, KeywordFormPasswordWithAmpersand) {
  ExpectRedacted("host=db password=s3&cr3t user=app", "cr3t");
}

// ---------------------------------------------------------------------------
// PriceTable

constexpr char kPrices[] = R"(
models:
  gpt-4o-mini: {input: 0.15, output: 0.60, cached_input: 0.075}
  claude-sonnet-4: {input: 3.00, output: 15.00}
  "gpt-4o*": {input: 2.50, output: 10.00}
  "gpt-*": {input: 1.00, output: 2.00}
  "*": {input: 100, output: 100}
)";

TEST(PriceTableTest, ParsesEveryModel) {
  auto t = PriceTable::Parse(kPrices, "prices.yaml");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->size(), 5u);
  auto mini = t->Find("gpt-4o-mini");
  ASSERT_TRUE(mini.has_value());
  EXPECT_EQ(mini->first, "gpt-4o-mini");
  EXPECT_DOUBLE_EQ(mini->second.input_per_million, 0.15);
  EXPECT_DOUBLE_EQ(mini->second.output_per_million, 0.60);
  EXPECT_DOUBLE_EQ(mini->second.cached_input_per_million, 0.075);
  auto sonnet = t->Find("claude-sonnet-4");
  ASSERT_TRUE(sonnet.has_value());
  // cached_input defaults to input.
  EXPECT_DOUBLE_EQ(sonnet->second.cached_input_per_million, 3.00);
}

TEST(PriceTableTest, PricesInputOutputAndCachedTokens) {
  auto t = PriceTable::Parse(kPrices, "prices.yaml");
  ASSERT_TRUE(t.ok()) << t.status();
  LlmCall call;
  call.model = "gpt-4o-mini";
  call.input_tokens = 1'000'000;
  call.output_tokens = 2'000'000;
  call.cached_tokens = 400'000;  // part of the input
  PricedLlmCall p = t->Price(call);
  ASSERT_TRUE(p.cost_usd.has_value());
  // 600k uncached input at 0.15 + 400k cached at 0.075 + 2M output at 0.60
  EXPECT_NEAR(*p.cost_usd, 0.6 * 0.15 + 0.4 * 0.075 + 2 * 0.60, 1e-12);
  EXPECT_EQ(p.price_source, "price-table:gpt-4o-mini");
  EXPECT_EQ(p.call.model, "gpt-4o-mini");
  EXPECT_EQ(p.call.input_tokens, 1'000'000);

  LlmCall small{"claude-sonnet-4", 1000, 500, 0, std::chrono::milliseconds(10), std::nullopt};
  PricedLlmCall ps = t->Price(small);
  ASSERT_TRUE(ps.cost_usd.has_value());
  EXPECT_NEAR(*ps.cost_usd, (1000 * 3.0 + 500 * 15.0) / 1e6, 1e-15);
}

TEST(PriceTableTest, CachedTokensNeverExceedInput) {
  auto t = PriceTable::Parse(kPrices, "prices.yaml");
  ASSERT_TRUE(t.ok());
  LlmCall call{"gpt-4o-mini", 100, 0, 1000, {}, std::nullopt};
  auto p = t->Price(call);
  ASSERT_TRUE(p.cost_usd.has_value());
  EXPECT_NEAR(*p.cost_usd, 100 * 0.075 / 1e6, 1e-15);
  EXPECT_GE(*p.cost_usd, 0);
}

TEST(PriceTableTest, PrefixPatternsLongestWins) {
  auto t = PriceTable::Parse(kPrices, "prices.yaml");
  ASSERT_TRUE(t.ok());
  auto a = t->Find("gpt-4o-2024-08-06");
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->first, "gpt-4o*");
  auto b = t->Find("gpt-3.5-turbo");
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->first, "gpt-*");
  auto c = t->Find("llama-3");
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->first, "*");
  // An exact entry beats any pattern.
  EXPECT_EQ(t->Find("gpt-4o-mini")->first, "gpt-4o-mini");

  LlmCall call{"gpt-4o-2024-08-06", 1'000'000, 0, 0, {}, std::nullopt};
  auto p = t->Price(call);
  ASSERT_TRUE(p.cost_usd.has_value());
  EXPECT_NEAR(*p.cost_usd, 2.50, 1e-12);
  EXPECT_EQ(p.price_source, "price-table:gpt-4o*");
}

TEST(PriceTableTest, ReportedCostWins) {
  auto t = PriceTable::Parse(kPrices, "prices.yaml");
  ASSERT_TRUE(t.ok());
  LlmCall call{"gpt-4o-mini", 1'000'000, 1'000'000, 0, {}, 0.0123};
  auto p = t->Price(call);
  ASSERT_TRUE(p.cost_usd.has_value());
  EXPECT_DOUBLE_EQ(*p.cost_usd, 0.0123);
  EXPECT_EQ(p.price_source, "reported");
  // A reported zero is a known zero, not an unknown cost.
  LlmCall free_call{"local-model", 10, 10, 0, {}, 0.0};
  auto pf = PriceTable().Price(free_call);
  ASSERT_TRUE(pf.cost_usd.has_value());
  EXPECT_EQ(*pf.cost_usd, 0.0);
  EXPECT_EQ(pf.price_source, "reported");
}

TEST(PriceTableTest, UnknownModelHasUnknownCost) {
  auto t = PriceTable::Parse("models:\n  gpt-4o-mini: {input: 0.15, output: 0.6}\n", "p.yaml");
  ASSERT_TRUE(t.ok()) << t.status();
  LlmCall call{"mystery-model", 1000, 1000, 0, {}, std::nullopt};
  auto p = t->Price(call);
  EXPECT_FALSE(p.cost_usd.has_value());
  EXPECT_EQ(p.price_source, "unknown");
  EXPECT_FALSE(t->Find("mystery-model").has_value());
  // The empty table knows nothing.
  PriceTable empty;
  EXPECT_EQ(empty.size(), 0u);
  auto pe = empty.Price(LlmCall{"gpt-4o-mini", 1, 1, 0, {}, std::nullopt});
  EXPECT_FALSE(pe.cost_usd.has_value());
  EXPECT_EQ(pe.price_source, "unknown");
}

void ExpectTableRejected(const std::string& yaml, const std::string& expected_in_message) {
  auto t = PriceTable::Parse(yaml, "bad.yaml");
  ASSERT_FALSE(t.ok()) << "accepted:\n" << yaml;
  EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument);
  EXPECT_CONTAINS(t.status().message(), "bad.yaml") << t.status();
  EXPECT_CONTAINS(t.status().message(), expected_in_message) << t.status();
}

TEST(PriceTableTest, MalformedTablesAreRejectedWithClearMessages) {
  ExpectTableRejected("models: [unclosed", "does not parse");
  ExpectTableRejected("models:\n  a: {input: 1, output: 2\n", "does not parse");
  ExpectTableRejected("prices:\n  a: {input: 1, output: 2}\n", "models");
  ExpectTableRejected("just a string", "models");
  ExpectTableRejected("models: [a, b]", "models");
  ExpectTableRejected("models:\n  a: {input: -1, output: 2}\n", "non-negative");
  ExpectTableRejected("models:\n  a: {input: 1, output: 2, cached_input: -0.5}\n", "cached_input");
  ExpectTableRejected("models:\n  a: {input: cheap, output: 2}\n", "not a number");
  ExpectTableRejected("models:\n  a: {input: 1}\n", "output");
  ExpectTableRejected("models:\n  a: 5\n", "'a'");
}

TEST(PriceTableTest, NegativePriceNamesModelAndKey) {
  auto t = PriceTable::Parse("models:\n  gpt-x: {input: 1, output: -2}\n", "p.yaml");
  ASSERT_FALSE(t.ok());
  EXPECT_CONTAINS(t.status().message(), "gpt-x");
  EXPECT_CONTAINS(t.status().message(), "output");
}

TEST(PriceTableTest, LoadFileReportsUnreadableFile) {
  auto t = PriceTable::LoadFile("/nonexistent/flowrun/prices.yaml");
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument);
  EXPECT_CONTAINS(t.status().message(), "/nonexistent/flowrun/prices.yaml");
}

// ---------------------------------------------------------------------------
// ValidateAgainstSchema

TEST(ValidateAgainstSchemaTest, Boolean) {
  json schema = {{"type", "boolean"}};
  EXPECT_TRUE(ValidateAgainstSchema(schema, true).ok());
  EXPECT_TRUE(ValidateAgainstSchema(schema, false).ok());
  Status s = ValidateAgainstSchema(schema, "yes");
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(s.message().empty());
  EXPECT_FALSE(ValidateAgainstSchema(schema, 1).ok());
  EXPECT_FALSE(ValidateAgainstSchema(schema, nullptr).ok());
}

TEST(ValidateAgainstSchemaTest, String) {
  json schema = {{"type", "string"}, {"minLength", 2}};
  EXPECT_TRUE(ValidateAgainstSchema(schema, "ok").ok());
  EXPECT_FALSE(ValidateAgainstSchema(schema, "x").ok());
  EXPECT_FALSE(ValidateAgainstSchema(schema, 42).ok());
}

TEST(ValidateAgainstSchemaTest, EmptySchemaAcceptsAnything) {
  for (const json& v : {json(1), json("s"), json::array(), json::object(), json(nullptr), json(true)})
    EXPECT_TRUE(ValidateAgainstSchema(json::object(), v).ok()) << v;
}

TEST(ValidateAgainstSchemaTest, ObjectWithRequiredEnumMinMax) {
  json schema = json::parse(R"({
    "type": "object",
    "required": ["decision", "score"],
    "properties": {
      "decision": {"type": "string", "enum": ["approve", "reject"]},
      "score": {"type": "integer", "minimum": 1, "maximum": 5}
    }
  })");
  EXPECT_TRUE(ValidateAgainstSchema(schema, {{"decision", "approve"}, {"score", 5}}).ok());
  EXPECT_TRUE(ValidateAgainstSchema(schema, {{"decision", "reject"}, {"score", 1}}).ok());

  Status missing = ValidateAgainstSchema(schema, {{"decision", "approve"}});
  EXPECT_EQ(missing.code(), StatusCode::kInvalidArgument);
  EXPECT_CONTAINS(missing.message(), "score");

  EXPECT_FALSE(ValidateAgainstSchema(schema, {{"decision", "maybe"}, {"score", 3}}).ok());
  EXPECT_FALSE(ValidateAgainstSchema(schema, {{"decision", "approve"}, {"score", 0}}).ok());
  EXPECT_FALSE(ValidateAgainstSchema(schema, {{"decision", "approve"}, {"score", 6}}).ok());
  EXPECT_FALSE(ValidateAgainstSchema(schema, {{"decision", "approve"}, {"score", 2.5}}).ok());
  EXPECT_FALSE(ValidateAgainstSchema(schema, json::array()).ok());
}

TEST(ValidateAgainstSchemaTest, EveryViolationIsListedSeparated) {
  json schema = json::parse(R"({
    "type": "object",
    "properties": {
      "decision": {"type": "string", "enum": ["approve", "reject"]},
      "score": {"type": "integer", "minimum": 1, "maximum": 5}
    }
  })");
  Status s = ValidateAgainstSchema(schema, {{"decision", "maybe"}, {"score", 9}});
  ASSERT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_CONTAINS(s.message(), "decision");
  EXPECT_CONTAINS(s.message(), "score");
  EXPECT_CONTAINS(s.message(), "; ");
}

// schema_validator.h: the message lists every violation as
// "<json pointer>: <reason>". A JSON pointer (RFC 6901) to the property
// "score" is "/score"; to the 2nd item of "items" it is "/items/1".
TEST(ValidateAgainstSchemaTest, ViolationsAreNamedByJsonPointer) {
  json schema = json::parse(R"({
    "type": "object",
    "properties": {
      "score": {"type": "integer", "maximum": 5},
      "items": {"type": "array", "items": {"type": "string"}}
    }
  })");
  Status s = ValidateAgainstSchema(schema, {{"score", 9}});
  ASSERT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_CONTAINS(s.message(), "/score: ") << s.message();

  Status t = ValidateAgainstSchema(schema, {{"items", {"a", 2}}});
  ASSERT_EQ(t.code(), StatusCode::kInvalidArgument);
  EXPECT_CONTAINS(t.message(), "/items/1: ") << t.message();

  // A violation at the document root is "/"-prefixed too.
  Status r = ValidateAgainstSchema({{"type", "boolean"}}, "no");
  ASSERT_EQ(r.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(r.message().rfind("/", 0), 0u) << r.message();
}

TEST(ValidateAgainstSchemaTest, InvalidSchemaIsReported) {
  for (const json& schema : {json::parse(R"({"type": "strin"})"), json::parse(R"({"type": 5})"),
                             json::parse(R"({"minimum": "zero"})"),
                             json::parse(R"({"required": "name"})")}) {
    Status s = ValidateAgainstSchema(schema, "value");
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << schema;
    EXPECT_CONTAINS(s.message(), "invalid schema") << schema << " -> " << s.message();
  }
}

// ---------------------------------------------------------------------------
// Termination message and exit codes

Outcome SampleWaiting() {
  Outcome o;
  o.kind = OutcomeKind::kWaiting;
  o.attempt = 2;
  OpenWait w;
  w.name = "approve";
  w.occurrence = 1;
  w.question = "Proceed with the plan?";
  w.schema = {{"type", "boolean"}};
  w.asked_at = std::chrono::system_clock::time_point(std::chrono::seconds(1'700'000'000));
  w.deadline = w.asked_at + std::chrono::hours(1);
  w.on_timeout = OnTimeout::kUseDefault;
  w.default_answer = false;
  o.wait = w;
  o.budget_usd = 5;
  o.spent.llm_calls = 2;
  o.spent.cost_usd = 0.25;
  o.run_spent_usd = 1.5;
  o.saved.cost_usd = 0.5;
  o.live_checkpoints = 3;
  o.cached_checkpoints = 4;
  return o;
}

TEST(TerminationMessageTest, SmallOutcomeRoundTrips) {
  Outcome o = SampleWaiting();
  std::string text = EncodeTerminationMessage(o);
  EXPECT_LE(text.size(), 4096u);
  // The wire words (what older controllers and kubectl users read).
  json j = json::parse(text);
  EXPECT_EQ(j["outcome"], "waiting");
  EXPECT_EQ(j["attempt"], 2);
  EXPECT_FALSE(j.contains("truncated"));
  EXPECT_FALSE(j.contains("reason"));
  EXPECT_EQ(j["wait"]["name"], "approve");
  EXPECT_EQ(j["wait"]["onTimeout"], "default");
  EXPECT_EQ(j["wait"]["askedAt"], "2023-11-14T22:13:20Z");
  EXPECT_EQ(j["wait"]["deadline"], "2023-11-14T23:13:20Z");
  EXPECT_EQ(j["budgetUSD"], 5.0);
  // Decoded into the same type it was encoded from.
  auto decoded = DecodeTerminationMessage(text);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  const Outcome& d = *decoded;
  EXPECT_EQ(d.kind, OutcomeKind::kWaiting);
  EXPECT_EQ(d.reason, FailureReason::kNone);
  EXPECT_EQ(d.attempt, 2);
  EXPECT_FALSE(d.truncated);
  ASSERT_TRUE(d.wait.has_value());
  EXPECT_EQ(d.wait->name, "approve");
  EXPECT_EQ(d.wait->occurrence, 1);
  EXPECT_EQ(d.wait->question, "Proceed with the plan?");
  EXPECT_EQ(d.wait->schema, json({{"type", "boolean"}}));
  EXPECT_EQ(d.wait->on_timeout, OnTimeout::kUseDefault);
  EXPECT_EQ(d.wait->asked_at, o.wait->asked_at);
  EXPECT_EQ(d.wait->deadline, o.wait->deadline);
  EXPECT_EQ(d.budget_usd, 5.0);
  EXPECT_EQ(d.spent.llm_calls, 2);
  EXPECT_DOUBLE_EQ(d.spent.cost_usd, 0.25);
  EXPECT_DOUBLE_EQ(d.run_spent_usd, 1.5);
  EXPECT_DOUBLE_EQ(d.saved.cost_usd, 0.5);
  EXPECT_EQ(d.live_checkpoints, 3);
  EXPECT_EQ(d.cached_checkpoints, 4);
}

TEST(TerminationMessageTest, FailureReasonTravelsAsAWordNotAsText) {
  Outcome o;
  o.kind = OutcomeKind::kFailed;
  o.reason = FailureReason::kWaitTimedOut;
  o.attempt = 3;
  o.error = "anything at all";  // the controller must not read this
  std::string text = EncodeTerminationMessage(o);
  EXPECT_EQ(json::parse(text)["reason"], "wait_timed_out");
  auto d = DecodeTerminationMessage(text);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->kind, OutcomeKind::kFailed);
  EXPECT_EQ(d->reason, FailureReason::kWaitTimedOut);
  // The reason survives the last-resort truncation too.
  o.error = std::string(100'000, 'e');
  auto cut = DecodeTerminationMessage(EncodeTerminationMessage(o, 64));
  ASSERT_TRUE(cut.ok()) << cut.status();
  EXPECT_EQ(cut->reason, FailureReason::kWaitTimedOut);
  EXPECT_TRUE(cut->truncated);
  // A failure from an agent without reasons is a flow failure, whatever its text says.
  auto old = DecodeTerminationMessage(R"({"v":1,"outcome":"failed","error":"wait x#1 timed out without an answer"})");
  ASSERT_TRUE(old.ok());
  EXPECT_EQ(old->reason, FailureReason::kFlowFailed);
}

TEST(TerminationMessageTest, UnknownOutcomeWordIsUnimplementedNotInvalid) {
  auto d = DecodeTerminationMessage(R"({"v":1,"outcome":"teleported","attempt":1})");
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), StatusCode::kUnimplemented);
  EXPECT_CONTAINS(d.status().message(), "teleported");
}

TEST(TerminationMessageTest, EveryOutcomeKindRoundTrips) {
  for (OutcomeKind k : {OutcomeKind::kSucceeded, OutcomeKind::kFailed, OutcomeKind::kWaiting,
                        OutcomeKind::kBudgetExceeded, OutcomeKind::kCancelled, OutcomeKind::kFenced,
                        OutcomeKind::kDivergence, OutcomeKind::kConfigError, OutcomeKind::kDatabaseUnavailable,
                        OutcomeKind::kTerminated}) {
    Outcome o;
    o.kind = k;
    auto d = DecodeTerminationMessage(EncodeTerminationMessage(o));
    ASSERT_TRUE(d.ok()) << OutcomeKindName(k) << ": " << d.status();
    EXPECT_EQ(d->kind, k);
    EXPECT_EQ(ParseOutcomeKind(OutcomeKindName(k)), k);
  }
}

TEST(RunStatesTest, EveryNameParsesBackAndUnknownWordsDoNot) {
  for (RunStatus s : {RunStatus::kPending, RunStatus::kRunning, RunStatus::kWaiting, RunStatus::kBudgetExceeded,
                      RunStatus::kSucceeded, RunStatus::kFailed, RunStatus::kCancelled})
    EXPECT_EQ(ParseRunStatus(RunStatusName(s)), s);
  for (FailureReason r : {FailureReason::kNone, FailureReason::kFlowFailed, FailureReason::kWaitTimedOut})
    EXPECT_EQ(ParseFailureReason(FailureReasonName(r)), r);
  EXPECT_EQ(ParseRunStatus("Running"), std::nullopt);  // the words are exact
  EXPECT_EQ(ParseOutcomeKind("timed out"), std::nullopt);
  EXPECT_EQ(ParseFailureReason("WaitTimedOut"), std::nullopt);
  EXPECT_TRUE(IsTerminal(RunStatus::kCancelled));
  EXPECT_FALSE(IsTerminal(RunStatus::kBudgetExceeded));
  EXPECT_EQ(RunStatusAfter(OutcomeKind::kDivergence), RunStatus::kFailed);
  EXPECT_EQ(RunStatusAfter(OutcomeKind::kBudgetExceeded), RunStatus::kBudgetExceeded);
  EXPECT_EQ(OutcomeKindName(OutcomeKind::kTerminated), "terminated");
  EXPECT_FALSE(IsSuspension(OutcomeKind::kTerminated));
  EXPECT_TRUE(IsSuspension(OutcomeKind::kWaiting));
  EXPECT_FALSE(IsSuspension(OutcomeKind::kSucceeded));
}

TEST(OutcomeFromRunStateTest, TheDatabaseChannelDecodesIntoTheSameType) {
  RunState run;
  run.status = RunStatus::kWaiting;
  run.budget_usd = 2;
  run.spent.cost_usd = 1.25;
  OpenWait w;
  w.name = "proceed";
  w.occurrence = 2;
  run.open_wait = w;
  AttemptRecord rec;
  rec.attempt = 3;
  EXPECT_FALSE(OutcomeFromRunState(run, rec).has_value());  // still running
  rec.outcome = OutcomeKind::kFenced;
  EXPECT_FALSE(OutcomeFromRunState(run, rec).has_value());
  rec.outcome = OutcomeKind::kWaiting;
  rec.live_checkpoints = 4;
  auto o = OutcomeFromRunState(run, rec);
  ASSERT_TRUE(o.has_value());
  EXPECT_EQ(o->kind, OutcomeKind::kWaiting);
  EXPECT_EQ(o->attempt, 3);
  ASSERT_TRUE(o->wait.has_value());
  EXPECT_EQ(o->wait->name, "proceed");
  EXPECT_EQ(o->wait->occurrence, 2);
  EXPECT_EQ(o->budget_usd, 2.0);
  EXPECT_DOUBLE_EQ(o->run_spent_usd, 1.25);
  EXPECT_EQ(o->live_checkpoints, 4);
  rec.outcome = OutcomeKind::kFailed;
  rec.reason = FailureReason::kWaitTimedOut;
  o = OutcomeFromRunState(run, rec);
  ASSERT_TRUE(o.has_value());
  EXPECT_EQ(o->reason, FailureReason::kWaitTimedOut);
  EXPECT_FALSE(o->wait.has_value());
}

TEST(TerminationMessageTest, SucceededCarriesTheResultWhenItFits) {
  Outcome o;
  o.kind = OutcomeKind::kSucceeded;
  o.attempt = 1;
  o.result = json{{"answer", 42}, {"tags", {"a", "b"}}};
  auto d = DecodeTerminationMessage(EncodeTerminationMessage(o));
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->result, o.result);
  EXPECT_FALSE(d->truncated);
}

void ExpectFitsAndTruncated(const Outcome& o, size_t limit = 4096) {
  std::string text = EncodeTerminationMessage(o, limit);
  EXPECT_LE(text.size(), limit);
  auto parsed = json::parse(text, nullptr, false);
  ASSERT_FALSE(parsed.is_discarded()) << "not JSON: " << text.substr(0, 200);
  EXPECT_EQ(parsed.value("truncated", false), true);
  EXPECT_EQ(parsed["outcome"], std::string(OutcomeKindName(o.kind)));
  EXPECT_EQ(parsed["attempt"], o.attempt);
  auto decoded = DecodeTerminationMessage(text);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->kind, o.kind);
  EXPECT_EQ(decoded->attempt, o.attempt);
  EXPECT_TRUE(decoded->truncated);
  EXPECT_EQ(decoded->wait.has_value(), o.wait.has_value());
}

TEST(TerminationMessageTest, HugeResultIsDropped) {
  Outcome o;
  o.kind = OutcomeKind::kSucceeded;
  o.attempt = 1;
  o.result = json{{"text", std::string(100'000, 'r')}};
  ExpectFitsAndTruncated(o);
  auto j = json::parse(EncodeTerminationMessage(o));
  EXPECT_FALSE(j.contains("result"));
  EXPECT_EQ(j["spent"]["calls"], 0);  // the rest is kept
}

TEST(TerminationMessageTest, HugeSchemaIsDropped) {
  Outcome o = SampleWaiting();
  json props = json::object();
  for (int i = 0; i < 2000; ++i) props["field_" + std::to_string(i)] = {{"type", "string"}};
  o.wait->schema = {{"type", "object"}, {"properties", props}};
  ExpectFitsAndTruncated(o);
  auto j = json::parse(EncodeTerminationMessage(o));
  EXPECT_FALSE(j["wait"].contains("schema"));
  EXPECT_EQ(j["wait"]["question"], "Proceed with the plan?");  // untouched: it fit
  EXPECT_EQ(j["wait"]["name"], "approve");
}

TEST(TerminationMessageTest, HugeQuestionIsShortened) {
  Outcome o = SampleWaiting();
  o.wait->question = std::string(1'000'000, 'q');
  ExpectFitsAndTruncated(o);
  auto j = json::parse(EncodeTerminationMessage(o));
  std::string q = j["wait"]["question"];
  EXPECT_LT(q.size(), 4096u);
  EXPECT_GT(q.size(), 16u);
  EXPECT_EQ(q.rfind("qqqq", 0), 0u);
}

TEST(TerminationMessageTest, HugeErrorIsShortened) {
  Outcome o;
  o.kind = OutcomeKind::kFailed;
  o.attempt = 7;
  o.error = "checkpoint 'x' failed: " + std::string(50'000, 'e');
  ExpectFitsAndTruncated(o);
  auto j = json::parse(EncodeTerminationMessage(o));
  ASSERT_TRUE(j.contains("error"));
  EXPECT_EQ(j["error"].get<std::string>().rfind("checkpoint 'x' failed", 0), 0u);
}

TEST(TerminationMessageTest, EverythingHugeAndEscapeHeavyStillFits) {
  Outcome o = SampleWaiting();
  o.kind = OutcomeKind::kFailed;
  // Characters that escape to 2 or 6 bytes each, and multi-byte UTF-8.
  std::string nasty;
  for (int i = 0; i < 20'000; ++i) nasty += (i % 3 == 0) ? "\"" : (i % 3 == 1) ? "\x01" : "\xC3\xA9";
  o.wait->question = nasty;
  o.error = nasty;
  json big = json::array();
  for (int i = 0; i < 5000; ++i) big.push_back(nasty.substr(0, 10));
  o.wait->schema = {{"enum", big}};
  o.result = big;
  ExpectFitsAndTruncated(o);
  // Truncation never splits a UTF-8 sequence: the text is valid UTF-8 JSON.
  std::string text = EncodeTerminationMessage(o);
  EXPECT_NO_THROW((void)json::parse(text).dump());
}

TEST(TerminationMessageTest, InvalidUtf8InErrorStillGivesValidJson) {
  Outcome o;
  o.kind = OutcomeKind::kFailed;
  o.attempt = 1;
  o.error = std::string("bad bytes: \xFF\xFE\xC3");
  std::string text = EncodeTerminationMessage(o);
  auto j = json::parse(text, nullptr, false);
  ASSERT_FALSE(j.is_discarded());
  EXPECT_EQ(j["outcome"], "failed");
}

TEST(TerminationMessageTest, FitsUnderSmallerLimits) {
  Outcome o = SampleWaiting();
  o.wait->question = std::string(10'000, 'q');
  for (size_t limit : {1024u, 2048u, 4096u}) ExpectFitsAndTruncated(o, limit);
}

TEST(TerminationMessageTest, DecodeRejectsNonOutcomes) {
  for (const std::string& text : {std::string(""), std::string("not json"), std::string("[1,2]"),
                                  std::string(R"({"v":1})"), std::string(R"({"outcome":5})")}) {
    auto d = DecodeTerminationMessage(text);
    EXPECT_FALSE(d.ok()) << text;
    EXPECT_EQ(d.status().code(), StatusCode::kInvalidArgument) << text;
  }
}

TEST(TerminationMessageTest, WriteCreatesTheFileAndReportsFailures) {
  std::string path = ::testing::TempDir() + "/flowrun-termination-" + std::to_string(::getpid());
  Outcome o = SampleWaiting();
  ASSERT_TRUE(WriteTerminationMessage(path, o).ok());
  std::FILE* f = std::fopen(path.c_str(), "r");
  ASSERT_NE(f, nullptr);
  std::string text;
  char buf[8192];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
  std::fclose(f);
  std::remove(path.c_str());
  EXPECT_EQ(text, EncodeTerminationMessage(o));
  Status bad = WriteTerminationMessage("/nonexistent-dir/flowrun/term", o);
  EXPECT_FALSE(bad.ok());
}

TEST(ExitCodeTest, EveryOutcome) {
  auto code = [](OutcomeKind kind) {
    Outcome o;
    o.kind = kind;
    return ExitCodeFor(o);
  };
  EXPECT_EQ(code(OutcomeKind::kSucceeded), kExitOk);
  EXPECT_EQ(code(OutcomeKind::kWaiting), kExitOk);
  EXPECT_EQ(code(OutcomeKind::kBudgetExceeded), kExitOk);
  EXPECT_EQ(code(OutcomeKind::kFailed), kExitFlowFailed);
  EXPECT_EQ(code(OutcomeKind::kCancelled), kExitFlowFailed);
  EXPECT_EQ(code(OutcomeKind::kConfigError), kExitConfigError);
  EXPECT_EQ(code(OutcomeKind::kDatabaseUnavailable), kExitDatabaseUnavailable);
  EXPECT_EQ(code(OutcomeKind::kFenced), kExitFenced);
  EXPECT_EQ(code(OutcomeKind::kDivergence), kExitDivergence);
  EXPECT_EQ(code(OutcomeKind::kTerminated), kExitTerminated);
  EXPECT_EQ(kExitOk, 0);
  EXPECT_EQ(kExitFlowFailed, 1);
  EXPECT_EQ(kExitConfigError, 2);
  EXPECT_EQ(kExitDatabaseUnavailable, 3);
  EXPECT_EQ(kExitFenced, 4);
  EXPECT_EQ(kExitDivergence, 5);
  EXPECT_EQ(kExitTerminated, 128 + SIGTERM);  // what a shell reports for a SIGTERM death
}

// ---------------------------------------------------------------------------
// CheckpointFingerprint

TEST(CheckpointFingerprintTest, StableAndVersioned) {
  json inputs = {{"topic", "llamas"}, {"n", 3}};
  std::string a = CheckpointFingerprint(CheckpointKind::kStep, "research", inputs);
  std::string b = CheckpointFingerprint(CheckpointKind::kStep, "research", json::parse(inputs.dump()));
  EXPECT_EQ(a, b);
  EXPECT_EQ(a.rfind("v1:", 0), 0u) << a;
  EXPECT_EQ(a.size(), 3u + 32u);  // "v1:" + 128 bits in hex
  EXPECT_EQ(CheckpointFingerprint(CheckpointKind::kStep, "research", std::nullopt),
            CheckpointFingerprint(CheckpointKind::kStep, "research", std::nullopt));
}

TEST(CheckpointFingerprintTest, DiffersByKindNameAndInputs) {
  json inputs = {{"topic", "llamas"}};
  std::string base = CheckpointFingerprint(CheckpointKind::kStep, "research", inputs);
  EXPECT_NE(base, CheckpointFingerprint(CheckpointKind::kWait, "research", inputs));
  EXPECT_NE(base, CheckpointFingerprint(CheckpointKind::kStep, "research2", inputs));
  EXPECT_NE(base, CheckpointFingerprint(CheckpointKind::kStep, "research", json{{"topic", "alpacas"}}));
  EXPECT_NE(base, CheckpointFingerprint(CheckpointKind::kStep, "research", std::nullopt));
  EXPECT_NE(CheckpointFingerprint(CheckpointKind::kStep, "research", std::nullopt),
            CheckpointFingerprint(CheckpointKind::kStep, "research", json(nullptr)));
  EXPECT_NE(CheckpointFingerprint(CheckpointKind::kStep, "a", json("1")),
            CheckpointFingerprint(CheckpointKind::kStep, "a", json(1)));
}

TEST(CheckpointFingerprintTest, KeyOrderOfInputsDoesNotMatter) {
  json ab = json::parse(R"({"a": 1, "b": {"x": [1, 2], "y": null}})");
  json ba = json::parse(R"({"b": {"y": null, "x": [1, 2]}, "a": 1})");
  EXPECT_EQ(CheckpointFingerprint(CheckpointKind::kStep, "s", ab),
            CheckpointFingerprint(CheckpointKind::kStep, "s", ba));
  // Array order does matter.
  json reordered = json::parse(R"({"a": 1, "b": {"x": [2, 1], "y": null}})");
  EXPECT_NE(CheckpointFingerprint(CheckpointKind::kStep, "s", ab),
            CheckpointFingerprint(CheckpointKind::kStep, "s", reordered));
}

// ---------------------------------------------------------------------------
// Flow::DefaultSchemaFor

TEST(DefaultSchemaForTest, MapsTypesToJsonSchema) {
  EXPECT_EQ(Flow::DefaultSchemaFor<bool>(), json({{"type", "boolean"}}));
  EXPECT_EQ(Flow::DefaultSchemaFor<int>(), json({{"type", "integer"}}));
  EXPECT_EQ(Flow::DefaultSchemaFor<int64_t>(), json({{"type", "integer"}}));
  EXPECT_EQ(Flow::DefaultSchemaFor<unsigned>(), json({{"type", "integer"}}));
  EXPECT_EQ(Flow::DefaultSchemaFor<double>(), json({{"type", "number"}}));
  EXPECT_EQ(Flow::DefaultSchemaFor<float>(), json({{"type", "number"}}));
  EXPECT_EQ(Flow::DefaultSchemaFor<std::string>(), json({{"type", "string"}}));
  EXPECT_EQ(Flow::DefaultSchemaFor<json>(), json::object());
  EXPECT_EQ(Flow::DefaultSchemaFor<std::vector<int>>(), json::object());
}

TEST(DefaultSchemaForTest, DefaultSchemasAcceptTheirTypeAndRejectOthers) {
  EXPECT_TRUE(ValidateAgainstSchema(Flow::DefaultSchemaFor<bool>(), true).ok());
  EXPECT_FALSE(ValidateAgainstSchema(Flow::DefaultSchemaFor<bool>(), "true").ok());
  EXPECT_TRUE(ValidateAgainstSchema(Flow::DefaultSchemaFor<int>(), 3).ok());
  EXPECT_FALSE(ValidateAgainstSchema(Flow::DefaultSchemaFor<int>(), 3.5).ok());
  EXPECT_TRUE(ValidateAgainstSchema(Flow::DefaultSchemaFor<double>(), 3.5).ok());
  EXPECT_TRUE(ValidateAgainstSchema(Flow::DefaultSchemaFor<std::string>(), "s").ok());
  EXPECT_FALSE(ValidateAgainstSchema(Flow::DefaultSchemaFor<std::string>(), 1).ok());
}

}  // namespace
}  // namespace flowrun
