// Self tests for the harnesses in tests/support: each piece is exercised
// against the real thing (a real postgres, the real python fake over real
// HTTP, real child processes, the real pg-local.sh).
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

// cpprest's U() macro breaks gtest's templates; this switches it off.
#define _TURN_OFF_PLATFORM_STRING
#include <cpprest/http_client.h>

#include "support/child_process.h"
#include "support/fake_llm.h"
#include "support/postgres_server.h"

namespace flowrun::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using ::testing::HasSubstr;

// ---------------------------------------------------------------------------
// ChildProcess

TEST(ChildProcessTest, CapturesStdoutAndStderrAndExitCode) {
  auto child = ChildProcess::Spawn({"/bin/sh", "-c", "echo out; echo err >&2; exit 3"});
  auto status = child->Wait(seconds(10));
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(status->exited);
  EXPECT_EQ(status->code, 3);
  EXPECT_EQ(status->signal, 0);
  EXPECT_FALSE(status->ok());
  EXPECT_EQ(child->Output(), "out\nerr\n");
  EXPECT_EQ(child->ErrorOutput(), "");
}

TEST(ChildProcessTest, SeparateStderr) {
  ChildProcess::Options opts;
  opts.separate_stderr = true;
  auto child = ChildProcess::Spawn({"/bin/sh", "-c", "echo out; echo err >&2"}, {}, opts);
  ASSERT_TRUE(child->Wait(seconds(10)).value().ok());
  EXPECT_EQ(child->Output(), "out\n");
  EXPECT_EQ(child->ErrorOutput(), "err\n");
}

TEST(ChildProcessTest, ArgumentsAreNotInterpretedByAShell) {
  auto child = ChildProcess::Spawn({"printf", "%s|", "a b", "$HOME", "*", "'q'"});
  ASSERT_TRUE(child->Wait(seconds(10)).value().ok());
  EXPECT_EQ(child->Output(), "a b|$HOME|*|'q'|");
}

TEST(ChildProcessTest, ReportsTerminatingSignal) {
  auto child = ChildProcess::Spawn({"/bin/sh", "-c", "kill -TERM $$; sleep 10"});
  auto status = child->Wait(seconds(10));
  ASSERT_TRUE(status.has_value());
  EXPECT_FALSE(status->exited);
  EXPECT_EQ(status->signal, SIGTERM);
  EXPECT_THAT(status->ToString(), HasSubstr("signal 15"));
}

TEST(ChildProcessTest, WaitTimesOutThenKillEndsIt) {
  auto child = ChildProcess::Spawn({"sleep", "30"});
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(child->Wait(milliseconds(200)).has_value());
  EXPECT_GE(std::chrono::steady_clock::now() - start, milliseconds(200));
  EXPECT_TRUE(child->Running());
  EXPECT_TRUE(child->Kill(SIGKILL));
  auto status = child->Wait(seconds(10));
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(status->signal, SIGKILL);
  // Reaped: further signals are refused, and Wait keeps returning the status.
  EXPECT_FALSE(child->Kill(SIGTERM));
  EXPECT_FALSE(child->Running());
  EXPECT_EQ(child->Wait(milliseconds(0))->signal, SIGKILL);
}

TEST(ChildProcessTest, OutputIsReadableWhileRunning) {
  auto child = ChildProcess::Spawn({"/bin/sh", "-c", "echo ready; exec sleep 30"});
  const auto deadline = std::chrono::steady_clock::now() + seconds(10);
  while (child->Output() != "ready\n" && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(10));
  }
  EXPECT_EQ(child->Output(), "ready\n");
  EXPECT_TRUE(child->Running());
}

TEST(ChildProcessTest, RunsInItsOwnProcessGroup) {
  auto child = ChildProcess::Spawn({"sleep", "30"});
  EXPECT_EQ(getpgid(child->pid()), child->pid());
  EXPECT_NE(getpgid(child->pid()), getpgrp());
}

