// The answer's write and verdict: which wait is open, the JSON patch that
// replaces an answer whole, the controller's verdict, refusals explained.
#include <gtest/gtest.h>

#include "flowrun/plugin/answer_write.h"

namespace flowrun::plugin {
namespace {

using nlohmann::json;

json Waiting(json answers = nullptr, json conditions = json::array()) {
  json fr = {{"metadata", {{"name", "r1"}, {"namespace", "team-a"}}},
             {"spec", json::object()},
             {"status",
              {{"phase", "Waiting"},
               {"attempt", 1},
               {"wait",
                {{"name", "review"},
                 {"question", "Review?"},
                 {"schema", {{"type", "object"}}},
                 {"askedAt", "2026-12-03T10:00:00Z"}}},
               {"conditions", conditions}}}};
  if (!answers.is_null()) fr["status"]["answers"] = answers;
  return fr;
}

json Cond(const std::string& status, const std::string& reason, const std::string& message,
          const std::string& t = "2026-12-03T10:01:00Z") {
  return {{"type", "AnswerAccepted"}, {"status", status}, {"reason", reason}, {"message", message},
          {"lastTransitionTime", t}};
}

TEST(OpenWaitOf, TheOpenQuestion) {
  auto w = OpenWaitOf(Waiting(), "");
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(w->name, "review");
  EXPECT_EQ(w->question, "Review?");
  EXPECT_EQ(w->schema, json({{"type", "object"}}));
  EXPECT_FALSE(w->previous_rejected);
  EXPECT_TRUE(OpenWaitOf(Waiting(), "review").ok());
}

TEST(OpenWaitOf, NotWaitingAnotherWaitOrAlreadyAnswered) {
  json running = Waiting();
  running["status"]["phase"] = "Running";
  running["status"]["message"] = "attempt 2 runs";
  auto a = OpenWaitOf(running, "");
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(a.status().message(), "FlowRun r1 is not waiting for an answer (phase Running: attempt 2 runs)");
  auto b = OpenWaitOf(Waiting(), "proceed");
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().message(), "FlowRun r1 waits for 'review', not 'proceed' (people may answer only the open wait)");
  auto c = OpenWaitOf(Waiting({{"review", {{"ok", true}}}}), "");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("'review' was already answered ({\"ok\":true})"), std::string::npos);
}

TEST(OpenWaitOf, ARejectedAnswerMayBeReplaced) {
  json fr = Waiting({{"review", {{"ok", true}, {"extra", 1}}}},
                    json::array({Cond("False", "InvalidAnswer", "the answer to 'review' does not match its schema: x")}));
  auto w = OpenWaitOf(fr, "");
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_TRUE(w->previous_rejected);
  EXPECT_EQ(w->previous, json({{"ok", true}, {"extra", 1}}));
  // A rejection of another wait does not open this one.
  json other = Waiting({{"review", 1}}, json::array({Cond("False", "InvalidAnswer", "the answer to 'proceed' ...")}));
  EXPECT_FALSE(OpenWaitOf(other, "").ok());
}

