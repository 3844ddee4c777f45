// Wait deadlines: RunAdmin::ExpireWait applies the timeout policy at the
// `now` it is given, and the next ResolveWait applies a passed deadline.
//
// No test sleeps past a deadline. The deadlines are an hour away, so nothing
// can expire early on a slow machine; ExpireWait is then given a `now` past
// them (its seam), and the store side, which compares with PostgreSQL's own
// now(), sees the deadline moved into the past (PassDeadlines).
#include "store_fixture.h"

namespace flowrun::store_test {
namespace {

class StoreWaitDeadlines : public StoreTest {
 protected:
  // An hour: far enough that no test sees it pass on its own.
  static constexpr seconds kTimeout{3600};
  // A `now` for ExpireWait that is past every deadline these tests set.
  static TimePoint AfterTheDeadline() { return std::chrono::system_clock::now() + 2 * kTimeout; }
  // Makes the run's open deadlines lie in the past, as the passing of time
  // would: ResolveWait compares them with the database's now(), which has no
  // clock seam. Returns how many deadlines moved.
  int64_t PassDeadlines(const std::string& uid) const {
    return Count("WITH moved AS (UPDATE flowrun.waits SET deadline = now() - interval '1 second'"
                 " WHERE run_uid = $1 AND deadline IS NOT NULL RETURNING 1) SELECT count(*) FROM moved",
                 uid);
  }
};

TEST_F(StoreWaitDeadlines, ExpiredWaitWithDefaultPolicyIsAnsweredWithTheDefault) {
  WaitRequest req = MakeWait("approve", kString, kTimeout, OnTimeout::kUseDefault, json("fallback"));
  ASSERT_NO_FATAL_FAILURE(LeaveWaiting("run-t", req));
  auto admin = Admin();
  EXPECT_EQ(Must(admin->ExpireWait("run-t", std::chrono::system_clock::now())), RunAdmin::WaitExpiry::kNotDue);
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.waits WHERE answer IS NULL"), 1);  // not due: nothing written
  EXPECT_EQ(Must(admin->ExpireWait("run-t", AfterTheDeadline())), RunAdmin::WaitExpiry::kDefaultAnswered);
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.waits WHERE answer = '\"fallback\"'::jsonb"
                  " AND answered_by = 'timeout-default'"),
            1);
  EXPECT_FALSE(Must(admin->GetRun("run-t")).open_wait.has_value());

  auto next = Store();
  Begin(*next, "run-t", 2);
  WaitResolution res = Must(next->ResolveWait(req));
  EXPECT_EQ(res.kind, WaitResolution::Kind::kAnswered);
  EXPECT_EQ(res.answer, json("fallback"));
  EXPECT_EQ(res.answered_by, "timeout-default");
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.checkpoints WHERE kind = 'wait' AND status = 'completed'"
                  " AND output = '\"fallback\"'::jsonb"),
            1);
}

TEST_F(StoreWaitDeadlines, ExpiredWaitWithFailPolicyFailsTheRun) {
  auto store = Store();
  Begin(*store, "run-tf", 1);
  ASSERT_EQ(Must(store->ResolveWait(MakeWait("approve", kBool, kTimeout, OnTimeout::kFail))).kind,
            WaitResolution::Kind::kPending);
  auto admin = Admin();
  EXPECT_EQ(Must(admin->ExpireWait("run-tf", std::chrono::system_clock::now())), RunAdmin::WaitExpiry::kNotDue);
  EXPECT_EQ(Must(admin->GetRun("run-tf")).status, RunStatus::kRunning);
  EXPECT_EQ(Must(admin->ExpireWait("run-tf", AfterTheDeadline())), RunAdmin::WaitExpiry::kRunFailed);
  RunState run = Must(admin->GetRun("run-tf"));
  EXPECT_EQ(run.status, RunStatus::kFailed);
  EXPECT_EQ(run.failure_reason, FailureReason::kWaitTimedOut);
  EXPECT_CONTAINS(run.error, "approve");
  // The failed run takes no answer, and its execution is fenced.
  auto answer = admin->RecordAnswer("run-tf", "approve", true, AnswerOptions{false, "human:late"});
  EXPECT_EQ(answer.status().code(), StatusCode::kFailedPrecondition) << answer.status();
  FinishRequest f;
  f.outcome = OutcomeKind::kWaiting;
  EXPECT_EQ(store->Finish(f).code(), StatusCode::kAborted);
  EXPECT_EQ(Must(admin->GetRun("run-tf")).status, RunStatus::kFailed);
}

// RunState.open_wait is "the open question of a waiting run". A run whose
// wait timed out with the fail policy is failed and refuses answers
// (kFailedPrecondition), so it must not show that wait as open.
TEST_F(StoreWaitDeadlines, RunFailedByWaitTimeoutShowsNoOpenWait) {
  auto store = Store();
  Begin(*store, "run-to", 1);
  ASSERT_EQ(Must(store->ResolveWait(MakeWait("approve", kBool, kTimeout, OnTimeout::kFail))).kind,
            WaitResolution::Kind::kPending);
  auto admin = Admin();
  ASSERT_EQ(Must(admin->ExpireWait("run-to", AfterTheDeadline())), RunAdmin::WaitExpiry::kRunFailed);
  RunState run = Must(admin->GetRun("run-to"));
  EXPECT_EQ(run.status, RunStatus::kFailed);
  EXPECT_FALSE(run.open_wait.has_value()) << "failed run still shows open wait '" << run.open_wait->name << "'";
}

TEST_F(StoreWaitDeadlines, ResolveWaitAppliesAnExpiredDeadlineItself) {
  auto store = Store();
  Begin(*store, "run-td", 1);
  WaitRequest fail = MakeWait("fail-wait", kBool, kTimeout, OnTimeout::kFail);
  WaitRequest dflt = MakeWait("default-wait", kBool, kTimeout, OnTimeout::kUseDefault, json(true));
  ASSERT_EQ(Must(store->ResolveWait(fail)).kind, WaitResolution::Kind::kPending);
  ASSERT_EQ(Must(store->ResolveWait(dflt)).kind, WaitResolution::Kind::kPending);
  // Asked again before the deadline: still pending.
  auto early = Store();
  Begin(*early, "run-td", 2);
  ASSERT_EQ(Must(early->ResolveWait(fail)).kind, WaitResolution::Kind::kPending);
  ASSERT_EQ(Must(early->ResolveWait(dflt)).kind, WaitResolution::Kind::kPending);
  ASSERT_EQ(PassDeadlines("run-td"), 2);
  auto next = Store();
  Begin(*next, "run-td", 3);
  EXPECT_EQ(Must(next->ResolveWait(fail)).kind, WaitResolution::Kind::kTimedOutFail);
  WaitResolution d = Must(next->ResolveWait(dflt));
  EXPECT_EQ(d.kind, WaitResolution::Kind::kAnswered);
  EXPECT_EQ(d.answer, json(true));
  EXPECT_EQ(d.answered_by, "timeout-default");
}

}  // namespace
}  // namespace flowrun::store_test