TEST(ChildProcessTest, KillGroupReachesGrandchildren) {
  // The shell backgrounds a grandchild and reports its pid.
  auto child = ChildProcess::Spawn({"/bin/sh", "-c", "sleep 30 & echo $!; wait"});
  std::string out;
  const auto deadline = std::chrono::steady_clock::now() + seconds(10);
  while ((out = child->Output()).find('\n') == std::string::npos &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(10));
  }
  pid_t grandchild = std::stoi(out);
  ASSERT_EQ(kill(grandchild, 0), 0);
  EXPECT_TRUE(child->KillGroup(SIGKILL));
  ASSERT_TRUE(child->Wait(seconds(10)).has_value());
  // The grandchild was reparented to init (or a subreaper), which reaps it.
  bool gone = false;
  for (int i = 0; i < 500 && !gone; ++i) {
    gone = kill(grandchild, 0) != 0;
    if (!gone) std::this_thread::sleep_for(milliseconds(10));
  }
  EXPECT_TRUE(gone) << "grandchild " << grandchild << " survived KillGroup";
}

TEST(ChildProcessTest, DestructorKillsARunningChild) {
  pid_t pid;
  {
    auto child = ChildProcess::Spawn({"sleep", "30"});
    pid = child->pid();
    ASSERT_EQ(kill(pid, 0), 0);
  }
  // Reaped by the destructor, so the pid no longer exists (not even as a
  // zombie). Pid reuse within this window is practically impossible.
  EXPECT_NE(kill(pid, 0), 0);
  EXPECT_EQ(errno, ESRCH);
}

TEST(ChildProcessTest, EnvironmentOverridesAndUnset) {
  ::setenv("FLOWRUN_SELFTEST_KEEP", "kept", 1);
  ::setenv("FLOWRUN_SELFTEST_DROP", "dropped", 1);
  ChildProcess::Options opts;
  opts.unset_env = {"FLOWRUN_SELFTEST_DROP"};
  auto child = ChildProcess::Spawn({"env"}, {{"FLOWRUN_SELFTEST_NEW", "a=b c"}}, opts);
  ASSERT_TRUE(child->Wait(seconds(10)).value().ok());
  std::string out = child->Output();
  EXPECT_THAT(out, HasSubstr("FLOWRUN_SELFTEST_KEEP=kept\n"));
  EXPECT_THAT(out, HasSubstr("FLOWRUN_SELFTEST_NEW=a=b c\n"));
  EXPECT_THAT(out, ::testing::Not(HasSubstr("FLOWRUN_SELFTEST_DROP")));
  ::unsetenv("FLOWRUN_SELFTEST_KEEP");
  ::unsetenv("FLOWRUN_SELFTEST_DROP");
}

TEST(ChildProcessTest, EmptyEnvironmentWhenNotInherited) {
  ChildProcess::Options opts;
  opts.inherit_env = false;
  auto child = ChildProcess::Spawn({"/usr/bin/env"}, {{"ONLY", "1"}}, opts);
  ASSERT_TRUE(child->Wait(seconds(10)).value().ok());
  EXPECT_EQ(child->Output(), "ONLY=1\n");
}

TEST(ChildProcessTest, PathLookupUsesTheChildsPath) {
  // A PATH override must decide which program runs, as with execvp.
  std::string dir = ::testing::TempDir() + "flowrun-childpath-" + std::to_string(getpid());
  std::filesystem::create_directories(dir);
  {
    std::ofstream script(dir + "/flowrun-selftest-prog");
    script << "#!/bin/sh\necho from-override\n";
  }
  chmod((dir + "/flowrun-selftest-prog").c_str(), 0755);
  auto child = ChildProcess::Spawn({"flowrun-selftest-prog"}, {{"PATH", dir + ":/usr/bin:/bin"}});
  ASSERT_TRUE(child->Wait(seconds(10)).value().ok());
  EXPECT_EQ(child->Output(), "from-override\n");
  std::filesystem::remove_all(dir);
}

