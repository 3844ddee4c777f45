// kubectl-flowrun on the real control plane: the real binary, the real
// flowrun-controller (E2eWorld), the CRD with its admission policies, and
// minted users (client certificates) — so every write goes through RBAC and
// the policies as the person's own, exactly as with kubectl.
//
//   ctest -L plugin
//
// alice and bob may get/list/watch flowruns, patch flowruns and
// flowruns/status and list events (an approver's and author's rights); eve
// has no rights at all. Runs: the research agent (a boolean wait
// 'proceed') and plugin_review_agent (an object wait 'review' with a schema:
// approve boolean, score integer 1..5, comment string ≤ 200, nothing else).
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "e2e/e2e_world.h"
#include "plugin_runner.h"

namespace flowrun::testing {
namespace {

using nlohmann::json;
using Result = PluginResult;

struct People {
  std::string alice, bob, eve;
};

const People& Users(E2eWorld& w) {
  static const People* p = [&] {
    w.Kubectl({"create", "role", "flowrun-person", "--verb=get,list,watch,patch",
               "--resource=flowruns,flowruns/status"});
    w.Kubectl({"create", "role", "event-reader", "--verb=get,list", "--resource=events,pods,pods/log"});
    w.Kubectl({"create", "rolebinding", "flowrun-person", "--role=flowrun-person", "--user=alice", "--user=bob"});
    w.Kubectl({"create", "rolebinding", "event-reader", "--role=event-reader", "--user=alice", "--user=bob"});
    return new People{w.cluster->MintUser("alice"), w.cluster->MintUser("bob"), w.cluster->MintUser("eve")};
  }();
  return *p;
}

std::string Admin(E2eWorld& w) { return w.cluster->admin_kubeconfig(); }

void ApplyReviewRun(E2eWorld& w, const std::string& name, const std::string& extra_spec = "") {
  w.ApplyYaml(name + ".yaml", "apiVersion: flowrun.dev/v1alpha1\n"
                              "kind: FlowRun\n"
                              "metadata:\n  name: " + name + "\n"
                              "spec:\n"
                              "  template:\n"
                              "    image: flowrun/research-agent:test\n"
                              "    command: [\"" PLUGIN_REVIEW_AGENT_BIN "\"]\n"
                              "    env:\n"
                              "    - name: OPENAI_BASE_URL\n"
                              "      value: " + w.llm->base_url() + "\n"
                              "    - name: OPENAI_API_KEY\n"
                              "      valueFrom:\n        secretKeyRef: {name: openai, key: api-key}\n"
                              "    - name: FLOWRUN_LLM_MODEL\n"
                              "      value: gpt-4o-mini\n"
                              "  flow: review\n" + extra_spec);
}

std::string Condition(E2eWorld& w, const std::string& name, const std::string& field) {
  return w.Get(name, R"({.status.conditions[?(@.type=="AnswerAccepted")].)" + field + "}");
}

bool Contains(const std::string& hay, const std::string& needle) { return hay.find(needle) != std::string::npos; }

// A yes/no question: the inbox shows it, status explains it, a bare value the
// schema cannot take is refused locally (nothing written), `true` resumes the
// run and the plugin names the resumed Job; the database records who answered.
TEST(PluginCluster, InboxStatusAndABooleanAnswerResumeTheRun) {
  E2eWorld& w = E2eWorld::Get();
  const People& p = Users(w);
  w.ApplyResearchRun("pr1");
  ASSERT_TRUE(w.WaitPhase("pr1", "Waiting"));

  Result inbox = Plugin(w, p.alice, {"list", "--waiting", "-o", "json"});
  ASSERT_EQ(inbox.exit_code, 0) << inbox.err;
  json rows = json::parse(inbox.out)["items"];
  bool found = false;
  for (const auto& r : rows)
    if (r["name"] == "pr1") {
      found = true;
      EXPECT_EQ(r["wait"]["name"], "proceed");
      EXPECT_TRUE(Contains(r["wait"]["question"].get<std::string>(), "Proceed to analysis?"));
      EXPECT_EQ(r["wait"]["schema"], json({{"type", "boolean"}}));
      EXPECT_EQ(r["whoMayAnswer"], "anyone RBAC allows to patch flowruns/status");
    }
  EXPECT_TRUE(found) << inbox.out;
  Result table = Plugin(w, p.alice, {"list", "--waiting"});
  EXPECT_EQ(table.exit_code, 0);
  EXPECT_TRUE(Contains(table.out, "NAME")) << table.out;
  EXPECT_TRUE(Contains(table.out, "pr1")) << table.out;
  EXPECT_TRUE(Contains(table.out, "Proceed to analysis?")) << table.out;

  Result status = Plugin(w, p.alice, {"status", "pr1"});
  ASSERT_EQ(status.exit_code, 0) << status.err;
  EXPECT_TRUE(Contains(status.out, "Phase:       Waiting")) << status.out;
  EXPECT_TRUE(Contains(status.out, "Open wait:   proceed")) << status.out;
  EXPECT_TRUE(Contains(status.out, "Answer it: kubectl flowrun answer pr1 proceed true")) << status.out;
  EXPECT_TRUE(Contains(status.out, "pr1-a1")) << status.out;  // the attempts table
  EXPECT_TRUE(Contains(status.out, "Events:")) << status.out;
  Result sjson = Plugin(w, p.alice, {"status", "pr1", "-o", "json"});
  ASSERT_EQ(sjson.exit_code, 0);
  EXPECT_EQ(json::parse(sjson.out)["flowrun"]["status"]["phase"], "Waiting");

  Result bad = Plugin(w, p.alice, {"answer", "pr1", "maybe"});
  EXPECT_EQ(bad.exit_code, 5) << bad.err;
  EXPECT_TRUE(Contains(bad.err, "proceed: 'maybe' is not a boolean")) << bad.err;
  EXPECT_EQ(w.Get("pr1", "{.status.answers}"), "");  // nothing was written

  Result ok = Plugin(w, p.alice, {"answer", "pr1", "true"});
  ASSERT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_TRUE(Contains(ok.out, "answer accepted: the answer to 'proceed' was accepted: true")) << ok.out;
  EXPECT_TRUE(Contains(ok.out, "resumed: attempt 2, Job pr1-a2")) << ok.out;
  ASSERT_TRUE(w.WaitPhase("pr1", "Succeeded"));
  EXPECT_EQ(w.Psql("SELECT answered_by FROM flowrun.waits WHERE run_uid = '" + w.Uid("pr1") + "'"),
            "kubernetes:kubectl-flowrun");

  Result again = Plugin(w, p.alice, {"answer", "pr1", "false"});
  EXPECT_EQ(again.exit_code, 9) << again.err;
  EXPECT_TRUE(Contains(again.err, "is not waiting for an answer (phase Succeeded")) << again.err;
}

// An object question: values typed by the schema, refused locally with the
// schema's reasons (nothing reaches the apiserver), then accepted.
TEST(PluginCluster, ObjectAnswerIsTypedValidatedLocallyAndAccepted) {
  E2eWorld& w = E2eWorld::Get();
  const People& p = Users(w);
  ApplyReviewRun(w, "pr2");
  ASSERT_TRUE(w.WaitPhase("pr2", "Waiting"));
  EXPECT_EQ(w.Get("pr2", "{.status.wait.name}"), "review");

  Result range = Plugin(w, p.alice, {"answer", "pr2", "review", "approve=yes", "score=9"});
  EXPECT_EQ(range.exit_code, 5) << range.err;
  EXPECT_TRUE(Contains(range.err, "does not match its schema; nothing was written")) << range.err;
  EXPECT_TRUE(Contains(range.err, "/score: ")) << range.err;
  Result missing = Plugin(w, p.alice, {"answer", "pr2", "approve=yes"});
  EXPECT_EQ(missing.exit_code, 5) << missing.err;
  EXPECT_TRUE(Contains(missing.err, "score")) << missing.err;
  Result type = Plugin(w, p.alice, {"answer", "pr2", "approve=yes", "score=high"});
  EXPECT_EQ(type.exit_code, 5) << type.err;
  EXPECT_TRUE(Contains(type.err, "score: 'high' is not an integer")) << type.err;
  Result unknown = Plugin(w, p.alice, {"answer", "pr2", "approve=yes", "score=2", "colour=red"});
  EXPECT_EQ(unknown.exit_code, 5) << unknown.err;
  Result other = Plugin(w, p.alice, {"answer", "pr2", "proceed", "approve=yes", "score=2"});
  EXPECT_EQ(other.exit_code, 9) << other.err;
  EXPECT_TRUE(Contains(other.err, "waits for 'review', not 'proceed'")) << other.err;
  EXPECT_EQ(w.Get("pr2", "{.status.answers}"), "");

  Result dry = Plugin(w, p.alice, {"answer", "pr2", "approve=yes", "score=4", "--dry-run", "-o", "json"});
  ASSERT_EQ(dry.exit_code, 0) << dry.err;
  EXPECT_EQ(json::parse(dry.out)["answer"], json({{"approve", true}, {"score", 4}}));
  EXPECT_EQ(w.Get("pr2", "{.status.answers}"), "");

  Result ok = Plugin(w, p.alice, {"answer", "pr2", "approve=yes", "score=4", "--set", "comment=fine work", "-o", "json"});
  ASSERT_EQ(ok.exit_code, 0) << ok.err;
  json verdict = json::parse(ok.out);
  EXPECT_EQ(verdict["verdict"], "accepted");
  EXPECT_EQ(verdict["job"], "pr2-a2");
  EXPECT_EQ(verdict["answer"], json({{"approve", true}, {"comment", "fine work"}, {"score", 4}}));
  ASSERT_TRUE(w.WaitPhase("pr2", "Succeeded"));
  EXPECT_TRUE(Contains(w.Get("pr2", "{.status.result}"), "\"score\":4")) << w.Get("pr2", "{.status.result}");
}

// The issue's trap: an object answer the controller rejected, "corrected" by
// the documented merge patch, keeps its extra key and stays rejected; the
// plugin replaces the answer as a whole and the run resumes.
TEST(PluginCluster, CorrectingARejectedObjectAnswerReplacesIt) {
  E2eWorld& w = E2eWorld::Get();
  const People& p = Users(w);
  ApplyReviewRun(w, "pr3");
  ASSERT_TRUE(w.WaitPhase("pr3", "Waiting"));
  auto merge = [&](const std::string& answer) {
    return RunCommand({w.cluster->bin_dir() + "/kubectl", "--kubeconfig", p.alice, "-n", w.options.ns, "patch", "flowrun",
                       "pr3", "--subresource=status", "--type=merge", "-p",
                       R"({"status":{"answers":{"review":)" + answer + "}}}"});
  };
  ASSERT_TRUE(merge(R"({"approve":true,"score":4,"extra":1})").ok());
  ASSERT_TRUE(Eventually([&] { return Condition(w, "pr3", "reason") == "InvalidAnswer"; }, std::chrono::seconds(60)))
      << w.Diagnostics("pr3");
  // The merge-patch correction merges into the rejected answer: "extra" stays.
  ASSERT_TRUE(merge(R"({"approve":true,"score":4})").ok());
  EXPECT_EQ(json::parse(w.Get("pr3", "{.status.answers.review}")), json({{"approve", true}, {"extra", 1}, {"score", 4}}));
  EXPECT_EQ(w.Get("pr3", "{.status.phase}"), "Waiting");

  Result status = Plugin(w, p.alice, {"status", "pr3"});
  EXPECT_TRUE(Contains(status.out, "InvalidAnswer")) << status.out;
  Result ok = Plugin(w, p.alice, {"answer", "pr3", "approve=true", "score=4"});
  ASSERT_EQ(ok.exit_code, 0) << ok.err << ok.out;
  EXPECT_TRUE(Contains(ok.err, R"(replaced the rejected answer {"approve":true,"extra":1,"score":4} with {"approve":true,"score":4})"))
      << ok.err;
  EXPECT_TRUE(Contains(ok.out, "resumed: attempt 2, Job pr3-a2")) << ok.out;
  EXPECT_EQ(json::parse(w.Get("pr3", "{.status.answers.review}")), json({{"approve", true}, {"score", 4}}));
  ASSERT_TRUE(w.WaitPhase("pr3", "Succeeded"));
}

// spec.approvers names alice: bob's answer is refused by the admission policy
// and the plugin says why and who may answer; alice's goes through.
TEST(PluginCluster, AnUnlistedApproverIsRefusedByAdmissionAndToldWhy) {
  E2eWorld& w = E2eWorld::Get();
  const People& p = Users(w);
  ApplyReviewRun(w, "pr4", "  approvers:\n    users: [alice]\n");
  ASSERT_TRUE(w.WaitPhase("pr4", "Waiting"));
  Result inbox = Plugin(w, p.bob, {"list", "--waiting"});
  EXPECT_TRUE(Contains(inbox.out, "pr4")) << inbox.out;
  Result refused = Plugin(w, p.bob, {"answer", "pr4", "approve=true", "score=3"});
  EXPECT_EQ(refused.exit_code, 4) << refused.err;
  EXPECT_TRUE(Contains(refused.err, "the answer was refused: ")) << refused.err;
  EXPECT_TRUE(Contains(refused.err, "bob")) << refused.err;
  EXPECT_TRUE(Contains(refused.err, "spec.approvers")) << refused.err;
  EXPECT_TRUE(Contains(refused.err, "who may answer: alice")) << refused.err;
  EXPECT_EQ(w.Get("pr4", "{.status.answers}"), "");
  Result ok = Plugin(w, p.alice, {"answer", "pr4", "approve=false", "score=1"});
  ASSERT_EQ(ok.exit_code, 0) << ok.err;
  ASSERT_TRUE(w.WaitPhase("pr4", "Succeeded"));
}

// -i asks per property (required first), asks again after a value that does
// not convert, and answers.
TEST(PluginCluster, InteractiveAnswer) {
  E2eWorld& w = E2eWorld::Get();
  const People& p = Users(w);
  ApplyReviewRun(w, "pr5");
  ASSERT_TRUE(w.WaitPhase("pr5", "Waiting"));
  Result ok = Plugin(w, p.alice, {"answer", "pr5", "-i"}, "perhaps\nyes\n5\n\n");
  ASSERT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_TRUE(Contains(ok.err, "Question (review): Review the draft")) << ok.err;
  EXPECT_TRUE(Contains(ok.err, "approve: 'perhaps' is not a boolean")) << ok.err;
  EXPECT_EQ(json::parse(w.Get("pr5", "{.status.answers.review}")), json({{"approve", true}, {"score", 5}}));
  ASSERT_TRUE(w.WaitPhase("pr5", "Succeeded"));
}

TEST(PluginCluster, BudgetAndCancel) {
  E2eWorld& w = E2eWorld::Get();
  const People& p = Users(w);
  w.ApplyResearchRun("pr6");
  ASSERT_TRUE(w.WaitPhase("pr6", "Waiting"));
  Result set = Plugin(w, p.alice, {"budget", "pr6", "2.5"});
  ASSERT_EQ(set.exit_code, 0) << set.err;
  EXPECT_TRUE(Contains(set.out, "budget set to $2.50")) << set.out;
  EXPECT_EQ(w.Get("pr6", "{.spec.budgetUSD}"), "2.5");
  EXPECT_EQ(Plugin(w, p.alice, {"budget", "pr6", "lots"}).exit_code, 2);
  ASSERT_EQ(Plugin(w, p.alice, {"budget", "pr6", "none"}).exit_code, 0);
  EXPECT_EQ(w.Get("pr6", "{.spec.budgetUSD}"), "");
  Result cancel = Plugin(w, p.alice, {"cancel", "pr6", "--wait"});
  ASSERT_EQ(cancel.exit_code, 0) << cancel.err;
  EXPECT_TRUE(Contains(cancel.out, "FlowRun pr6 is Cancelled")) << cancel.out;
  EXPECT_EQ(w.Get("pr6", "{.status.phase}"), "Cancelled");
  Result twice = Plugin(w, p.alice, {"cancel", "pr6"});
  EXPECT_EQ(twice.exit_code, 0);
  EXPECT_TRUE(Contains(twice.err, "already finished (Cancelled)")) << twice.err;
}

TEST(PluginCluster, ExitCodesForMissingRunsForbiddenUsersAndUsage) {
  E2eWorld& w = E2eWorld::Get();
  const People& p = Users(w);
  Result missing = Plugin(w, p.alice, {"status", "no-such-run"});
  EXPECT_EQ(missing.exit_code, 3);
  EXPECT_TRUE(Contains(missing.err, "FlowRun no-such-run not found in namespace default")) << missing.err;
  // The connection flags before the command, as kubectl takes them: the namespace is the one given.
  // (Not through Plugin(), which appends the world's -n after the command.)
  Result before = Shell(w, ShellQuote(KUBECTL_FLOWRUN_BIN) + " -n elsewhere --kubeconfig " + ShellQuote(Admin(w)) +
                               " status no-such-run");
  EXPECT_EQ(before.exit_code, 3) << before.err;
  EXPECT_TRUE(Contains(before.err, "not found in namespace elsewhere")) << before.err;
  Result eve = Plugin(w, p.eve, {"list"});
  EXPECT_EQ(eve.exit_code, 4) << eve.err;
  EXPECT_TRUE(Contains(eve.err, "forbidden")) << eve.err;
  EXPECT_EQ(Plugin(w, p.alice, {"status"}).exit_code, 2);
  EXPECT_EQ(Plugin(w, p.alice, {"list", "-o", "xml"}).exit_code, 2);
  Result help = Plugin(w, p.alice, {"answer", "--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_TRUE(Contains(help.out, "Examples:")) << help.out;
}

// A kubeconfig whose user is an exec credential plugin handing out client
// certificates (as cloud and SSO plugins do): the plugin presents the
// certificate it was given, so RBAC sees that identity (alice may list, eve is
// refused by name).
TEST(PluginCluster, AnExecPluginsClientCertificateIsTheIdentity) {
  E2eWorld& w = E2eWorld::Get();
  Users(w);
  std::string dir = w.cluster->dir() + "/plugin-exec-certs";
  ASSERT_EQ(::system(("mkdir -p '" + dir + "' && cp '" + w.cluster->dir() + "/users/alice.crt' '" + w.cluster->dir() +
                      "/users/alice.key' '" + w.cluster->dir() + "/users/eve.crt' '" + w.cluster->dir() +
                      "/users/eve.key' '" + dir + "/'").c_str()),
            0);
  std::string kc = dir + "/exec.kubeconfig";
  std::ofstream(kc) << "apiVersion: v1\nkind: Config\n"
                    << "clusters:\n- name: c\n  cluster:\n    server: " << w.cluster->apiserver_url()
                    << "\n    certificate-authority: " << w.cluster->ca_file() << "\n"
                    << "users:\n- name: u\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1\n"
                    << "      command: " << FLOWRUN_SOURCE_DIR << "/tests/kube/exec_plugin.sh\n"
                    << "      interactiveMode: Never\n"
                    << "      env:\n      - name: PLUGIN_CERT_DIR\n        value: " << dir << "\n"
                    << "      - name: PLUGIN_RUNS_FILE\n        value: " << dir << "/runs\n"
                    << "contexts:\n- name: c\n  context:\n    cluster: c\n    user: u\n"
                    << "current-context: c\n";
  std::ofstream(dir + "/current") << "alice";
  Result alice = Plugin(w, kc, {"list"});
  EXPECT_EQ(alice.exit_code, 0) << alice.err;
  std::ofstream(dir + "/current") << "eve";
  Result eve = Plugin(w, kc, {"list"});
  EXPECT_EQ(eve.exit_code, 4) << eve.err;
  EXPECT_TRUE(Contains(eve.err, "User \"eve\"")) << eve.err;
}

// list -w: the listing, then a line for each change (a watch as the user).
TEST(PluginCluster, ListWatchPrintsChanges) {
  E2eWorld& w = E2eWorld::Get();
  const People& p = Users(w);
  std::string out = w.dir + "/watch.out";
  RunCommand({"sh", "-c", "timeout 60 " + ShellQuote(KUBECTL_FLOWRUN_BIN) + " list -w --kubeconfig " + ShellQuote(p.alice) +
                              " -n " + ShellQuote(w.options.ns) + " >" + ShellQuote(out) + " 2>&1 </dev/null & echo $! >" + ShellQuote(out + ".pid")});
  auto text = [&] {
    std::ifstream f(out);
    return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  };
  w.ApplyResearchRun("pr8-watched");
  EXPECT_TRUE(Eventually([&] { return Contains(text(), "pr8-watched   Waiting"); }, std::chrono::seconds(90))) << text();
  std::ifstream pid(out + ".pid");
  std::string id;
  pid >> id;
  if (!id.empty()) RunCommand({"kill", id});  // the timeout's pid: it ends the plugin with it
}

TEST(PluginCluster, CompletionOffersRunNames) {
  E2eWorld& w = E2eWorld::Get();
  w.ApplyResearchRun("pr7-complete");
  Result c = Plugin(w, Admin(w), {"__complete", "status", "pr7"});
  EXPECT_EQ(c.exit_code, 0);
  EXPECT_TRUE(Contains(c.out, "pr7-complete\n")) << c.out;
  EXPECT_TRUE(Contains(c.out, ":4\n")) << c.out;
  Result bash = Plugin(w, Admin(w), {"completion", "bash"});
  EXPECT_TRUE(Contains(bash.out, "complete -F _kubectl_flowrun kubectl-flowrun")) << bash.out;
}

}  // namespace
}  // namespace flowrun::testing
