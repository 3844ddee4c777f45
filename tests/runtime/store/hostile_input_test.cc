// Input that looks like SQL or that PostgreSQL cannot store: names with
// SQL metacharacters are data, NUL characters and malformed JSON are refused
// with nothing half written.
#include <set>

#include "store_fixture.h"

namespace flowrun::store_test {
namespace {

class StoreHostileInput : public StoreTest {};

TEST_F(StoreHostileInput, NamesWithSqlMetacharactersRoundTrip) {
  const std::vector<std::string> names = {
      "x'; DROP TABLE flowrun.runs; --",
      "Robert'); DELETE FROM flowrun.checkpoints WHERE ('1'='1",
      "double\"quote and 'single' and `back`",
      "back\\slash \\\\ \\' \\n",
      "unicode: 日本語 — émoji 🚀 Ω",
      "$1 %s %n {} ? :name",
      std::string(253, 'n'),
  };
  const std::string uid = "run'; DROP TABLE flowrun.waits; --";
  auto store = Store();
  Begin(*store, uid, 1);
  TimePoint now = std::chrono::system_clock::now();
  auto admin = Admin();
  for (size_t i = 0; i < names.size(); ++i) {
    const std::string& name = names[i];
    CheckpointKey k{name, 1};
    ASSERT_FALSE(Must(store->CheckpointStarted(k, CheckpointKind::kStep, Fp(name), 1), "start " + name));
    MustOk(store->CheckpointCompleted(k, CheckpointKind::kStep, Fp(name), json{{"name", name}}.dump(), now, now,
                                      Usage{}),
           "complete " + name);
    // Waits use a second run: a wait is also a checkpoint of the same name.
    ASSERT_EQ(Must(store->SaveArtifact(name, "text/plain; charset=\"utf-8\"", name, k)), 1) << name;
  }
  {
    auto waits = Store();
    Begin(*waits, uid + "-waits", 1);
    for (const std::string& name : names) {
      ASSERT_EQ(Must(waits->ResolveWait(MakeWait(name, kString)), "wait " + name).kind,
                WaitResolution::Kind::kPending);
      auto rec = admin->RecordAnswer(uid + "-waits", name, "answer to " + name, AnswerOptions{false, name});
      ASSERT_TRUE(rec.ok()) << name << ": " << rec.status();
      EXPECT_EQ(rec->wait_name, name);
    }
    auto resumed = Store();
    Begin(*resumed, uid + "-waits", 2);
    for (const std::string& name : names) {
      WaitResolution r = Must(resumed->ResolveWait(MakeWait(name, kString)), "resolve " + name);
      EXPECT_EQ(r.kind, WaitResolution::Kind::kAnswered) << name;
      EXPECT_EQ(r.answer, json("answer to " + name));
      EXPECT_EQ(r.answered_by, name);
    }
    ExecutionStart s3 = Begin(*Store(), uid + "-waits", 3);
    for (const std::string& name : names) {
      ASSERT_TRUE(s3.completed.count(CheckpointKey{name, 1})) << name;
      EXPECT_EQ(s3.completed.at(CheckpointKey{name, 1}).kind, CheckpointKind::kWait);
    }
  }

  auto next = Store();
  ExecutionStart start = Begin(*next, uid, 2);
  EXPECT_EQ(start.completed.size(), names.size());
  for (const std::string& name : names) {
    CheckpointKey k{name, 1};
    ASSERT_TRUE(start.completed.count(k)) << name;
    EXPECT_EQ(start.completed.at(k).output, json({{"name", name}}));
    EXPECT_EQ(start.completed.at(k).fingerprint, Fp(name));
    Artifact a = Must(admin->LoadArtifact(uid, name, 0), "load " + name);
    EXPECT_EQ(a.data, name);
    EXPECT_EQ(a.info.name, name);
    EXPECT_EQ(a.info.content_type, "text/plain; charset=\"utf-8\"");
    EXPECT_EQ(a.info.checkpoint, name + "#1");
  }
  auto listed = Must(admin->ListArtifacts(uid));
  std::set<std::string> listed_names;
  for (const auto& a : listed) listed_names.insert(a.name);
  EXPECT_EQ(listed_names, std::set<std::string>(names.begin(), names.end()));
  RunState run = Must(admin->GetRun(uid));
  EXPECT_EQ(run.uid, uid);
  EXPECT_EQ(run.checkpoints_completed, static_cast<int64_t>(names.size()));

  // Nothing was dropped: the 7 tables of version 1, schema_migrations,
  // metric_rollup (version 2) and the 3 replay tables (version 5).
  EXPECT_EQ(Count("SELECT count(*) FROM pg_tables WHERE schemaname = 'flowrun'"), 12);
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.checkpoints"), static_cast<int64_t>(2 * names.size()));
}

TEST_F(StoreHostileInput, OutputWithNulCharacterIsRejectedAndNothingHalfWritten) {
  auto store = Store();
  Begin(*store, "run-nul", 1);
  CheckpointKey k{"nul", 1};
  ASSERT_FALSE(Must(store->CheckpointStarted(k, CheckpointKind::kStep, Fp("nul"), 1)));
  json out = {{"s", std::string("a\0b", 3)}};
  std::string text = out.dump();
  ASSERT_NE(text.find("\\u0000"), std::string::npos);
  TimePoint now = std::chrono::system_clock::now();
  Usage u;
  u.llm_calls = 1;
  u.cost_usd = 0.5;
  Status st = store->CheckpointCompleted(k, CheckpointKind::kStep, Fp("nul"), text, now, now, u);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << st;
  EXPECT_EQ(store->in_doubt_writes_settled(), 0);
  pqxx::result r = Query("SELECT status, output IS NULL, llm_calls, cost_usd FROM flowrun.checkpoints"
                         " WHERE run_uid = 'run-nul'");
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0][0].as<std::string>(), "running");
  EXPECT_TRUE(r[0][1].as<bool>());
  EXPECT_EQ(r[0][2].as<int64_t>(), 0);
  EXPECT_EQ(r[0][3].as<double>(), 0);

  // The store is still usable, and a later Begin does not see a completion.
  MustOk(store->CheckpointCompleted(k, CheckpointKind::kStep, Fp("nul"), R"({"s":"ab"})", now, now, u));
  auto next = Store();
  ExecutionStart start = Begin(*next, "run-nul", 2);
  ASSERT_TRUE(start.completed.count(k));
  EXPECT_EQ(start.completed.at(k).output, json({{"s", "ab"}}));
}

TEST_F(StoreHostileInput, MalformedOutputJsonIsRejected) {
  auto store = Store();
  Begin(*store, "run-badjson", 1);
  TimePoint now = std::chrono::system_clock::now();
  Status st = store->CheckpointCompleted(CheckpointKey{"x", 1}, CheckpointKind::kStep, Fp("x"), "{not json", now,
                                         now, Usage{});
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << st;
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.checkpoints"), 0);
}

}  // namespace
}  // namespace flowrun::store_test