TEST(ChildProcessTest, WorkingDirectory) {
  ChildProcess::Options opts;
  opts.working_dir = "/";
  auto child = ChildProcess::Spawn({"pwd"}, {}, opts);
  ASSERT_TRUE(child->Wait(seconds(10)).value().ok());
  EXPECT_EQ(child->Output(), "/\n");
}

TEST(ChildProcessTest, MissingProgramThrows) {
  EXPECT_THROW(ChildProcess::Spawn({"flowrun-no-such-program-xyz"}), std::system_error);
  try {
    ChildProcess::Spawn({"/nonexistent/dir/prog"});
    FAIL() << "expected an exception";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code().value(), ENOENT);
    EXPECT_THAT(e.what(), HasSubstr("execve"));
  }
  EXPECT_THROW(ChildProcess::Spawn({}), std::invalid_argument);
}

TEST(ChildProcessTest, DoesNotLeakDescriptors) {
  // Deliberately without O_CLOEXEC, and numbered high so it cannot be
  // confused with the directory handle ls opens itself (usually 3).
  int low = ::open("/dev/null", O_RDONLY);
  ASSERT_GE(low, 0);
  int fd = ::fcntl(low, F_DUPFD, 100);
  ::close(low);
  ASSERT_GE(fd, 100);
  auto child = ChildProcess::Spawn({"ls", "/proc/self/fd"});
  ASSERT_TRUE(child->Wait(seconds(10)).value().ok());
  ::close(fd);
  // ls sees 0, 1, 2 and its own directory handle, nothing of ours.
  std::set<std::string> fds;
  std::istringstream lines(child->Output());
  for (std::string l; std::getline(lines, l);) fds.insert(l);
  EXPECT_EQ(fds.count(std::to_string(fd)), 0u) << child->Output();
  EXPECT_LE(fds.size(), 4u) << child->Output();
}

TEST(ChildProcessTest, RunAsUserWhenRoot) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root";
  ChildProcess::Options opts;
  opts.run_as_user = "postgres";
  opts.working_dir = "/";
  auto child = ChildProcess::Spawn({"id", "-un"}, {}, opts);
  ASSERT_TRUE(child->Wait(seconds(10)).value().ok());
  EXPECT_EQ(child->Output(), "postgres\n");
  opts.run_as_user = "flowrun-no-such-user";
  EXPECT_THROW(ChildProcess::Spawn({"id"}, {}, opts), std::invalid_argument);
}

// ---------------------------------------------------------------------------
// PostgresServer

TEST(PostgresServerTest, StartsAndAnswersQueries) {
  auto pg = PostgresServer::Start();
  EXPECT_TRUE(pg->running());
  EXPECT_GT(pg->port(), 0);
  EXPECT_EQ(pg->Psql("postgres", "select 1"), "1");
  EXPECT_EQ(pg->Psql("postgres", "select current_user"), "flowrun");
  EXPECT_EQ(pg->Psql("postgres", "show server_encoding"), "UTF8");
  // Fast (non-durable) settings by default.
  EXPECT_EQ(pg->Psql("postgres", "show fsync"), "off");
  EXPECT_EQ(pg->Psql("postgres", "show synchronous_commit"), "off");
  // Listening on loopback only.
  EXPECT_EQ(pg->Psql("postgres", "show listen_addresses"), "127.0.0.1");
  EXPECT_EQ(pg->ConnectionString("db1"),
            "host=127.0.0.1 port=" + std::to_string(pg->port()) + " user=flowrun dbname=db1");
  // Multiple rows and columns.
  EXPECT_EQ(pg->Psql("postgres", "select g, g*2 from generate_series(1,3) g"), "1|2\n2|4\n3|6");
}

TEST(PostgresServerTest, PsqlThrowsOnSqlErrorWithMessage) {
  auto pg = PostgresServer::Start();
  try {
    pg->Psql("postgres", "select * from no_such_table");
    FAIL() << "expected an exception";
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), HasSubstr("no_such_table"));
  }
  // A NOTICE goes to stderr, not into the result.
  EXPECT_EQ(pg->Psql("postgres", "drop table if exists nothing_here; select 7"), "7");
}

