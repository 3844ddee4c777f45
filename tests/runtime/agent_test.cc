// The runtime library as an agent uses it: real agent processes (test_agent,
// research-agent) against a private PostgreSQL and the fake OpenAI server,
// which counts every LLM request. Each test asserts what a person running the
// agent would observe: exit codes, the termination message, the rows, and how
// many times each paid LLM call really happened.
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <thread>

#include <gtest/gtest.h>
#include <pqxx/pqxx>

#include "flowrun/outcome.h"
#include "flowrun/postgres.h"
#include "support/child_process.h"
#include "support/eventually.h"
#include "support/fake_llm.h"
#include "support/postgres_server.h"

namespace flowrun {
namespace {

using nlohmann::json;
using testing::ChildProcess;
using testing::ExitStatus;
using testing::FakeLlm;
using testing::PostgresEnvironment;

struct AgentRun {
  ExitStatus status;
  json term;           // the termination message
  std::string output;  // stdout + stderr
};

class AgentTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { llm_ = FakeLlm::Start("test-key"); }
  static void TearDownTestSuite() { llm_.reset(); }

  void SetUp() override {
    db_ = PostgresEnvironment::CreateDatabaseForCurrentTest();
    conninfo_ = PostgresEnvironment::Server().ConnectionString(db_);
    // Agents never migrate: the controller does at start, as here.
    ASSERT_TRUE(Migrate(PostgresOptions{.conninfo = conninfo_}).ok());
    llm_->Reset();
    dir_ = std::filesystem::temp_directory_path() / ("flowrun-agent-test-" + std::to_string(::getpid()) + "-" + db_);
    std::filesystem::create_directories(dir_);
    // 1,000 tokens in and out at $5 per million each: $0.01 per call when the fake's usage is fixed.
    WriteFile(dir_ / "prices.yaml", "models:\n  gpt-4o-mini: {input: 5.0, output: 5.0}\n");
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  static void WriteFile(const std::filesystem::path& p, const std::string& text) {
    std::ofstream(p) << text;
  }

  std::map<std::string, std::string> Env(const std::string& uid, const json& params, int attempt = 1) {
    return {{"FLOWRUN_RUN_UID", uid},
            {"FLOWRUN_RUN_NAME", uid},
            {"FLOWRUN_RUN_NAMESPACE", "tests"},
            {"FLOWRUN_FLOW", "test-flow"},
            {"FLOWRUN_ATTEMPT", std::to_string(attempt)},
            {"FLOWRUN_PARAMETERS", params.dump()},
            {"FLOWRUN_DATABASE_URL", conninfo_},
            {"FLOWRUN_PRICE_TABLE", (dir_ / "prices.yaml").string()},
            {"FLOWRUN_TERMINATION_MESSAGE_PATH", (dir_ / ("term-" + uid + "-" + std::to_string(attempt))).string()},
            {"OPENAI_BASE_URL", llm_->base_url()},
            {"OPENAI_API_KEY", "test-key"},
            {"FLOWRUN_DB_RETRY_BACKOFF_MS", "50"}};
  }

  std::unique_ptr<ChildProcess> Spawn(const std::map<std::string, std::string>& env,
                                      const std::string& binary = TEST_AGENT_PATH) {
    ChildProcess::Options o;
    o.unset_env = {"FLOWRUN_DATABASE_URL", "PGHOST", "PGPORT", "PGDATABASE", "PGUSER", "PGPASSWORD"};
    return ChildProcess::Spawn({binary}, env, o);
  }

  AgentRun Finish(ChildProcess& child, const std::map<std::string, std::string>& env,
                  std::chrono::seconds timeout = std::chrono::seconds(60)) {
    AgentRun r;
    auto st = child.Wait(timeout);
    if (!st) {
      child.Kill(SIGKILL);
      ADD_FAILURE() << "agent did not finish in time; output:\n" << child.Output();
      st = child.Wait(std::chrono::seconds(5));
    }
    r.status = *st;
    r.output = child.Output();
    std::ifstream in(env.at("FLOWRUN_TERMINATION_MESSAGE_PATH"));
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    r.term = json::parse(text, nullptr, false);
    return r;
  }

  AgentRun Run(const std::map<std::string, std::string>& env, const std::string& binary = TEST_AGENT_PATH) {
    auto child = Spawn(env, binary);
    return Finish(*child, env);
  }

  std::unique_ptr<RunAdmin> Admin() {
    PostgresOptions o;
    o.conninfo = conninfo_;
    auto admin = OpenPostgresRunAdmin(o);
    EXPECT_TRUE(admin.ok()) << admin.status();
    return std::move(admin).value();
  }

  int64_t Count(const std::string& sql) {
    pqxx::connection c(conninfo_);
    pqxx::nontransaction tx(c);
    return tx.exec(sql)[0][0].as<int64_t>();
  }

  std::set<std::string> CompletedCheckpoints(pqxx::connection& c, const std::string& uid) {
    pqxx::nontransaction tx(c);
    std::set<std::string> out;
    for (const auto& r : tx.exec_params("SELECT name FROM flowrun.checkpoints WHERE run_uid = $1 AND status = 'completed'", uid))
      out.insert(r[0].as<std::string>());
    return out;
  }

  static std::string ChainPrompt(int i, const std::string& uid, const std::string& prefix = "step") {
    return prefix + " " + std::to_string(i) + " of run " + uid;
  }

  static inline std::unique_ptr<FakeLlm> llm_;
  std::string db_, conninfo_;
  std::filesystem::path dir_;
};

// The seed's flow: research -> wait -> analysis, through exit, answer and resume.
TEST_F(AgentTest, ResearchAgentWaitsExitsAndResumesFromTheCache) {
  auto env1 = Env("research-1", {{"topic", "tides"}});
  AgentRun first = Run(env1, RESEARCH_AGENT_PATH);
  ASSERT_TRUE(first.status.ok()) << first.status.ToString() << first.output;
  ASSERT_EQ(first.term.value("outcome", ""), "waiting") << first.term;
  EXPECT_EQ(first.term["wait"]["name"], "proceed");
  EXPECT_EQ(first.term["wait"]["schema"], json({{"type", "boolean"}}));
  EXPECT_NE(first.term["wait"]["question"].get<std::string>().find("tides"), std::string::npos);
  EXPECT_EQ(llm_->Total(), 1);

  auto admin = Admin();
  auto state = admin->GetRun("research-1");
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(state->status, flowrun::RunStatus::kWaiting);
  ASSERT_TRUE(state->open_wait.has_value());
  EXPECT_EQ(state->open_wait->name, "proceed");

  // A string is not a boolean: rejected with the reason, nothing recorded.
  auto bad = admin->RecordAnswer("research-1", "proceed", "yes", {});
  ASSERT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("type"), std::string::npos) << bad.status();
  EXPECT_EQ(admin->GetRun("research-1")->status, flowrun::RunStatus::kWaiting);

