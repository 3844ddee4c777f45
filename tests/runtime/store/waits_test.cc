// Waits and answers: the pending wait as recorded, answers validated
// against the schema, first answer wins (also concurrently), early answers.
#include <latch>
#include <thread>

#include "store_fixture.h"

namespace flowrun::store_test {
namespace {

class StoreWaits : public StoreTest {};

TEST_F(StoreWaits, PendingWaitRecordsQuestionSchemaAndDeadline) {
  auto store = Store();
  Begin(*store, "run-w", 1);
  WaitRequest req = MakeWait("approve", kBool, seconds(3600), OnTimeout::kUseDefault, json(false));
  req.question = "Proceed with the plan? It costs $3.";
  TimePoint before = std::chrono::system_clock::now();
  WaitResolution res = Must(store->ResolveWait(req));
  EXPECT_EQ(res.kind, WaitResolution::Kind::kPending);
  ASSERT_TRUE(res.deadline.has_value());
  EXPECT_NEAR(std::chrono::duration<double>(*res.deadline - before).count(), 3600, 30);
  EXPECT_TRUE(res.rejected_early_answer.empty());

  pqxx::result r = Query("SELECT question, schema::text, deadline IS NOT NULL, on_timeout, default_answer::text,"
                         " answer IS NULL, asked_at IS NOT NULL FROM flowrun.waits WHERE run_uid = 'run-w'");
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0][0].as<std::string>(), "Proceed with the plan? It costs $3.");
  EXPECT_EQ(json::parse(r[0][1].as<std::string>()), kBool);
  EXPECT_TRUE(r[0][2].as<bool>());
  EXPECT_EQ(r[0][3].as<std::string>(), "default");
  EXPECT_EQ(json::parse(r[0][4].as<std::string>()), json(false));
  EXPECT_TRUE(r[0][5].as<bool>());
  EXPECT_TRUE(r[0][6].as<bool>());

  auto run = Must(Admin()->GetRun("run-w"));
  ASSERT_TRUE(run.open_wait.has_value());
  EXPECT_EQ(run.open_wait->name, "approve");
  EXPECT_EQ(run.open_wait->occurrence, 1);
  EXPECT_EQ(run.open_wait->question, req.question);
  EXPECT_EQ(run.open_wait->schema, kBool);
  ASSERT_TRUE(run.open_wait->deadline.has_value());
  EXPECT_NEAR(std::chrono::duration<double>(*run.open_wait->deadline - *res.deadline).count(), 0, 0.01);
  EXPECT_EQ(run.open_wait->on_timeout, OnTimeout::kUseDefault);
  ASSERT_TRUE(run.open_wait->default_answer.has_value());
  EXPECT_EQ(*run.open_wait->default_answer, json(false));

  // Asked again by the next execution: still pending, the deadline is not extended.
  auto next = Store();
  Begin(*next, "run-w", 2);
  WaitResolution again = Must(next->ResolveWait(req));
  EXPECT_EQ(again.kind, WaitResolution::Kind::kPending);
  ASSERT_TRUE(again.deadline.has_value());
  EXPECT_NEAR(std::chrono::duration<double>(*again.deadline - *res.deadline).count(), 0, 0.01);
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.waits WHERE run_uid = 'run-w'"), 1);
}

TEST_F(StoreWaits, WaitWithoutTimeoutHasNoDeadline) {
  auto store = Store();
  Begin(*store, "run-nd", 1);
  WaitResolution res = Must(store->ResolveWait(MakeWait("approve", kBool)));
  EXPECT_EQ(res.kind, WaitResolution::Kind::kPending);
  EXPECT_FALSE(res.deadline.has_value());
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.waits WHERE deadline IS NULL"), 1);
}

