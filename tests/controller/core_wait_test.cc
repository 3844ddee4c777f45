// The core: waiting, answers (write-once, validated, who answered) and wait deadlines.
#include "core_world.h"

using namespace core_test;

namespace {

// ---------------------------------------------------------------------------
// Waiting and answers

TEST(Waiting, StatusShowsTheQuestionAndNothingHappensWithoutAnAnswer) {
  World w = WaitingWorld();
  const json& wait = w.status()["wait"];
  EXPECT_EQ(wait["name"], "proceed");
  EXPECT_EQ(wait["question"], "Research complete. Proceed?");
  EXPECT_EQ(wait["schema"], json({{"type", "boolean"}}));
  EXPECT_EQ(wait["askedAt"], Ts(100));
  EXPECT_EQ(wait["onTimeout"], "fail");
  EXPECT_FALSE(wait.contains("deadline"));
  EXPECT_EQ(w.status().value("currentJob", ""), "");
  w.now = At(100000);
  EXPECT_TRUE(w.Reconcile().actions.empty()) << w.Reconcile().Describe();
}

TEST(Waiting, ValidAnswerIsRecordedThenANewAttemptResumes) {
  World w = WaitingWorld();
  w.now = At(200);
  Answer(w, "proceed", true);
  auto r = w.Step();
  ASSERT_EQ(w.recorded.size(), 1u) << r.Describe();
  EXPECT_EQ(w.recorded[0].wait, "proceed");
  EXPECT_EQ(w.recorded[0].answer, json(true));
  EXPECT_EQ(w.recorded[0].answered_by, "kubernetes:kubectl-patch");
  // Order: the answer is in the database before the Job that reads it starts.
  size_t record_at = SIZE_MAX, create_at = SIZE_MAX, patch_at = SIZE_MAX;
  for (size_t i = 0; i < r.actions.size(); ++i) {
    if (std::holds_alternative<fc::RecordAnswer>(r.actions[i])) record_at = i;
    if (std::holds_alternative<fc::CreateJob>(r.actions[i])) create_at = i;
    if (std::holds_alternative<fc::PatchStatus>(r.actions[i])) patch_at = i;
  }
  EXPECT_LT(record_at, create_at);
  EXPECT_LT(create_at, patch_at);
  EXPECT_EQ(r.Find<fc::CreateJob>()->attempt, 2);
  EXPECT_EQ(w.phase(), "Resuming");
  EXPECT_FALSE(w.status().contains("wait"));
  EXPECT_EQ(w.status()["answers"]["proceed"], true) << "answers stay as people wrote them";
  EXPECT_EQ((*w.condition("AnswerAccepted"))["status"], "True");
  EXPECT_TRUE(HasEvent(r, "Normal", "Accepted"));
  // The resumed pod runs: Running; then it succeeds.
  w.now = At(210);
  PodRunning(w.pod(2), 210);
  w.run->status = flowrun::RunStatus::kRunning;
  w.run->attempt = 2;
  w.Step();
  EXPECT_EQ(w.phase(), "Running");
  w.now = At(300);
  w.Finish(2, Message("succeeded", 2), 0, 300);
  w.Step();
  EXPECT_EQ(w.phase(), "Succeeded");
  EXPECT_EQ(w.recorded.size(), 1u);
}

TEST(Waiting, InvalidAnswerKeepsWaitingAndWarnsOnce) {
  World w = WaitingWorld();
  w.now = At(200);
  Answer(w, "proceed", "yes please");
  auto r = w.Step();
  EXPECT_EQ(Count<fc::RecordAnswer>(r), 0u) << r.Describe();
  EXPECT_EQ(Count<fc::CreateJob>(r), 0u);
  EXPECT_EQ(w.phase(), "Waiting");
  const json* c = w.condition("AnswerAccepted");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ((*c)["status"], "False");
  EXPECT_EQ((*c)["reason"], "InvalidAnswer");
  EXPECT_NE((*c)["message"].get<std::string>().find("does not match its schema"), std::string::npos) << *c;
  // The admission policy flowrun.dev-status-writers lets a person replace an
  // answer only when this condition's message starts so (crds/flowrun-policies.yaml).
  EXPECT_EQ((*c)["message"].get<std::string>().rfind("the answer to 'proceed'", 0), 0u) << *c;
  EXPECT_NE(w.status()["message"].get<std::string>().find("does not match its schema"), std::string::npos);
  EXPECT_TRUE(HasEvent(r, "Warning", "InvalidAnswer"));
  // A corrected answer is accepted; the condition flips.
  w.now = At(300);
  Answer(w, "proceed", false);
  auto r2 = w.Step();
  EXPECT_EQ(Count<fc::RecordAnswer>(r2), 1u) << r2.Describe();
  EXPECT_EQ((*w.condition("AnswerAccepted"))["reason"], "Accepted");
  EXPECT_EQ((*w.condition("AnswerAccepted"))["lastTransitionTime"], Ts(300));
}

TEST(Waiting, AnswerForAnotherWaitIsFlaggedAndKept) {
  World w = WaitingWorld();
  w.now = At(200);
  Answer(w, "procede", true);
  auto r = w.Step();
  EXPECT_EQ(Count<fc::RecordAnswer>(r), 0u);
  EXPECT_EQ(w.phase(), "Waiting");
  EXPECT_EQ((*w.condition("AnswerAccepted"))["reason"], "UnknownWait");
  EXPECT_TRUE(HasEvent(r, "Warning", "UnknownWait"));
  EXPECT_EQ(w.status()["answers"]["procede"], true);
}

// Answers are write-once: the resumed attempt's Job names the recorded
// answer; a later (or concurrent) change of status.answers is not applied -
// no second record, no new Job - and is reported until it agrees again.
TEST(Waiting, AnswerChangedAfterItWasRecordedIsReportedNotApplied) {
  World w = WaitingWorld();
  w.now = At(200);
  Answer(w, "proceed", true);
  auto r = w.Step();
  ASSERT_EQ(Count<fc::CreateJob>(r), 1u) << r.Describe();
  EXPECT_EQ(json::parse(r.Find<fc::CreateJob>()->job["metadata"]["annotations"]["flowrun.dev/answer"].get<std::string>()),
            json({{"wait", "proceed"}, {"answer", true}}));
  EXPECT_NE((*w.condition("AnswerAccepted"))["message"].get<std::string>().find("accepted: true"), std::string::npos);

  w.now = At(201);
  Answer(w, "proceed", false);
  auto r2 = w.Step();
  EXPECT_EQ(Count<fc::RecordAnswer>(r2), 0u) << r2.Describe();
  EXPECT_EQ(Count<fc::CreateJob>(r2), 0u) << r2.Describe();
  EXPECT_EQ(w.recorded.size(), 1u);
  EXPECT_EQ(w.phase(), "Resuming");
  const json* c = w.condition("AnswerAccepted");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ((*c)["status"], "False");
  EXPECT_EQ((*c)["reason"], "AnswerAlreadyRecorded");
  EXPECT_NE((*c)["message"].get<std::string>().find("'proceed' was answered true"), std::string::npos) << *c;
  EXPECT_NE((*c)["message"].get<std::string>().find("now has false"), std::string::npos) << *c;
  EXPECT_TRUE(HasEvent(r2, "Warning", "AnswerAlreadyRecorded"));
  EXPECT_TRUE(w.Reconcile().actions.empty() || Count<fc::Event>(w.Reconcile()) == 0u) << "reported once";

  // Still reported after the run finished; agreeing again clears it.
  w.now = At(210);
  w.Finish(2, Message("succeeded", 2), 0, 210);
  w.run->status = flowrun::RunStatus::kSucceeded;
  w.Step();
  EXPECT_EQ(w.phase(), "Succeeded");
  EXPECT_EQ((*w.condition("AnswerAccepted"))["reason"], "AnswerAlreadyRecorded");
  Answer(w, "proceed", true);
  auto r3 = w.Step();
  EXPECT_EQ((*w.condition("AnswerAccepted"))["reason"], "Accepted") << r3.Describe();
  EXPECT_EQ(w.recorded.size(), 1u);
}

// The database has the answer already (an earlier reconcile recorded it and
// failed before its status patch, or flowrunctl answered): status.answers is
// not recorded over it; the run resumes with the database's answer.
TEST(Waiting, AnswerAlreadyInTheDatabaseIsNotRecordedAgain) {
  World w = WaitingWorld();
  w.now = At(200);
  w.run->open_wait.reset();  // answered in the database
  Answer(w, "proceed", false);
  auto r = w.Step();
  EXPECT_EQ(Count<fc::RecordAnswer>(r), 0u) << r.Describe();
  ASSERT_EQ(Count<fc::CreateJob>(r), 1u) << r.Describe();
  EXPECT_FALSE(r.Find<fc::CreateJob>()->job["metadata"].contains("annotations")) << "its answer is not known here";
  EXPECT_EQ(w.phase(), "Resuming");
  EXPECT_FALSE(HasEvent(r, "Warning", "UnknownWait"));
}

TEST(Waiting, SchemaTooBigForTheMessageComesFromTheDatabase) {
  World w = RunningWorld();
  w.now = At(100);
  w.Finish(1, Message("waiting", 1, [](auto& o) { o.wait->schema = json::object(); }), 0, 100);
  // The termination message dropped the schema; the database has it.
  json msg = json::parse(Message("waiting", 1));
  msg["wait"].erase("schema");
  msg["truncated"] = true;
  w.pod(1)["status"]["containerStatuses"][0]["state"]["terminated"]["message"] = msg.dump();
  w.run->status = flowrun::RunStatus::kWaiting;
  w.run->open_wait = MakeWait("proceed");
  w.run->open_wait->schema = {{"type", "integer"}, {"minimum", 1}};
  w.Step();
  EXPECT_EQ(w.status()["wait"]["schema"]["type"], "integer");
  w.now = At(150);
  Answer(w, "proceed", 0);
  auto r = w.Step();
  EXPECT_EQ(Count<fc::RecordAnswer>(r), 0u) << r.Describe();
  Answer(w, "proceed", 3);
  auto r2 = w.Step();
  EXPECT_EQ(Count<fc::RecordAnswer>(r2), 1u) << r2.Describe();
}

TEST(Waiting, RepeatedWaitNeedsAFreshAnswer) {
  World w = WaitingWorld();
  w.now = At(200);
  Answer(w, "proceed", true);
  w.Step();
  w.now = At(210);
  PodRunning(w.pod(2), 210);
  w.Step();
  // The flow loops and asks "proceed" again (occurrence 2).
  w.now = At(300);
  w.Finish(2, Message("waiting", 2, [](auto& o) { o.wait = MakeWait("proceed", 2); }), 0, 300);
  w.run->status = flowrun::RunStatus::kWaiting;
  w.run->open_wait = MakeWait("proceed", 2);
  auto r = w.Step();
  EXPECT_EQ(w.phase(), "Waiting");
  EXPECT_EQ(w.status()["wait"]["name"], "proceed#2");
  EXPECT_EQ(Count<fc::RecordAnswer>(r), 0u) << "the first answer is not reused\n" << r.Describe();
  EXPECT_FALSE(HasEvent(r, "Warning", "UnknownWait")) << "a consumed answer is not unknown\n" << r.Describe();
  Answer(w, "proceed#2", false);
  w.now = At(400);
  auto r2 = w.Step();
  ASSERT_EQ(w.recorded.size(), 2u) << r2.Describe();
  EXPECT_EQ(w.recorded[1].wait, "proceed");
  EXPECT_EQ(w.recorded[1].answer, json(false));
  EXPECT_EQ(r2.Find<fc::CreateJob>()->attempt, 3);
}

TEST(Waiting, AnsweredOutsideKubernetesResumes) {
  World w = WaitingWorld();
  w.now = At(200);
  w.run->open_wait.reset();  // flowrunctl answer
  auto r = w.Step();
  ASSERT_NE(r.Find<fc::CreateJob>(), nullptr) << r.Describe();
  EXPECT_EQ(Count<fc::RecordAnswer>(r), 0u);
  EXPECT_EQ(w.phase(), "Resuming");
}

TEST(Waiting, DeadlineAheadRequeuesAtTheDeadline) {
  World w = WaitingWorld(1000);
  EXPECT_EQ(w.status()["wait"]["deadline"], Ts(1000));
  w.now = At(400);
  auto r = w.Reconcile();
  ASSERT_EQ(r.actions.size(), 1u) << r.Describe();
  EXPECT_EQ(r.Find<fc::RequeueAfter>()->after, milliseconds(600000));
}

TEST(Waiting, DeadlineUnderFailPolicyFailsTheRun) {
  World w = WaitingWorld(1000);
  w.now = At(1000);
  auto r = w.Step();
  ASSERT_NE(r.Find<fc::ExpireWait>(), nullptr) << r.Describe();
  EXPECT_EQ(w.phase(), "Waiting");
  // The adapter re-reconciles (RequeueAfter) and reads the database.
  auto r2 = w.Step();
  EXPECT_EQ(w.phase(), "Failed") << r2.Describe();
  EXPECT_TRUE(HasEvent(r2, "Warning", "Failed"));
  EXPECT_EQ((*w.condition("Succeeded"))["reason"], "WaitTimedOut");
  EXPECT_EQ(Count<fc::CreateJob>(w.Reconcile()), 0u);
}

TEST(Waiting, DeadlineUnderDefaultPolicyResumes) {
  World w = WaitingWorld(1000, flowrun::OnTimeout::kUseDefault);
  w.now = At(1001);
  auto r = w.Reconcile();
  ASSERT_NE(r.Find<fc::ExpireWait>(), nullptr) << r.Describe();
  EXPECT_EQ(r.Find<fc::RequeueAfter>()->after, milliseconds(1000));
  w.Apply(r);
  auto r2 = w.Step();
  ASSERT_NE(r2.Find<fc::CreateJob>(), nullptr) << r2.Describe();
  EXPECT_EQ(w.phase(), "Resuming");
  EXPECT_TRUE(HasEvent(r2, "Normal", "WaitTimedOut")) << r2.Describe();
}

TEST(Waiting, ValidAnswerBeatsAPassedDeadline) {
  World w = WaitingWorld(1000);
  w.now = At(1500);
  Answer(w, "proceed", true);
  auto r = w.Step();
  EXPECT_EQ(Count<fc::ExpireWait>(r), 0u) << r.Describe();
  EXPECT_EQ(Count<fc::RecordAnswer>(r), 1u);
}

}  // namespace