  ASSERT_TRUE(admin->RecordAnswer("research-1", "proceed", true, {.answered_by = "alice"}).ok());
  AgentRun second = Run(Env("research-1", {{"topic", "tides"}}, 2), RESEARCH_AGENT_PATH);
  ASSERT_TRUE(second.status.ok()) << second.output;
  ASSERT_EQ(second.term.value("outcome", ""), "succeeded") << second.term;
  EXPECT_EQ(second.term["checkpoints"]["cached"], 1);  // research came from the cache
  EXPECT_EQ(llm_->Total(), 2);                         // research once, analysis once
  state = admin->GetRun("research-1");
  EXPECT_EQ(state->status, flowrun::RunStatus::kSucceeded);
  ASSERT_TRUE(state->result.has_value());
  EXPECT_EQ((*state->result)["status"], "done");
  EXPECT_GT(state->saved.cost_usd, 0);  // the cached research call, valued at its price

  // Running again changes nothing and calls nothing: every step is cached, the answer too.
  AgentRun third = Run(Env("research-1", {{"topic", "tides"}}, 3), RESEARCH_AGENT_PATH);
  ASSERT_TRUE(third.status.ok());
  EXPECT_EQ(third.term["outcome"], "succeeded");
  EXPECT_EQ(llm_->Total(), 2);
  EXPECT_EQ(admin->GetRun("research-1")->attempts.size(), 3u);
}

TEST_F(AgentTest, AnEarlyAnswerIsConsumedWithoutStopping) {
  auto admin = Admin();
  auto early = admin->RecordAnswer("early-1", "proceed", true, {.allow_early = true, .answered_by = "bob"});
  ASSERT_TRUE(early.ok()) << early.status();
  EXPECT_TRUE(early->early);
  AgentRun r = Run(Env("early-1", {{"topic", "x"}}), RESEARCH_AGENT_PATH);
  ASSERT_TRUE(r.status.ok()) << r.output;
  EXPECT_EQ(r.term["outcome"], "succeeded") << r.term;
  // A second answer for the consumed wait is refused: the first one won.
  EXPECT_EQ(admin->RecordAnswer("early-1", "proceed", false, {}).status().code(), StatusCode::kFailedPrecondition);
}

// SIGKILL at >= 200 random moments across runs of a 40-checkpoint agent.
// Invariant checked at every kill: a checkpoint that had completed before the
// process started never calls the LLM again. At the end of each run: every
// step's call was made once, except a re-execution in the window between the
// call returning and the row committing, which the library must have counted.
TEST_F(AgentTest, SurvivesTwoHundredRandomKills) {
  PostgresOptions po;
  po.conninfo = conninfo_;
  ASSERT_TRUE(Migrate(po).ok());
  pqxx::connection db(conninfo_);
  std::mt19937 rng(20261126);
  int kills = 0, attempts = 0, runs = 0;
  int64_t repeated_calls = 0, counted_reexecutions = 0;
  while (kills < 200) {
    const std::string uid = "killed-" + std::to_string(++runs);
    const json params = {{"scenario", "chain"}, {"steps", 40}, {"sleep_ms", 3}};
    for (int attempt = 1;; ++attempt) {
      ++attempts;
      std::set<std::string> completed_before = CompletedCheckpoints(db, uid);
      std::map<std::string, int64_t> counts_before;
      for (const auto& name : completed_before)
        counts_before[name] = llm_->CountForPrompt(ChainPrompt(std::stoi(name.substr(5)), uid));
      auto env = Env(uid, params, attempt);
      auto child = Spawn(env);
      bool kill_this_one = kills < 200;
      if (kill_this_one) {
        std::this_thread::sleep_for(std::chrono::milliseconds(std::uniform_int_distribution<int>(10, 120)(rng)));
        child->Kill(SIGKILL);
      }
      auto st = child->Wait(std::chrono::seconds(60));
      ASSERT_TRUE(st.has_value());
      if (st->signal == SIGKILL) ++kills;
      for (const auto& name : completed_before) {
        ASSERT_EQ(llm_->CountForPrompt(ChainPrompt(std::stoi(name.substr(5)), uid)), counts_before[name])
            << name << " of " << uid << " had completed before attempt " << attempt << " but its LLM call ran again";
      }
      if (st->exited) {
        ASSERT_EQ(st->code, 0) << child->Output();
        break;  // this run finished
      }
    }
    EXPECT_EQ(CompletedCheckpoints(db, uid).size(), 40u) << uid;
    for (int i = 1; i <= 40; ++i) {
      int64_t n = llm_->CountForPrompt(ChainPrompt(i, uid));
      ASSERT_GE(n, 1) << uid << " step " << i;
      repeated_calls += n - 1;
    }
    pqxx::nontransaction tx(db);
    counted_reexecutions += tx.exec_params(
        "SELECT coalesce(sum(reexecutions), 0) FROM flowrun.checkpoints WHERE run_uid = $1", uid)[0][0].as<int64_t>();
    auto state = Admin()->GetRun(uid);
    ASSERT_TRUE(state.ok());
    EXPECT_EQ(state->status, flowrun::RunStatus::kSucceeded);
    EXPECT_EQ((*state->result)["steps"], 40);
  }
  // Every repeated call belongs to a checkpoint whose earlier execution was
  // interrupted and counted as such.
  EXPECT_LE(repeated_calls, counted_reexecutions);
  EXPECT_GE(kills, 200);
  std::cout << "kills=" << kills << " runs=" << runs << " attempts=" << attempts
            << " repeated_llm_calls=" << repeated_calls << " counted_reexecutions=" << counted_reexecutions
            << std::endl;
}

// Issue 11 §7: a call in flight when the process dies was billed by the
// provider but never answered. It is recorded as started before the request,
// so it stays visible as unfinished (cost unknown), counted apart from the
// usage totals — never silently absent.
TEST_F(AgentTest, ACallInFlightWhenTheAgentIsKilledStaysVisibleAsUnfinished) {
  const std::string uid = "killed-mid-call";
  const json params = {{"scenario", "chain"}, {"steps", 2}};
  llm_->Configure({{"latency_ms", 20000}});  // the first request hangs at the "provider"
  auto env1 = Env(uid, params, 1);
  auto child = Spawn(env1);
  ASSERT_TRUE(flowrun::testing::Eventually([&] { return llm_->Total() >= 1; }, std::chrono::seconds(60))) << child->Output();
  child->Kill(SIGKILL);
  auto st = child->Wait(std::chrono::seconds(30));
  ASSERT_TRUE(st.has_value());
  ASSERT_EQ(st->signal, SIGKILL);
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.llm_calls WHERE run_uid = '" + uid + "' AND state = 'started'"
                  " AND checkpoint_name = 'step-1' AND cost_usd IS NULL AND estimated_input_tokens > 0"),
            1);
  auto killed = Admin()->GetRun(uid);
  ASSERT_TRUE(killed.ok()) << killed.status();
  EXPECT_EQ(killed->spent.llm_calls, 0);
  EXPECT_EQ(killed->spent.unfinished_calls, 1);

  llm_->Reset();  // answers at once again
  auto env2 = Env(uid, params, 2);
  AgentRun r = Run(env2);
  ASSERT_TRUE(r.status.exited && r.status.code == 0) << r.output;
  auto state = Admin()->GetRun(uid);
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(state->spent.llm_calls, 2);
  EXPECT_EQ(state->spent.unfinished_calls, 1) << "the killed call stays on the record";
  EXPECT_EQ(llm_->Total(), 2);
}

