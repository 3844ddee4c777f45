// End to end: what people do to runs in flight, with the real kubectl -
// two answers patched at once, an answer changed after it was recorded,
// kubectl delete and spec.cancel while the agent's pod runs. The controller
// runs as a child process (E2eWorld); answers come from minted users alice
// and bob (client certificates; RBAC: get flowruns, patch flowruns/status),
// so the admission policies of crds/flowrun-policies.yaml apply to them as
// to people.
#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "e2e/e2e_world.h"

namespace flowrun::testing {
namespace {

using nlohmann::json;

// kubeconfigs of two people allowed to answer.
struct Answerers {
  std::string alice, bob;
};

const Answerers& People(E2eWorld& w) {
  static const Answerers* a = [&] {
    w.Kubectl({"create", "role", "answerer", "--verb=get,list,watch,patch", "--resource=flowruns,flowruns/status"});
    w.Kubectl({"create", "rolebinding", "answerer", "--role=answerer", "--user=alice", "--user=bob"});
    return new Answerers{w.cluster->MintUser("alice"), w.cluster->MintUser("bob")};
  }();
  return *a;
}

CommandResult PatchAnswer(E2eWorld& w, const std::string& kubeconfig, const std::string& name,
                          const std::string& answer) {
  return RunCommand({w.cluster->bin_dir() + "/kubectl", "--kubeconfig", kubeconfig, "-n", w.options.ns, "patch",
                     "flowrun", name, "--subresource=status", "--type=merge", "-p",
                     R"({"status":{"answers":{"proceed":)" + answer + "}}}"});
}

std::string RecordedAnswer(E2eWorld& w, const std::string& uid) {
  return w.Psql("SELECT answer::text FROM flowrun.waits WHERE run_uid = '" + uid + "' AND name = 'proceed'");
}

// The answer the resumed attempt's Job names (annotation flowrun.dev/answer).
json JobAnswer(E2eWorld& w, const std::string& job) {
  json j = w.GetJson("job/" + job);
  if (!j.is_object()) return nullptr;
  std::string a = j["metadata"].value("annotations", json::object()).value("flowrun.dev/answer", "");
  return a.empty() ? json(nullptr) : json::parse(a, nullptr, false);
}

std::string Condition(E2eWorld& w, const std::string& name, const std::string& field) {
  return w.Get(name, R"({.status.conditions[?(@.type=="AnswerAccepted")].)" + field + "}");
}

bool HasEvent(E2eWorld& w, const std::string& name, const std::string& reason) {
  return w.Kubectl({"get", "events", "--field-selector", "involvedObject.name=" + name, "-o",
                    "jsonpath={range .items[*]}{.reason}{\"\\n\"}{end}"},
                   true)
             .find(reason) != std::string::npos;
}

// Two people answer the same wait at the same moment, true and false. The
// apiserver serializes the two patches and admission sees the first one's
// result: an answer is final once given (crds/flowrun-policies.yaml,
// flowrun.dev-status-writers), so exactly one person gets 200 and the other
// is refused at kubectl — "already answered" while the run still waits, "has
// no open wait" once it resumed. The accepted answer is the one recorded and
// used (the result says which: "done" for true, "stopped" for false), the
// resumed Job names it and exactly one Job is created for the next attempt.
// (Answers changed later by a cluster admin, whom admission lets through, are
// reported instead: AnswerChangedAfterRecordingIsRefusedOrReported below.)
TEST(E2eInterventions, TwoAnswersAtOnceExactlyOneIsApplied) {
  E2eWorld& w = E2eWorld::Get();
  const Answerers& people = People(w);
  const std::vector<std::string> runs = {"race-1", "race-2", "race-3", "race-4"};
  for (const auto& r : runs) w.ApplyResearchRun(r);
  for (const auto& r : runs) ASSERT_TRUE(w.WaitPhase(r, "Waiting"));

  int already_answered = 0, no_open_wait = 0;
  for (size_t i = 0; i < runs.size(); ++i) {
    const std::string& name = runs[i];
    // Alternate who says what, so neither value is favoured by start order.
    const std::string a_answer = i % 2 ? "false" : "true", b_answer = i % 2 ? "true" : "false";
    std::atomic<int> ready{0};
    CommandResult ra, rb;
    auto go = [&](CommandResult& out, const std::string& kc, const std::string& answer) {
      ready.fetch_add(1);
      while (ready.load() < 2) std::this_thread::yield();
      out = PatchAnswer(w, kc, name, answer);
    };
    std::thread ta(go, std::ref(ra), people.alice, a_answer);
    std::thread tb(go, std::ref(rb), people.bob, b_answer);
    ta.join();
    tb.join();
    ASSERT_NE(ra.ok(), rb.ok()) << "exactly one of two different answers must be accepted\nalice: " << ra.output
                                << "\nbob: " << rb.output;
    const std::string accepted = ra.ok() ? a_answer : b_answer;
    const CommandResult& refused = ra.ok() ? rb : ra;
    if (refused.output.find("already answered") != std::string::npos) {
      ++already_answered;
    } else {
      EXPECT_NE(refused.output.find("has no open wait"), std::string::npos) << refused.output;
      ++no_open_wait;
    }

    ASSERT_TRUE(w.WaitPhase(name, "Succeeded"));
    const std::string uid = w.Uid(name);
    const std::string recorded = RecordedAnswer(w, uid);
    EXPECT_EQ(recorded, accepted);
    // The agent used the recorded answer.
    const std::string result = w.Get(name, "{.status.result}");
    EXPECT_NE(result.find(recorded == "true" ? "\"done\"" : "\"stopped\""), std::string::npos) << result;
    // One Job per attempt; the resumed one names the recorded answer; the
    // condition the controller wrote and status.answers name it too.
    EXPECT_EQ(w.JobsOf(name), (std::vector<std::string>{name + "-a1 1", name + "-a2 2"}));
    EXPECT_EQ(JobAnswer(w, name + "-a2"), json({{"wait", "proceed"}, {"answer", json::parse(recorded)}}));
    EXPECT_EQ(w.Psql("SELECT count(*) FROM flowrun.waits WHERE run_uid = '" + uid + "'"), "1");
    EXPECT_EQ(w.Get(name, "{.status.answers.proceed}"), recorded);
    EXPECT_EQ(Condition(w, name, "reason"), "Accepted");
    EXPECT_NE(Condition(w, name, "message").find("accepted: " + recorded), std::string::npos);
  }
  std::cerr << "refusals: " << already_answered << " already answered, " << no_open_wait << " after the run resumed\n";
  // Each run researched once and analysed at most once.
  json stats = w.llm->Stats();
  for (const auto& r : runs) EXPECT_EQ(CountPromptsStartingWith(stats, "Research the topic '" + r + "'"), 1);
}

// An answer changed after the run resumed: a person is refused at kubectl
// (no open wait); a cluster admin's change (no policy applies to them) is
// not applied but reported, and goes away when status.answers agrees again.
TEST(E2eInterventions, AnswerChangedAfterRecordingIsRefusedOrReported) {
  E2eWorld& w = E2eWorld::Get();
  const Answerers& people = People(w);
  const std::string name = "late-1";
  w.ApplyResearchRun(name);
  ASSERT_TRUE(w.WaitPhase(name, "Waiting"));
  ASSERT_TRUE(PatchAnswer(w, people.alice, name, "true").ok());
  ASSERT_TRUE(w.WaitPhase(name, "Succeeded"));
  const std::string uid = w.Uid(name);

  CommandResult bob = PatchAnswer(w, people.bob, name, "false");
  EXPECT_FALSE(bob.ok());
  EXPECT_NE(bob.output.find("has no open wait"), std::string::npos) << bob.output;

  w.Answer(name, "proceed", "false");  // the admin
  auto r = w.KubectlResult({"wait", "--timeout=60s", "flowrun/" + name,
                            R"(--for=jsonpath={.status.conditions[?(@.type=="AnswerAccepted")].reason}=AnswerAlreadyRecorded)"});
  ASSERT_TRUE(r.ok()) << r.output << w.Diagnostics(name);
  EXPECT_NE(Condition(w, name, "message").find("'proceed' was answered true"), std::string::npos);
  EXPECT_TRUE(HasEvent(w, name, "AnswerAlreadyRecorded"));
  EXPECT_EQ(RecordedAnswer(w, uid), "true");
  EXPECT_EQ(w.JobsOf(name), (std::vector<std::string>{name + "-a1 1", name + "-a2 2"}));
  EXPECT_EQ(w.Get(name, "{.status.phase}"), "Succeeded");

  w.Answer(name, "proceed", "true");
  auto ok = w.KubectlResult({"wait", "--timeout=60s", "flowrun/" + name,
                             R"(--for=jsonpath={.status.conditions[?(@.type=="AnswerAccepted")].reason}=Accepted)"});
  EXPECT_TRUE(ok.ok()) << ok.output << w.Diagnostics(name);
}

// A test-agent run whose pod is running: 8 slow steps.
void StartSlowRun(E2eWorld& w, const std::string& name) {
  w.ApplyTestAgentRun(name, R"({"scenario": "chain", "steps": 8, "sleep_ms": 500, "prefix": ")" + name + "\"}");
  ASSERT_TRUE(w.WaitPhase(name, "Running", "120s"));
  // The pod's container runs and has written to the database.
  ASSERT_TRUE(Eventually(
      [&] {
        return w.Psql("SELECT count(*) FROM flowrun.checkpoints WHERE run_uid = '" + w.Uid(name) + "'") != "0";
      },
      std::chrono::seconds(60)))
      << w.Diagnostics(name);
  ASSERT_EQ(Trim(w.Kubectl({"get", "pods", "-l", "flowrun.dev/run=" + name, "-o",
                            "jsonpath={.items[*].status.phase}"})),
            "Running");
}

int RowsOf(E2eWorld& w, const std::string& uid) {
  int n = 0;
  for (const char* table : {"runs", "checkpoints", "waits"})
    n += std::stoi(w.Psql(std::string("SELECT count(*) FROM flowrun.") + table + " WHERE run_uid = '" + uid + "'"));
  return n;
}

// No Job and no pod of the run is left (waits up to 90 s: pods terminate).
bool NoneLeft(E2eWorld& w, const std::string& name) {
  return Eventually(
      [&] { return Trim(w.Kubectl({"get", "jobs,pods", "-l", "flowrun.dev/run=" + name, "-o", "name"})).empty(); },
      std::chrono::seconds(90));
}

// kubectl delete of a Running FlowRun: its Jobs, its pods and its rows go.
TEST(E2eInterventions, DeletionWhileRunning) {
  E2eWorld& w = E2eWorld::Get();
  const std::string name = "delete-mid";
  StartSlowRun(w, name);
  const std::string uid = w.Uid(name);
  ASSERT_GT(RowsOf(w, uid), 0);

  w.Kubectl({"delete", "flowrun", name, "--timeout=60s"});
  EXPECT_FALSE(w.KubectlResult({"get", "flowrun", name}).ok());
  EXPECT_TRUE(NoneLeft(w, name)) << Trim(w.Kubectl({"get", "jobs,pods", "-l", "flowrun.dev/run=" + name}));
  EXPECT_EQ(RowsOf(w, uid), 0);
}

// spec.cancel on a Running FlowRun: the pod and Job are cleaned up, the
// phase is Cancelled, the database says cancelled (the agent is fenced).
TEST(E2eInterventions, CancellationWhileRunning) {
  E2eWorld& w = E2eWorld::Get();
  // With a metrics server: its reconcile counter shows when the controller
  // has looked at the cancelled run again.
  w.StartController({.args = {"--metrics-addr", "127.0.0.1:0"}});
  const std::string name = "cancel-mid";
  StartSlowRun(w, name);
  const std::string uid = w.Uid(name);

  w.Kubectl({"patch", "flowrun", name, "--type=merge", "-p", R"({"spec":{"cancel":true}})"});
  ASSERT_TRUE(w.WaitPhase(name, "Cancelled", "60s"));
  EXPECT_TRUE(NoneLeft(w, name)) << Trim(w.Kubectl({"get", "jobs,pods", "-l", "flowrun.dev/run=" + name}));
  EXPECT_EQ(w.Psql("SELECT status FROM flowrun.runs WHERE run_uid = '" + uid + "'"), "cancelled");
  EXPECT_EQ(w.Get(name, "{.status.currentJob}"), "");
  EXPECT_EQ(w.Get(name, "{.status.attempts[-1].outcome}"), "cancelled");
  // Nothing restarts it: poke the object (an annotation, so an update event)
  // and assert once the controller has reconciled it.
  const int64_t reconciles = ReconcileTotal(*w.controller());
  ASSERT_GE(reconciles, 0) << "no metrics server";
  w.Kubectl({"annotate", "flowrun", name, "e2e.flowrun.dev/poke=1"});
  ASSERT_TRUE(Eventually([&] { return ReconcileTotal(*w.controller()) > reconciles; }, std::chrono::seconds(60)))
      << "the controller never reconciled the cancelled run again";
  EXPECT_EQ(w.Get(name, "{.status.phase}"), "Cancelled");
  EXPECT_EQ(Trim(w.Kubectl({"get", "jobs,pods", "-l", "flowrun.dev/run=" + name, "-o", "name"})), "");
}

}  // namespace
}  // namespace flowrun::testing