TEST(PostgresServerTest, CreateDatabaseAndUseIt) {
  auto pg = PostgresServer::Start();
  pg->CreateDatabase("flowrun_a");
  pg->Psql("flowrun_a", "create table t(x int); insert into t values (42)");
  EXPECT_EQ(pg->Psql("flowrun_a", "select x from t"), "42");
  EXPECT_EQ(pg->Psql("flowrun_a", "select current_database()"), "flowrun_a");
  EXPECT_THROW(pg->CreateDatabase("flowrun_a"), std::runtime_error);
  // Names needing quoting work too.
  pg->CreateDatabase("Odd Name\"");
  EXPECT_EQ(pg->Psql("Odd Name\"", "select current_database()"), "Odd Name\"");
  pg->DropDatabase("flowrun_a");
  EXPECT_EQ(pg->Psql("postgres", "select count(*) from pg_database where datname='flowrun_a'"), "0");
}

TEST(PostgresServerTest, StopThenRestartKeepsDataAndPort) {
  auto pg = PostgresServer::Start();
  const int port = pg->port();
  pg->Psql("postgres", "create table kept(v text); insert into kept values ('still here')");
  pg->Stop();
  EXPECT_FALSE(pg->running());
  EXPECT_THROW(pg->Psql("postgres", "select 1"), std::runtime_error);  // unreachable
  pg->Restart();
  EXPECT_TRUE(pg->running());
  EXPECT_EQ(pg->port(), port);
  EXPECT_EQ(pg->Psql("postgres", "select v from kept"), "still here");
  EXPECT_THAT(pg->LogTail(0), HasSubstr("database system is shut down"));
}

TEST(PostgresServerTest, ImmediateStopOfDurableServerKeepsCommits) {
  // Crash-like stop: committed data comes back through WAL recovery. (With
  // durable=false, synchronous_commit=off may lose the newest commits here;
  // see PostgresServer::Options.)
  PostgresServer::Options opts;
  opts.durable = true;
  auto pg = PostgresServer::Start(opts);
  pg->Psql("postgres", "create table kept(v text); insert into kept values ('a')");
  pg->Psql("postgres", "insert into kept values ('b')");
  pg->Stop(PostgresServer::StopMode::kImmediate);
  pg->Restart();
  EXPECT_EQ(pg->Psql("postgres", "select string_agg(v, ',' order by v) from kept"), "a,b");
  EXPECT_THAT(pg->LogTail(0), HasSubstr("redo"));  // recovery really ran
}

TEST(PostgresServerTest, TwoServersAtOnceAreIndependent) {
  auto a = PostgresServer::Start();
  auto b = PostgresServer::Start();
  EXPECT_NE(a->port(), b->port());
  EXPECT_NE(a->data_dir(), b->data_dir());
  a->Psql("postgres", "create table only_in_a(x int)");
  EXPECT_EQ(b->Psql("postgres", "select to_regclass('only_in_a') is null"), "t");
}

TEST(PostgresServerTest, TerminateConnectionsByApplicationName) {
  auto pg = PostgresServer::Start();
  pg->CreateDatabase("app");
  // A real client session that stays connected: psql reading from a pipe
  // would need stdin, so use pg_sleep in a separate psql process instead.
  auto victim = ChildProcess::Spawn(
      {pg->bin_dir() + "/psql", "-X", "-d", pg->ConnectionString("app") + " application_name=victim_1",
       "-c", "select pg_sleep(60)"});
  auto bystander = ChildProcess::Spawn(
      {pg->bin_dir() + "/psql", "-X", "-d", pg->ConnectionString("app") + " application_name=bystander",
       "-c", "select pg_sleep(60)"});
  const auto deadline = std::chrono::steady_clock::now() + seconds(20);
  while (pg->Psql("postgres", "select count(*) from pg_stat_activity where datname='app'") != "2" &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(50));
  }
  EXPECT_EQ(pg->TerminateConnections("app", "victim%"), 1);
  auto status = victim->Wait(seconds(10));
  ASSERT_TRUE(status.has_value()) << "victim still connected";
  EXPECT_FALSE(status->ok());
  EXPECT_THAT(victim->Output(), HasSubstr("terminat"));
  EXPECT_TRUE(bystander->Running());
  EXPECT_EQ(pg->TerminateConnections("other_db", "%"), 0);
  EXPECT_EQ(pg->TerminateConnections("", "bystander"), 1);
  EXPECT_TRUE(bystander->Wait(seconds(10)).has_value());
}