// A pod deleted mid-checkpoint: the kubelet sends SIGTERM (then SIGKILL after
// the grace period). The agent answers at once with the "terminated" outcome
// and exit code 143; the checkpoint that was running stays interrupted, and
// the next attempt resumes from the cache: every LLM prompt once.
TEST_F(AgentTest, SigtermMidCheckpointReportsTerminatedAndTheRunResumes) {
  const std::string uid = "sigterm-1";
  const json params = {{"scenario", "chain"}, {"steps", 5}, {"hang_at_step", 3}};
  auto env1 = Env(uid, params, 1);
  auto child = Spawn(env1);
  // Inside step 3's body (steps 1 and 2 completed), before its LLM call.
  auto step3_running = [&] {
    return Count("SELECT count(*) FROM flowrun.checkpoints WHERE run_uid = 'sigterm-1' AND name = 'step-3'"
                 " AND status = 'running'") == 1;
  };
  ASSERT_TRUE(testing::Eventually(step3_running, std::chrono::seconds(60))) << child->Output();
  auto sent = std::chrono::steady_clock::now();
  ASSERT_TRUE(child->Kill(SIGTERM));
  AgentRun first = Finish(*child, env1, std::chrono::seconds(20));
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - sent);
  EXPECT_TRUE(first.status.exited) << first.status.ToString() << "\n" << first.output;
  EXPECT_EQ(first.status.code, kExitTerminated) << first.output;
  EXPECT_EQ(first.term["outcome"], "terminated") << first.term;
  EXPECT_EQ(first.term["attempt"], 1) << first.term;
  EXPECT_NE(first.term.value("error", "").find("SIGTERM"), std::string::npos) << first.term;
  auto decoded = DecodeTerminationMessage(first.term.dump());
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->kind, OutcomeKind::kTerminated);
  EXPECT_NE(first.output.find("\"outcome\":\"terminated\""), std::string::npos) << first.output;
  std::cout << "measure: SIGTERM -> agent exited with the terminated outcome: " << took.count() << " ms" << std::endl;
  // Nothing recorded on SIGTERM: the interrupted checkpoint stays "running",
  // the run "running", for the next attempt's fence to take over.
  EXPECT_TRUE(step3_running());
  auto state = Admin()->GetRun(uid);
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(state->status, RunStatus::kRunning);
  EXPECT_EQ(llm_->CountForPrompt(ChainPrompt(3, uid)), 0);

  AgentRun second = Run(Env(uid, params, 2));
  ASSERT_EQ(second.status.code, 0) << second.output;
  EXPECT_EQ(second.term["outcome"], "succeeded") << second.term;
  EXPECT_EQ(second.term["checkpoints"]["cached"], 2) << second.term;
  EXPECT_EQ(second.term["checkpoints"]["live"], 3) << second.term;
  for (int i = 1; i <= 5; ++i) EXPECT_EQ(llm_->CountForPrompt(ChainPrompt(i, uid)), 1) << "step " << i;
  EXPECT_EQ(Count("SELECT coalesce(sum(reexecutions), 0) FROM flowrun.checkpoints WHERE run_uid = 'sigterm-1'"), 1)
      << "step 3 was interrupted once";
  state = Admin()->GetRun(uid);
  ASSERT_TRUE(state.ok());
  EXPECT_EQ(state->status, RunStatus::kSucceeded);
}