TEST_F(StoreWaits, AnswerViolatingTheSchemaIsRejectedAndNothingStored) {
  auto store = Store();
  Begin(*store, "run-v", 1);
  json schema = json::parse(R"({"type":"object","required":["decision"],
                                "properties":{"decision":{"enum":["approve","reject"]}}})");
  ASSERT_EQ(Must(store->ResolveWait(MakeWait("review", schema))).kind, WaitResolution::Kind::kPending);
  auto admin = Admin();
  auto bad = admin->RecordAnswer("run-v", "review", json{{"decision", "maybe"}}, AnswerOptions{true, "human:bob"});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_CONTAINS(bad.status().message(), "decision");
  auto missing = admin->RecordAnswer("run-v", "review", json::object(), AnswerOptions{true, "human:bob"});
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kInvalidArgument);
  EXPECT_CONTAINS(missing.status().message(), "decision");
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.waits WHERE answer IS NULL AND answered_at IS NULL"
                  " AND answered_by = ''"),
            1);
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.waits"), 1);
  // Still open, and a valid answer is then accepted.
  EXPECT_TRUE(Must(admin->GetRun("run-v")).open_wait.has_value());
  auto good = admin->RecordAnswer("run-v", "review", json{{"decision", "approve"}}, AnswerOptions{true, "human:bob"});
  ASSERT_TRUE(good.ok()) << good.status();
  EXPECT_FALSE(good->early);
}

TEST_F(StoreWaits, ValidAnswerResolvesTheWaitAndBecomesItsCheckpoint) {
  WaitRequest req = MakeWait("approve", kBool);
  ASSERT_NO_FATAL_FAILURE(LeaveWaiting("run-a", req));
  auto admin = Admin();
  EXPECT_EQ(Must(admin->GetRun("run-a")).status, RunStatus::kWaiting);
  RecordedAnswer rec = Must(admin->RecordAnswer("run-a", "approve", true, AnswerOptions{false, "human:alice"}));
  EXPECT_EQ(rec.wait_name, "approve");
  EXPECT_EQ(rec.occurrence, 1);
  EXPECT_FALSE(rec.early);
  EXPECT_FALSE(Must(admin->GetRun("run-a")).open_wait.has_value());  // answered: no longer open

  auto second = Store();
  Begin(*second, "run-a", 2);
  WaitResolution res = Must(second->ResolveWait(req));
  EXPECT_EQ(res.kind, WaitResolution::Kind::kAnswered);
  EXPECT_EQ(res.answer, json(true));
  EXPECT_EQ(res.answered_by, "human:alice");
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.waits WHERE consumed_at IS NOT NULL"), 1);

  auto third = Store();
  ExecutionStart start = Begin(*third, "run-a", 3);
  CheckpointKey key{"approve", 1};
  ASSERT_TRUE(start.completed.count(key));
  EXPECT_EQ(start.completed.at(key).kind, CheckpointKind::kWait);
  EXPECT_EQ(start.completed.at(key).output, json(true));
  EXPECT_EQ(start.completed.at(key).fingerprint, req.fingerprint);
  EXPECT_EQ(start.completed.at(key).attempt, 2);
}

TEST_F(StoreWaits, FirstAnswerWins) {
  auto store = Store();
  Begin(*store, "run-1st", 1);
  ASSERT_EQ(Must(store->ResolveWait(MakeWait("pick", kString))).kind, WaitResolution::Kind::kPending);
  auto admin = Admin();
  ASSERT_TRUE(admin->RecordAnswer("run-1st", "pick", "first", AnswerOptions{true, "human:a"}).ok());
  auto second = admin->RecordAnswer("run-1st", "pick", "second", AnswerOptions{true, "human:b"});
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), StatusCode::kAlreadyExists) << second.status();
  auto strict = admin->RecordAnswer("run-1st", "pick", "third", AnswerOptions{false, "human:c"});
  EXPECT_EQ(strict.status().code(), StatusCode::kAlreadyExists) << strict.status();
  pqxx::result r = Query("SELECT answer::text, answered_by FROM flowrun.waits WHERE run_uid = 'run-1st'");
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(json::parse(r[0][0].as<std::string>()), json("first"));
  EXPECT_EQ(r[0][1].as<std::string>(), "human:a");
  auto next = Store();
  Begin(*next, "run-1st", 2);
  EXPECT_EQ(Must(next->ResolveWait(MakeWait("pick", kString))).answer, json("first"));
}