TEST(PostgresServerTest, DurableAndExtraConf) {
  PostgresServer::Options opts;
  opts.durable = true;
  opts.extra_conf = "work_mem = '7MB'\napplication_name = 'from_conf'";
  auto pg = PostgresServer::Start(opts);
  EXPECT_EQ(pg->Psql("postgres", "show fsync"), "on");
  EXPECT_EQ(pg->Psql("postgres", "show work_mem"), "7MB");
}

TEST(PostgresServerTest, BadExtraConfFailsWithLogInMessage) {
  PostgresServer::Options opts;
  opts.extra_conf = "no_such_setting_xyz = 1";
  try {
    PostgresServer::Start(opts);
    FAIL() << "expected an exception";
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), HasSubstr("no_such_setting_xyz"));
  }
}

TEST(PostgresServerTest, DestructorStopsServerAndRemovesDirectory) {
  std::string data_dir;
  int port;
  {
    auto pg = PostgresServer::Start();
    data_dir = pg->data_dir();
    port = pg->port();
    ASSERT_TRUE(std::filesystem::exists(data_dir + "/PG_VERSION"));
  }
  EXPECT_FALSE(std::filesystem::exists(std::filesystem::path(data_dir).parent_path()));
  auto probe = ChildProcess::Spawn({"pg_isready", "-h", "127.0.0.1", "-p", std::to_string(port)});
  auto status = probe->Wait(seconds(10));
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(status->code, 2) << "pg_isready: " << probe->Output();  // 2 = no response
}

// PostgresEnvironment is registered in main() below; its server is lazy.
TEST(PostgresEnvironmentTest, SharedServerAndPerTestDatabase) {
  PostgresServer& pg = PostgresEnvironment::Server();
  EXPECT_EQ(&pg, &PostgresEnvironment::Server());
  std::string db = PostgresEnvironment::CreateDatabaseForCurrentTest();
  EXPECT_EQ(db, "t_postgresenvironmenttest_sharedserverandpertestdatabase");
  EXPECT_EQ(pg.Psql(db, "select current_database()"), db);
  // Calling it again (as --gtest_repeat would) starts from an empty database.
  pg.Psql(db, "create table leftover(x int)");
  EXPECT_EQ(PostgresEnvironment::CreateDatabaseForCurrentTest(), db);
  EXPECT_EQ(pg.Psql(db, "select to_regclass('leftover') is null"), "t");
}

// ---------------------------------------------------------------------------
// FakeLlm

struct HttpReply {
  int status;
  nlohmann::json body;
  std::string retry_after;
};

HttpReply Chat(const FakeLlm& llm, const nlohmann::json& request, const std::string& api_key) {
  namespace http = web::http;
  http::client::http_client client(llm.base_url());
  http::http_request req(http::methods::POST);
  req.set_request_uri("/chat/completions");
  if (!api_key.empty()) req.headers().add("Authorization", "Bearer " + api_key);
  req.set_body(request.dump(), "application/json");
  http::http_response resp = client.request(req).get();
  HttpReply reply{resp.status_code(), nlohmann::json::parse(resp.extract_utf8string(true).get()), ""};
  if (resp.headers().has("Retry-After")) reply.retry_after = resp.headers()["Retry-After"];
  return reply;
}

nlohmann::json Request(const std::string& model, const std::string& user_message) {
  return {{"model", model},
          {"max_tokens", 64},
          {"messages",
           {{{"role", "system"}, {"content", "be brief"}}, {{"role", "user"}, {"content", user_message}}}}};
}