TEST_F(AgentTest, TwoExecutorsOfOneRunOnlyTheNewestCommits) {
  const std::string uid = "twins-1";
  const json params = {{"scenario", "chain"}, {"steps", 10}, {"sleep_ms", 25}};
  auto env_a = Env(uid, params, 1);
  auto env_b = Env(uid, params, 2);
  auto a = Spawn(env_a);
  auto b = Spawn(env_b);
  AgentRun ra = Finish(*a, env_a);
  AgentRun rb = Finish(*b, env_b);
  std::vector<AgentRun*> runs = {&ra, &rb};
  int succeeded = 0, fenced = 0;
  for (AgentRun* r : runs) {
    ASSERT_TRUE(r->status.exited) << r->output;
    if (r->status.code == kExitOk && r->term["outcome"] == "succeeded") ++succeeded;
    if (r->status.code == kExitFenced && r->term["outcome"] == "fenced") ++fenced;
  }
  EXPECT_EQ(succeeded, 1) << ra.output << "\n---\n" << rb.output;
  EXPECT_EQ(fenced, 1) << ra.output << "\n---\n" << rb.output;
  auto state = Admin()->GetRun(uid);
  EXPECT_EQ(state->status, flowrun::RunStatus::kSucceeded);
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.checkpoints WHERE run_uid = 'twins-1' AND status = 'completed'"), 10);
  // The stale executor's attempt is recorded as never finished by itself.
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.attempts WHERE run_uid = 'twins-1' AND outcome = 'succeeded'"), 1);
}