TEST_F(StoreWaits, ConcurrentAnswersExactlyOneWins) {
  auto store = Store();
  Begin(*store, "run-cc", 1);
  auto admin1 = Admin();
  auto admin2 = Admin();
  constexpr int kRounds = 6;
  for (int round = 0; round < kRounds; ++round) {
    std::string wait = "pick-" + std::to_string(round);
    ASSERT_EQ(Must(store->ResolveWait(MakeWait(wait, kString))).kind, WaitResolution::Kind::kPending);
    std::latch go(2);
    StatusOr<RecordedAnswer> r1 = Internal("not run"), r2 = Internal("not run");
    std::thread t1([&] {
      go.arrive_and_wait();
      r1 = admin1->RecordAnswer("run-cc", wait, "one", AnswerOptions{true, "human:one"});
    });
    std::thread t2([&] {
      go.arrive_and_wait();
      r2 = admin2->RecordAnswer("run-cc", wait, "two", AnswerOptions{true, "human:two"});
    });
    t1.join();
    t2.join();
    ASSERT_NE(r1.ok(), r2.ok()) << "round " << round << ": " << r1.status() << " / " << r2.status();
    const auto& loser = r1.ok() ? r2 : r1;
    EXPECT_EQ(loser.status().code(), StatusCode::kAlreadyExists) << loser.status();
    std::string winner = r1.ok() ? "one" : "two";
    pqxx::result r = Query("SELECT answer::text, answered_by FROM flowrun.waits WHERE run_uid = 'run-cc' AND name = $1",
                           wait);
    ASSERT_EQ(r.size(), 1u);
    EXPECT_EQ(json::parse(r[0][0].as<std::string>()), json(winner));
    EXPECT_EQ(r[0][1].as<std::string>(), "human:" + winner);
    EXPECT_FALSE(r1.ok() && r1->early);
    EXPECT_FALSE(r2.ok() && r2->early);
  }
}

TEST_F(StoreWaits, ConcurrentEarlyAnswersForANewRunExactlyOneWins) {
  auto admin1 = Admin();
  auto admin2 = Admin();
  for (int round = 0; round < 6; ++round) {
    std::string uid = "run-early-" + std::to_string(round);
    std::latch go(2);
    StatusOr<RecordedAnswer> r1 = Internal("not run"), r2 = Internal("not run");
    std::thread t1([&] {
      go.arrive_and_wait();
      r1 = admin1->RecordAnswer(uid, "approve", true, AnswerOptions{true, "human:one"});
    });
    std::thread t2([&] {
      go.arrive_and_wait();
      r2 = admin2->RecordAnswer(uid, "approve", false, AnswerOptions{true, "human:two"});
    });
    t1.join();
    t2.join();
    ASSERT_NE(r1.ok(), r2.ok()) << uid << ": " << r1.status() << " / " << r2.status();
    const auto& loser = r1.ok() ? r2 : r1;
    EXPECT_EQ(loser.status().code(), StatusCode::kAlreadyExists) << loser.status();
    EXPECT_TRUE(r1.ok() ? r1->early : r2->early);
    EXPECT_EQ(Count("SELECT count(*) FROM flowrun.runs WHERE run_uid = $1", uid), 1);
    EXPECT_EQ(Count("SELECT count(*) FROM flowrun.waits WHERE run_uid = $1", uid), 1);
  }
}