TEST(AnswerPatch, ReplacesTheWholeValueAndCreatesAnswersWhenAbsent) {
  EXPECT_EQ(AnswerPatch(Waiting(), "review", {{"ok", true}}),
            json::parse(R"([{"op":"add","path":"/status/answers","value":{"review":{"ok":true}}}])"));
  // status.answers exists: "add" of the member replaces a rejected answer whole (no merge: "extra" goes).
  EXPECT_EQ(AnswerPatch(Waiting({{"review", {{"ok", true}, {"extra", 1}}}}), "review", {{"ok", true}}),
            json::parse(R"([{"op":"add","path":"/status/answers/review","value":{"ok":true}}])"));
  // Keys are JSON-pointer escaped; null answers are expressible (a merge patch would delete).
  EXPECT_EQ(AnswerPatch(Waiting(json::object()), "a/b~c#2", nullptr),
            json::parse(R"([{"op":"add","path":"/status/answers/a~1b~0c#2","value":null}])"));
  EXPECT_EQ(PointerToken("~/"), "~0~1");
}

TEST(AnswerProgress, AcceptedNamesTheResumedJob) {
  auto before = AnswerCondition(Waiting());
  EXPECT_FALSE(before.has_value());
  json fr = Waiting({{"review", 1}}, json::array({Cond("True", "Accepted", "the answer to 'review' was accepted: 1")}));
  fr["status"]["phase"] = "Running";
  fr["status"]["attempt"] = 2;
  fr["status"]["currentJob"] = "r1-a2";
  fr["status"].erase("wait");
  Progress p = AnswerProgress(fr, "review", before);
  EXPECT_EQ(p.kind, Progress::kAccepted);
  EXPECT_EQ(p.job, "r1-a2");
  EXPECT_EQ(p.attempt, 2);
  EXPECT_EQ(p.message, "the answer to 'review' was accepted: 1");
  // Finished before we looked: the newest attempt names the Job.
  fr["status"]["phase"] = "Succeeded";
  fr["status"].erase("currentJob");
  fr["status"]["attempts"] = json::array({{{"attempt", 1}, {"job", "r1-a1"}}, {{"attempt", 2}, {"job", "r1-a2"}}});
  Progress done = AnswerProgress(fr, "review", before);
  EXPECT_EQ(done.kind, Progress::kAccepted);
  EXPECT_EQ(done.job, "r1-a2");
  EXPECT_EQ(done.attempt, 2);
}

TEST(AnswerProgress, AnOldVerdictIsNotTheNewOne) {
  // Before the write: the earlier answer's rejection. Unchanged → still pending.
  json cond = Cond("False", "InvalidAnswer", "the answer to 'review' does not match its schema: /extra");
  json fr = Waiting({{"review", 1}}, json::array({cond}));
  auto before = AnswerCondition(fr);
  EXPECT_EQ(AnswerProgress(fr, "review", before).kind, Progress::kPending);
  // A new rejection (another message) is the verdict on the new answer.
  json again = Waiting({{"review", 2}}, json::array({Cond("False", "InvalidAnswer", "the answer to 'review' does not match its schema: /score")}));
  Progress p = AnswerProgress(again, "review", before);
  EXPECT_EQ(p.kind, Progress::kRejected);
  EXPECT_EQ(p.reason, "InvalidAnswer");
  // A previous wait's acceptance does not count for this one.
  json prev = Waiting(nullptr, json::array({Cond("True", "Accepted", "the answer to 'proceed' was accepted: true")}));
  EXPECT_EQ(AnswerProgress(prev, "review", std::nullopt).kind, Progress::kPending);
  // A run that fails meanwhile ends the wait for a verdict.
  json failed = Waiting();
  failed["status"]["phase"] = "Failed";
  failed["status"]["message"] = "wait timed out";
  EXPECT_EQ(AnswerProgress(failed, "review", std::nullopt).kind, Progress::kRejected);
}

TEST(WhoMayAnswer, ApproversAbsentListedOrEmpty) {
  json fr = Waiting();
  EXPECT_EQ(WhoMayAnswer(fr), "anyone RBAC allows to patch flowruns/status");
  fr["spec"]["approvers"] = {{"users", {"alice", "bob"}}, {"groups", {"leads"}}};
  EXPECT_EQ(WhoMayAnswer(fr), "alice and bob and members of leads");
  fr["spec"]["approvers"] = {{"users", {"alice", "bob", "carol"}}};
  EXPECT_EQ(WhoMayAnswer(fr), "alice, bob and carol");
  fr["spec"]["approvers"] = {{"groups", {"leads"}}};
  EXPECT_EQ(WhoMayAnswer(fr), "members of leads");
  fr["spec"]["approvers"] = json::object();
  EXPECT_NE(WhoMayAnswer(fr).find("nobody"), std::string::npos);
}

TEST(ExplainRefusal, TheAdmissionPolicysOwnWordsAndWhoMayAnswer) {
  json fr = Waiting();
  fr["spec"]["approvers"] = {{"users", {"alice"}}};
  std::string msg =
      "PATCH /apis/flowrun.dev/v1alpha1/namespaces/team-a/flowruns/r1/status: HTTP 403 Forbidden: "
      "flowruns.flowrun.dev \"r1\" is forbidden: ValidatingAdmissionPolicy 'flowrun.dev-answers' with binding "
      "'flowrun.dev-answers' denied request: bob may not answer the waits of FlowRun r1: only the users and groups "
      "in its spec.approvers may";
  std::string e = ExplainRefusal(403, msg, fr);
  EXPECT_EQ(e,
            "bob may not answer the waits of FlowRun r1: only the users and groups in its spec.approvers may\n"
            "(refused by the admission policy flowrun.dev-answers)\n"
            "who may answer: alice");
  std::string rbac = ExplainRefusal(
      403, "PATCH /x: HTTP 403 Forbidden: flowruns.flowrun.dev \"r1\" is forbidden: User \"eve\" cannot patch resource",
      fr);
  EXPECT_NE(rbac.find("User \"eve\" cannot patch"), std::string::npos);
  EXPECT_NE(rbac.find("flowrun-approver"), std::string::npos);
}

}  // namespace
}  // namespace flowrun::plugin