TEST_F(AgentTest, BudgetExhaustedSuspendsAndResumesWhenRaised) {
  llm_->Configure({{"usage", {{"prompt_tokens", 1000}, {"completion_tokens", 1000}, {"cached_tokens", 0}}}});
  auto env = Env("budget-1", {{"scenario", "budget"}, {"steps", 5}});
  env["FLOWRUN_BUDGET_USD"] = "0.025";  // $0.01 per call: the 4th call is refused
  AgentRun r = Run(env);
  ASSERT_TRUE(r.status.ok()) << r.output;
  ASSERT_EQ(r.term["outcome"], "budget_exceeded") << r.term;
  EXPECT_EQ(llm_->Total(), 3);
  auto admin = Admin();
  EXPECT_EQ(admin->GetRun("budget-1")->status, flowrun::RunStatus::kBudgetExceeded);
  EXPECT_NEAR(admin->GetRun("budget-1")->spent.cost_usd, 0.03, 1e-9);

  // Restarting without raising suspends again at once, with no new call.
  auto env2 = Env("budget-1", {{"scenario", "budget"}, {"steps", 5}}, 2);
  env2["FLOWRUN_BUDGET_USD"] = "0.025";
  AgentRun again = Run(env2);
  EXPECT_EQ(again.term["outcome"], "budget_exceeded");
  EXPECT_EQ(llm_->Total(), 3);

  ASSERT_TRUE(admin->SetBudget("budget-1", 1.0).ok());
  auto env3 = Env("budget-1", {{"scenario", "budget"}, {"steps", 5}}, 3);
  env3["FLOWRUN_BUDGET_USD"] = "0.025";  // the initial budget no longer applies: the database holds $1
  AgentRun resumed = Run(env3);
  ASSERT_TRUE(resumed.status.ok()) << resumed.output;
  EXPECT_EQ(resumed.term["outcome"], "succeeded") << resumed.term;
  EXPECT_EQ(llm_->Total(), 5);
  for (int i = 1; i <= 5; ++i) EXPECT_EQ(llm_->CountForPrompt("spend " + std::to_string(i)), 1) << i;
  EXPECT_EQ(resumed.term["checkpoints"]["cached"], 3);
}

TEST_F(AgentTest, DivergenceIsDetectedAndNamed) {
  AgentRun a = Run(Env("div-1", {{"scenario", "diverge"}, {"variant", "a"}, {"stop_after_plan", true}}));
  ASSERT_EQ(a.term["outcome"], "waiting") << a.term;
  AgentRun b = Run(Env("div-1", {{"scenario", "diverge"}, {"variant", "b"}, {"stop_after_plan", true}}, 2));
  EXPECT_EQ(b.status.code, kExitDivergence) << b.output;
  EXPECT_EQ(b.term["outcome"], "divergence");
  EXPECT_NE(b.term["error"].get<std::string>().find("'plan'"), std::string::npos) << b.term;
  // The stored output is untouched.
  auto out = Admin()->GetCheckpointOutput("div-1", {"plan", 1});
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(*out, "plan for a");

  // With the rerun policy the diverged checkpoint is recomputed.
  auto env = Env("div-1", {{"scenario", "diverge"}, {"variant", "b"}, {"stop_after_plan", true}}, 3);
  env["FLOWRUN_ON_DIVERGENCE"] = "rerun";
  AgentRun c = Run(env);
  EXPECT_EQ(c.term["outcome"], "waiting") << c.output;
  EXPECT_EQ(*Admin()->GetCheckpointOutput("div-1", {"plan", 1}), "plan for b");
}