TEST_F(StoreWaits, EarlyAnswerIsStoredAndConsumedByResolveWait) {
  auto admin = Admin();
  // The run has not started yet.
  RecordedAnswer rec = Must(admin->RecordAnswer("run-e", "approve", true, AnswerOptions{true, "human:eve"}));
  EXPECT_TRUE(rec.early);
  EXPECT_EQ(rec.occurrence, 1);
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.waits WHERE run_uid = 'run-e' AND question IS NULL"
                  " AND answer = 'true'::jsonb"),
            1);
  EXPECT_EQ(Must(admin->GetRun("run-e")).status, RunStatus::kPending);
  auto dup = admin->RecordAnswer("run-e", "approve", false, AnswerOptions{true, "human:mallory"});
  EXPECT_EQ(dup.status().code(), StatusCode::kAlreadyExists) << dup.status();

  auto store = Store();
  EXPECT_EQ(Begin(*store, "run-e", 1).epoch, 1);
  WaitResolution res = Must(store->ResolveWait(MakeWait("approve", kBool)));
  EXPECT_EQ(res.kind, WaitResolution::Kind::kAnswered);
  EXPECT_EQ(res.answer, json(true));
  EXPECT_EQ(res.answered_by, "human:eve");
  EXPECT_TRUE(res.rejected_early_answer.empty());
  pqxx::result r = Query("SELECT question, consumed_at IS NOT NULL FROM flowrun.waits WHERE run_uid = 'run-e'");
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0][0].as<std::string>(), "Question for approve?");
  EXPECT_TRUE(r[0][1].as<bool>());
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.checkpoints WHERE run_uid = 'run-e' AND kind = 'wait'"
                  " AND status = 'completed'"),
            1);
}

TEST_F(StoreWaits, EarlyAnswerViolatingTheSchemaIsRejectedAtResolveWait) {
  auto admin = Admin();
  ASSERT_TRUE(admin->RecordAnswer("run-eb", "approve", "yes please", AnswerOptions{true, "human:eve"}).ok());
  auto store = Store();
  Begin(*store, "run-eb", 1);
  WaitResolution res = Must(store->ResolveWait(MakeWait("approve", kBool)));
  EXPECT_EQ(res.kind, WaitResolution::Kind::kPending);
  EXPECT_FALSE(res.rejected_early_answer.empty());
  pqxx::result r = Query("SELECT answer IS NULL, rejected_answer::text, rejected_reason, question IS NOT NULL"
                         " FROM flowrun.waits WHERE run_uid = 'run-eb'");
  ASSERT_EQ(r.size(), 1u);
  EXPECT_TRUE(r[0][0].as<bool>());
  EXPECT_EQ(json::parse(r[0][1].as<std::string>()), json("yes please"));
  EXPECT_FALSE(r[0][2].as<std::string>().empty());
  EXPECT_TRUE(r[0][3].as<bool>());
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.checkpoints WHERE run_uid = 'run-eb'"), 0);
  // The wait is now open and takes a valid answer.
  auto run = Must(admin->GetRun("run-eb"));
  ASSERT_TRUE(run.open_wait.has_value());
  EXPECT_EQ(run.open_wait->name, "approve");
  auto rec = admin->RecordAnswer("run-eb", "approve", true, AnswerOptions{false, "human:eve"});
  ASSERT_TRUE(rec.ok()) << rec.status();
  EXPECT_FALSE(rec->early);
}

TEST_F(StoreWaits, AnswerWithoutOpenWaitIsRefusedWhenEarlyAnswersAreNot) {
  auto store = Store();
  Begin(*store, "run-ne", 1);
  auto admin = Admin();
  auto r = admin->RecordAnswer("run-ne", "approve", true, AnswerOptions{false, "human:x"});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kFailedPrecondition) << r.status();
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.waits"), 0);
  // A run that does not exist at all.
  auto missing = admin->RecordAnswer("no-such-run", "approve", true, AnswerOptions{false, "human:x"});
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound) << missing.status();
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.runs WHERE run_uid = 'no-such-run'"), 0);
  // Wait names are bounded like checkpoint names.
  auto too_long = admin->RecordAnswer("run-ne", std::string(254, 'w'), true, AnswerOptions{true, ""});
  EXPECT_EQ(too_long.status().code(), StatusCode::kInvalidArgument);
  auto empty = admin->RecordAnswer("run-ne", "", true, AnswerOptions{true, ""});
  EXPECT_EQ(empty.status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace flowrun::store_test