TEST(FakeLlmTest, AnswersAChatRequestInOpenAiShape) {
  auto llm = FakeLlm::Start();
  EXPECT_EQ(llm->base_url(), "http://127.0.0.1:" + std::to_string(llm->port()) + "/v1");
  HttpReply r = Chat(*llm, Request("gpt-test", "hello there"), "");
  ASSERT_EQ(r.status, 200) << r.body.dump();
  EXPECT_EQ(r.body["object"], "chat.completion");
  EXPECT_EQ(r.body["model"], "gpt-test");
  EXPECT_TRUE(r.body["id"].is_string());
  EXPECT_TRUE(r.body["created"].is_number_integer());
  ASSERT_EQ(r.body["choices"].size(), 1u);
  EXPECT_EQ(r.body["choices"][0]["index"], 0);
  EXPECT_EQ(r.body["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(r.body["choices"][0]["message"]["content"], "reply to: hello there");
  EXPECT_EQ(r.body["choices"][0]["finish_reason"], "stop");
  // ("be brief" + "hello there") = 19 chars -> 19/4+1 = 5; "reply to: hello there" = 21 -> 6.
  EXPECT_EQ(r.body["usage"]["prompt_tokens"], 5);
  EXPECT_EQ(r.body["usage"]["completion_tokens"], 6);
  EXPECT_EQ(r.body["usage"]["total_tokens"], 11);
  EXPECT_EQ(r.body["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
}

TEST(FakeLlmTest, CountsPerPromptAndModelAndResets) {
  auto llm = FakeLlm::Start();
  Chat(*llm, Request("m1", "a"), "");
  Chat(*llm, Request("m1", "a"), "");
  Chat(*llm, Request("m2", "b"), "");
  EXPECT_EQ(llm->Total(), 3);
  EXPECT_EQ(llm->CountForPrompt("a"), 2);
  EXPECT_EQ(llm->CountForPrompt("b"), 1);
  EXPECT_EQ(llm->CountForPrompt("never"), 0);
  EXPECT_EQ(llm->CountForModel("m1"), 2);
  EXPECT_EQ(llm->CountForModel("m2"), 1);
  nlohmann::json requests = llm->Requests();
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_EQ(requests[2]["body"]["model"], "m2");
  EXPECT_EQ(requests[2]["body"]["max_tokens"], 64);
  llm->Reset();
  EXPECT_EQ(llm->Total(), 0);
  EXPECT_EQ(llm->CountForPrompt("a"), 0);
  EXPECT_TRUE(llm->Requests().empty());
}

TEST(FakeLlmTest, CountsConcurrentRequestsExactly) {
  auto llm = FakeLlm::Start();
  constexpr int kThreads = 4, kPerThread = 10;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kPerThread; ++i) Chat(*llm, Request("m", "same"), "");
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(llm->CountForPrompt("same"), kThreads * kPerThread);
}

TEST(FakeLlmTest, ContentIsTruncatedAndMultipartTextIsJoined) {
  auto llm = FakeLlm::Start();
  HttpReply r = Chat(*llm, Request("m", std::string(500, 'x')), "");
  EXPECT_EQ(r.body["choices"][0]["message"]["content"].get<std::string>().size(), 200u);
  nlohmann::json parts = {
      {"model", "m"},
      {"messages",
       {{{"role", "user"},
         {"content", {{{"type", "text"}, {"text", "part1 "}}, {{"type", "text"}, {"text", "part2"}}}}}}}};
  r = Chat(*llm, parts, "");
  EXPECT_EQ(r.body["choices"][0]["message"]["content"], "reply to: part1 part2");
  EXPECT_EQ(llm->CountForPrompt("part1 part2"), 1);
}

TEST(FakeLlmTest, FailNextReturnsConfiguredStatusThenRecovers) {
  auto llm = FakeLlm::Start();
  llm->Configure({{"fail_next", 2}, {"fail_status", 429}, {"retry_after", 3}});
  HttpReply r1 = Chat(*llm, Request("m", "p"), "");
  EXPECT_EQ(r1.status, 429);
  EXPECT_EQ(r1.retry_after, "3");
  EXPECT_TRUE(r1.body["error"]["message"].is_string());
  EXPECT_EQ(r1.body["error"]["code"], "rate_limit_exceeded");
  EXPECT_EQ(Chat(*llm, Request("m", "p"), "").status, 429);
  EXPECT_EQ(Chat(*llm, Request("m", "p"), "").status, 200);
  nlohmann::json stats = llm->Stats();
  EXPECT_EQ(stats["total"], 3);
  EXPECT_EQ(stats["failed"], 2);
  EXPECT_EQ(stats["by_prompt"]["p"], 1);  // failures are not counted per prompt

  llm->Configure({{"fail_next", 1}, {"fail_status", 500}, {"retry_after", nullptr}});
  HttpReply r500 = Chat(*llm, Request("m", "p"), "");
  EXPECT_EQ(r500.status, 500);
  EXPECT_EQ(r500.retry_after, "");
  EXPECT_EQ(r500.body["error"]["type"], "server_error");
}

TEST(FakeLlmTest, UsageOverrideAndLatency) {
  auto llm = FakeLlm::Start();
  llm->Configure({{"usage", {{"prompt_tokens", 1000}, {"cached_tokens", 800}}}, {"latency_ms", 300}});
  const auto start = std::chrono::steady_clock::now();
  HttpReply r = Chat(*llm, Request("m", "hello there"), "");
  EXPECT_GE(std::chrono::steady_clock::now() - start, milliseconds(300));
  EXPECT_EQ(r.body["usage"]["prompt_tokens"], 1000);
  EXPECT_EQ(r.body["usage"]["completion_tokens"], 6);  // not overridden
  EXPECT_EQ(r.body["usage"]["total_tokens"], 1006);
  EXPECT_EQ(r.body["usage"]["prompt_tokens_details"]["cached_tokens"], 800);
  EXPECT_THROW(llm->Configure({{"no_such_knob", 1}}), std::runtime_error);
}

TEST(FakeLlmTest, ApiKeyIsEnforced) {
  auto llm = FakeLlm::Start("sk-test-123");
  EXPECT_EQ(llm->api_key(), "sk-test-123");
  HttpReply none = Chat(*llm, Request("m", "p"), "");
  EXPECT_EQ(none.status, 401);
  EXPECT_EQ(none.body["error"]["code"], "invalid_api_key");
  EXPECT_EQ(Chat(*llm, Request("m", "p"), "wrong").status, 401);
  EXPECT_EQ(Chat(*llm, Request("m", "p"), "sk-test-123").status, 200);
  EXPECT_EQ(llm->Failed(), 2);
  EXPECT_EQ(llm->CountForPrompt("p"), 1);
}

TEST(FakeLlmTest, DestructorStopsTheServer) {
  std::string url;
  {
    auto llm = FakeLlm::Start();
    url = llm->base_url();
  }
  web::http::client::http_client_config cfg;
  cfg.set_timeout(seconds(2));
  web::http::client::http_client client(url, cfg);
  EXPECT_ANY_THROW(client.request(web::http::methods::GET, "/models").get());
}

TEST(FakeLlmScriptTest, WritesPortFileAndExitsCleanlyOnSigterm) {
  char templ[] = "/tmp/flowrun-fakescript-XXXXXX";
  ASSERT_NE(mkdtemp(templ), nullptr);
  const std::string port_file = std::string(templ) + "/port";
  auto child = ChildProcess::Spawn({"python3", FLOWRUN_FAKE_LLM_SCRIPT_FOR_TEST, "--port", "0",
                                    "--port-file", port_file});
  int port = 0;
  const auto deadline = std::chrono::steady_clock::now() + seconds(10);
  while (port == 0 && std::chrono::steady_clock::now() < deadline) {
    std::ifstream in(port_file);
    if (!(in >> port)) std::this_thread::sleep_for(milliseconds(20));
  }
  ASSERT_GT(port, 0) << child->Output();
  // Only the final file remains: the temporary one was renamed into place.
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(templ),
                          std::filesystem::directory_iterator()), 1);
  web::http::client::http_client client("http://127.0.0.1:" + std::to_string(port));
  EXPECT_EQ(client.request(web::http::methods::GET, "/__fake/stats").get().status_code(), 200);
  ASSERT_TRUE(child->Kill(SIGTERM));
  auto status = child->Wait(seconds(10));
  ASSERT_TRUE(status.has_value()) << "did not exit on SIGTERM";
  EXPECT_TRUE(status->ok()) << status->ToString() << "\n" << child->Output();
  std::filesystem::remove_all(templ);
}

// ---------------------------------------------------------------------------
// scripts/pg-local.sh

struct ScriptRun {
  ExitStatus status;
  std::string out;
  std::string err;
};

ScriptRun PgLocal(const std::string& cmd, const std::string& dir) {
  ChildProcess::Options opts;
  opts.separate_stderr = true;
  auto child = ChildProcess::Spawn({FLOWRUN_PG_LOCAL_SCRIPT, cmd, dir}, {}, opts);
  auto status = child->Wait(seconds(120));
  if (!status) throw std::runtime_error("pg-local.sh " + cmd + " timed out");
  return {*status, child->Output(), child->ErrorOutput()};
}

std::string LastLine(const std::string& s) {
  std::string t = s;
  while (!t.empty() && t.back() == '\n') t.pop_back();
  auto nl = t.rfind('\n');
  return nl == std::string::npos ? t : t.substr(nl + 1);
}

TEST(PgLocalScriptTest, StartUrlStopIsIdempotent) {
  // Under /tmp: the postgres user (when we are root) must reach the dir.
  char templ[] = "/tmp/flowrun-pglocal-XXXXXX";
  ASSERT_NE(mkdtemp(templ), nullptr);
  ASSERT_EQ(chmod(templ, 0755), 0);  // mkdtemp's 0700 would lock the postgres user out
  const std::string dir = std::string(templ) + "/pg";
  struct Cleanup {
    std::string root, dir;
    ~Cleanup() {
      PgLocal("stop", dir);
      std::filesystem::remove_all(root);
    }
  } cleanup{templ, dir};

  ScriptRun start = PgLocal("start", dir);
  ASSERT_TRUE(start.status.ok()) << start.err;
  const std::string url = LastLine(start.out);
  EXPECT_EQ(start.out, url + "\n") << "stdout must hold only the connection string";
  EXPECT_THAT(url, ::testing::MatchesRegex("postgresql://flowrun@127\\.0\\.0\\.1:[0-9]+/flowrun"));

  auto psql = ChildProcess::Spawn({"psql", "-X", "-At", "-d", url, "-c",
                                   "select current_database(), current_setting('fsync')"});
  ASSERT_TRUE(psql->Wait(seconds(30)).value().ok()) << psql->Output();
  EXPECT_EQ(psql->Output(), "flowrun|on\n");

  ScriptRun again = PgLocal("start", dir);
  ASSERT_TRUE(again.status.ok()) << again.err;
  EXPECT_EQ(LastLine(again.out), url);
  ScriptRun u = PgLocal("url", dir);
  ASSERT_TRUE(u.status.ok()) << u.err;
  EXPECT_EQ(LastLine(u.out), url);
  EXPECT_EQ(PgLocal("status", dir).status.code, 0);

  ASSERT_TRUE(PgLocal("stop", dir).status.ok());
  EXPECT_EQ(PgLocal("status", dir).status.code, 3);
  EXPECT_EQ(PgLocal("url", dir).status.code, 1);
  EXPECT_TRUE(PgLocal("stop", dir).status.ok());  // stopping twice is fine

  // Restart keeps the data (and, while free, the port).
  ScriptRun restart = PgLocal("start", dir);
  ASSERT_TRUE(restart.status.ok()) << restart.err;
  EXPECT_EQ(LastLine(restart.out), url);
}

}  // namespace
}  // namespace flowrun::testing

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::AddGlobalTestEnvironment(new flowrun::testing::PostgresEnvironment());
  return RUN_ALL_TESTS();
}