TEST_F(AgentTest, LoopsGetOneCheckpointPerOccurrence) {
  AgentRun r = Run(Env("loop-1", {{"scenario", "loop"}, {"n", 3}}));
  ASSERT_EQ(r.term["outcome"], "succeeded") << r.output;
  EXPECT_EQ(r.term["result"]["outs"], json({0, 10, 20}));
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.checkpoints WHERE run_uid = 'loop-1' AND name = 'iterate'"), 3);
  AgentRun again = Run(Env("loop-1", {{"scenario", "loop"}, {"n", 3}}, 2));
  EXPECT_EQ(again.term["checkpoints"]["cached"], 3);
  EXPECT_EQ(again.term["result"]["outs"], json({0, 10, 20}));
}

TEST_F(AgentTest, RetriesWithBackoffThenSucceeds) {
  auto counter = (dir_ / "flaky-counter").string();
  AgentRun r = Run(Env("flaky-1", {{"scenario", "flaky"}, {"counter_file", counter}, {"fail_times", 2}, {"max_tries", 3}}));
  ASSERT_TRUE(r.status.ok()) << r.output;
  EXPECT_EQ(r.term["result"]["tries"], 3);
  auto failures = Admin()->ListFailures("flaky-1");
  ASSERT_TRUE(failures.ok());
  ASSERT_EQ(failures->size(), 2u);
  EXPECT_EQ((*failures)[0].message, "transient failure #1");
  EXPECT_EQ((*failures)[1].try_number, 2);
}

TEST_F(AgentTest, AFinalFailureExitsNonZeroAndStaysResumable) {
  AgentRun r = Run(Env("throws-1", {{"scenario", "throws"}}));
  EXPECT_EQ(r.status.code, kExitFlowFailed);
  EXPECT_EQ(r.term["outcome"], "failed");
  EXPECT_NE(r.term["error"].get<std::string>().find("the model returned nonsense"), std::string::npos) << r.term;
  AgentRun r2 = Run(Env("throws-1", {{"scenario", "throws"}}, 2));
  EXPECT_EQ(r2.status.code, kExitFlowFailed);
  EXPECT_EQ(r2.term["checkpoints"]["cached"], 1);  // "ok" came from the cache
  auto admin = Admin();
  auto failures = admin->ListFailures("throws-1");
  ASSERT_EQ(failures->size(), 2u);  // one per attempt, both kept
  EXPECT_EQ((*failures)[0].attempt, 1);
  EXPECT_EQ((*failures)[1].attempt, 2);
  auto state = admin->GetRun("throws-1");
  EXPECT_EQ(state->status, flowrun::RunStatus::kFailed);
  ASSERT_EQ(state->attempts.size(), 2u);
  EXPECT_EQ(state->attempts[0].outcome, flowrun::OutcomeKind::kFailed);
  EXPECT_EQ(state->attempts[0].reason, flowrun::FailureReason::kFlowFailed);
  EXPECT_EQ(state->failure_reason, flowrun::FailureReason::kFlowFailed);
}

// The wait deadlines below are an hour away, so the first execution can never
// see them pass, however slow the machine. Instead of sleeping past them, the
// test moves the stored deadline into the past, as the passing of time would:
// the agent's store compares it with PostgreSQL's now(), which has no clock
// seam. The second execution then meets a deadline that has passed.
TEST_F(AgentTest, WaitDeadlineUsesTheDefaultAnswer) {
  AgentRun r = Run(Env("timeout-1", {{"scenario", "wait_timeout"}, {"timeout_s", 3600}, {"policy", "default"}}));
  ASSERT_EQ(r.term["outcome"], "waiting");
  EXPECT_TRUE(r.term["wait"].contains("deadline"));
  ASSERT_EQ(Count("WITH moved AS (UPDATE flowrun.waits SET deadline = now() - interval '1 second'"
                  " WHERE run_uid = 'timeout-1' AND deadline IS NOT NULL RETURNING 1) SELECT count(*) FROM moved"),
            1);
  AgentRun r2 = Run(Env("timeout-1", {{"scenario", "wait_timeout"}, {"timeout_s", 3600}, {"policy", "default"}}, 2));
  EXPECT_EQ(r2.term["outcome"], "succeeded") << r2.output;
  EXPECT_EQ(r2.term["result"]["answer"], "fallback");
}

TEST_F(AgentTest, WaitDeadlineFailsUnderTheFailPolicy) {
  AgentRun r = Run(Env("timeout-2", {{"scenario", "wait_timeout"}, {"timeout_s", 3600}, {"policy", "fail"}}));
  ASSERT_EQ(r.term["outcome"], "waiting");
  ASSERT_EQ(Count("WITH moved AS (UPDATE flowrun.waits SET deadline = now() - interval '1 second'"
                  " WHERE run_uid = 'timeout-2' AND deadline IS NOT NULL RETURNING 1) SELECT count(*) FROM moved"),
            1);
  AgentRun r2 = Run(Env("timeout-2", {{"scenario", "wait_timeout"}, {"timeout_s", 3600}, {"policy", "fail"}}, 2));
  EXPECT_EQ(r2.status.code, kExitFlowFailed);
  EXPECT_NE(r2.term["error"].get<std::string>().find("timed out"), std::string::npos) << r2.term;
}

TEST_F(AgentTest, NamesWithSqlMetacharactersAreData) {
  AgentRun r = Run(Env("sql-1", {{"scenario", "sql_names"}}));
  ASSERT_EQ(r.term["outcome"], "waiting") << r.output;
  std::string evil = "x'); DROP TABLE flowrun.runs; -- \"quoted\" \\ back";
  EXPECT_EQ(r.term["wait"]["name"], evil);
  ASSERT_TRUE(Admin()->RecordAnswer("sql-1", evil, true, {}).ok());
  AgentRun r2 = Run(Env("sql-1", {{"scenario", "sql_names"}}, 2));
  EXPECT_EQ(r2.term["outcome"], "succeeded") << r2.output;
  EXPECT_EQ(r2.term["result"]["a"], evil);
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.runs"), 1);
}

TEST_F(AgentTest, OversizedOutputFailsCleanly) {
  auto env = Env("big-1", {{"scenario", "big_output"}, {"bytes", 5000}});
  env["FLOWRUN_MAX_OUTPUT_BYTES"] = "1000";
  AgentRun r = Run(env);
  EXPECT_EQ(r.status.code, kExitFlowFailed);
  EXPECT_NE(r.term["error"].get<std::string>().find("over the cap"), std::string::npos) << r.term;
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.checkpoints WHERE run_uid = 'big-1' AND output IS NOT NULL"), 1);
  auto env2 = Env("big-1", {{"scenario", "big_output"}, {"bytes", 5000}}, 2);
  AgentRun r2 = Run(env2);  // default cap: 4 MiB
  EXPECT_EQ(r2.term["outcome"], "succeeded") << r2.output;
  EXPECT_EQ(r2.term["checkpoints"]["cached"], 1);
}

TEST_F(AgentTest, UnserializableOutputFailsCleanly) {
  AgentRun r = Run(Env("utf-1", {{"scenario", "not_serializable"}}));
  EXPECT_EQ(r.status.code, kExitFlowFailed);
  EXPECT_NE(r.term["error"].get<std::string>().find("not serializable"), std::string::npos) << r.term;
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.checkpoints WHERE run_uid = 'utf-1' AND status = 'completed'"), 0);
}

TEST_F(AgentTest, UnknownModelCostIsUnknownNotZeroAndWarnedOnce) {
  AgentRun r = Run(Env("unknown-1", {{"scenario", "unknown_model"}}));
  ASSERT_EQ(r.term["outcome"], "succeeded") << r.output;
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.llm_calls WHERE run_uid = 'unknown-1' AND cost_usd IS NULL"), 3);
  size_t first = r.output.find("mystery-model");
  ASSERT_NE(first, std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("is not in the price table", r.output.find("is not in the price table") + 1), std::string::npos)
      << "warned more than once:\n" << r.output;
  EXPECT_EQ(Admin()->GetRun("unknown-1")->spent.unknown_cost_calls, 3);
}

TEST_F(AgentTest, ArtifactsAreVersionedAndComparableAcrossRuns) {
  ASSERT_EQ(Run(Env("art-1", {{"scenario", "artifacts"}, {"score", 1}})).term["outcome"], "succeeded");
  ASSERT_EQ(Run(Env("art-2", {{"scenario", "artifacts"}, {"score", 2}})).term["outcome"], "succeeded");
  auto admin = Admin();
  auto list = admin->ListArtifacts("art-1");
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 3u);  // blob v1, report v1, report v2
  auto v1 = admin->LoadArtifact("art-1", "report", 1);
  auto latest = admin->LoadArtifact("art-1", "report", 0);
  EXPECT_EQ(json::parse(v1->data)["text"], "draft");
  EXPECT_EQ(json::parse(latest->data)["text"], "final");
  EXPECT_EQ(admin->LoadArtifact("art-1", "blob", 0)->data, std::string("a\0b", 3));
  auto other = admin->LoadArtifact("art-2", "report", 0);
  EXPECT_NE(latest->info.sha256, other->info.sha256);
  EXPECT_EQ(json::diff(json::parse(latest->data), json::parse(other->data)).size(), 1u);
  // A resumed run does not save the cached checkpoint's artifacts again.
  ASSERT_EQ(Run(Env("art-1", {{"scenario", "artifacts"}, {"score", 1}}, 2)).term["outcome"], "succeeded");
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.artifacts WHERE run_uid = 'art-1' AND name = 'report'"), 2);
}

TEST_F(AgentTest, ConnectionLostMidRunReconnects) {
  const std::string uid = "lost-1";
  auto env = Env(uid, {{"scenario", "chain"}, {"steps", 8}, {"sleep_ms", 150}});
  auto child = Spawn(env);
  // Cut the connection once the agent is connected and mid-run: its first
  // checkpoint is stored (so the store's connection exists) and at least 7
  // steps of 150 ms remain. Not a fixed sleep: process start, the schema
  // check and connecting take what a loaded machine makes them take.
  pqxx::connection watcher(conninfo_);
  auto stored = [&] {
    try {
      return !CompletedCheckpoints(watcher, uid).empty();
    } catch (const pqxx::sql_error&) {
      return false;  // the agent has not created the schema yet
    }
  };
  ASSERT_TRUE(flowrun::testing::Eventually(stored, std::chrono::seconds(60)))
      << "the agent never stored a checkpoint";
  int terminated = PostgresEnvironment::Server().TerminateConnections(db_, "flowrun:%");
  AgentRun r = Finish(*child, env);
  EXPECT_GE(terminated, 1);
  ASSERT_TRUE(r.status.ok()) << r.output;
  EXPECT_EQ(r.term["outcome"], "succeeded");
  for (int i = 1; i <= 8; ++i) EXPECT_EQ(llm_->CountForPrompt(ChainPrompt(i, uid)), 1) << i;
}

TEST_F(AgentTest, DatabaseUnreachableAtStartGivesBoundedRetriesAndDistinctExit) {
  auto env = Env("down-1", {{"scenario", "loop"}});
  env["FLOWRUN_DATABASE_URL"] = "host=127.0.0.1 port=1 user=flowrun dbname=x password=hunter2";
  env["FLOWRUN_DB_CONNECT_ATTEMPTS"] = "3";
  auto started = std::chrono::steady_clock::now();
  AgentRun r = Run(env);
  auto took = std::chrono::steady_clock::now() - started;
  EXPECT_EQ(r.status.code, kExitDatabaseUnavailable) << r.output;
  EXPECT_EQ(r.term["outcome"], "database_unavailable");
  EXPECT_NE(r.term["error"].get<std::string>().find("after 3 attempts"), std::string::npos) << r.term;
  EXPECT_LT(took, std::chrono::seconds(20));
  EXPECT_EQ(r.output.find("hunter2"), std::string::npos) << r.output;
}

TEST_F(AgentTest, MalformedConnectionStringIsAConfigError) {
  auto env = Env("bad-conn", {{"scenario", "loop"}});
  env["FLOWRUN_DATABASE_URL"] = "host=127.0.0.1 password=hunter2 port";
  AgentRun r = Run(env);
  EXPECT_EQ(r.status.code, kExitConfigError) << r.output;
  EXPECT_EQ(r.term["outcome"], "config_error");
  EXPECT_NE(r.term["error"].get<std::string>().find("malformed"), std::string::npos) << r.term;
  EXPECT_EQ(r.output.find("hunter2"), std::string::npos);
  EXPECT_EQ(r.term.dump().find("hunter2"), std::string::npos);
}

TEST_F(AgentTest, MissingEnvironmentIsAConfigError) {
  auto env = Env("x", {{"scenario", "loop"}});
  env.erase("FLOWRUN_RUN_UID");
  ChildProcess::Options o;
  o.unset_env = {"FLOWRUN_RUN_UID"};
  auto child = ChildProcess::Spawn({TEST_AGENT_PATH}, env, o);
  AgentRun r = Finish(*child, env);
  EXPECT_EQ(r.status.code, kExitConfigError);
  EXPECT_NE(r.term["error"].get<std::string>().find("FLOWRUN_RUN_UID"), std::string::npos) << r.term;
}

TEST_F(AgentTest, APriceTableThatDoesNotParseIsAConfigError) {
  WriteFile(dir_ / "prices.yaml", "models: [unclosed\n");
  AgentRun r = Run(Env("prices-1", {{"scenario", "loop"}}));
  EXPECT_EQ(r.status.code, kExitConfigError);
  EXPECT_NE(r.term["error"].get<std::string>().find("price table"), std::string::npos) << r.term;
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.runs"), 0);  // nothing touched
}

}  // namespace
}  // namespace flowrun

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::AddGlobalTestEnvironment(new flowrun::testing::PostgresEnvironment());
  return RUN_ALL_TESTS();
}
