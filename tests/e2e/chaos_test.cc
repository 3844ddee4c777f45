// End to end under failures of the control plane's pieces: the controller
// SIGKILLed at random points again and again while runs are in flight (and
// their waits answered meanwhile), and kube-apiserver killed mid-run. The
// runs must converge with nothing done twice: one Job per attempt ever (a
// kubectl watch records every Job the apiserver ever had), every answer
// recorded once, no completed LLM call repeated.
//
// FLOWRUN_E2E_SEED replays a chaos schedule (the seed is printed);
// FLOWRUN_E2E_CHAOS_KILLS sets the number of kills (default 20).
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "e2e/e2e_world.h"

namespace flowrun::testing {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;

// Every version of every FlowRun Job the apiserver reports, from a
// `kubectl get jobs --watch` that runs for the object's lifetime.
class JobWatch {
 public:
  explicit JobWatch(E2eWorld& w) {
    process_ = ChildProcess::Spawn(
        {w.cluster->bin_dir() + "/kubectl", "--kubeconfig", w.cluster->admin_kubeconfig(), "-n", w.options.ns, "get",
         "jobs", "-l", "flowrun.dev/run", "--watch", "-o",
         R"(jsonpath={.metadata.labels.flowrun\.dev/run} {.metadata.labels.flowrun\.dev/attempt} {.metadata.name} {.metadata.uid}{"\n"})"});
  }
  ~JobWatch() { process_->Kill(SIGKILL); }

  // run -> attempt -> {name uid} of every Job seen.
  std::map<std::string, std::map<std::string, std::set<std::string>>> Seen() const {
    std::map<std::string, std::map<std::string, std::set<std::string>>> seen;
    std::istringstream in(process_->Output());
    for (std::string run, attempt, name, uid; in >> run >> attempt >> name >> uid;)
      seen[run][attempt].insert(name + " " + uid);
    return seen;
  }
  std::string Raw() const { return process_->Output(); }

 private:
  std::unique_ptr<ChildProcess> process_;
};

// Asserts one Job per attempt ever, named <run>-a<attempt>, and exactly
// `attempts` attempts.
void ExpectOneJobPerAttempt(E2eWorld& w, const JobWatch& watch, const std::string& run, int attempts) {
  auto seen = watch.Seen();
  ASSERT_TRUE(seen.count(run)) << "no Job seen for " << run << "\n" << watch.Raw();
  EXPECT_EQ(seen[run].size(), static_cast<size_t>(attempts))
      << run << " attempts: " << w.Get(run, "{.status.attempts}") << "\n" << watch.Raw();
  for (const auto& [attempt, jobs] : seen[run]) {
    EXPECT_EQ(jobs.size(), 1u) << "two Jobs for attempt " << attempt << " of " << run << "\n" << watch.Raw();
    for (const auto& j : jobs) EXPECT_EQ(j.substr(0, j.find(' ')), run + "-a" + attempt) << j;
  }
}

// Answers 'proceed' = true on every research run that waits and has no answer yet.
void AnswerWaiting(E2eWorld& w, const std::vector<std::string>& research) {
  for (const auto& name : research) {
    json fr = w.GetJson("flowrun/" + name);
    if (!fr.is_object()) continue;
    const json st = fr.value("status", json::object());
    if (st.value("phase", "") == "Waiting" && !st.value("answers", json::object()).contains("proceed"))
      w.Answer(name, "proceed", "true");
  }
}

bool AllSucceeded(E2eWorld& w, const std::vector<std::string>& names) {
  for (const auto& n : names)
    if (w.Get(n, "{.status.phase}") != "Succeeded") return false;
  return true;
}

int EnvInt(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::atoi(v) : fallback;
}

TEST(E2eChaos, ControllerSigkilledAtRandomPointsConverges) {
  E2eWorld& w = E2eWorld::Get();
  JobWatch watch(w);
  w.llm->Reset();
  const char* seed_env = std::getenv("FLOWRUN_E2E_SEED");
  const unsigned seed = seed_env && *seed_env ? static_cast<unsigned>(std::strtoul(seed_env, nullptr, 10))
                                              : std::random_device{}();
  const int kills = EnvInt("FLOWRUN_E2E_CHAOS_KILLS", 20);
  std::cerr << "chaos seed " << seed << " (FLOWRUN_E2E_SEED to replay), " << kills << " kills\n";
  std::mt19937 rng(seed);
  auto between = [&](int lo, int hi) { return milliseconds(std::uniform_int_distribution<int>(lo, hi)(rng)); };

  const std::vector<std::string> research = {"chaos-r1", "chaos-r2", "chaos-r3"};
  const std::vector<std::string> chains = {"chaos-c1", "chaos-c2", "chaos-c3"};
  std::vector<std::string> all = research;
  all.insert(all.end(), chains.begin(), chains.end());
  // Kill at random points: during start-up, the informers' sync, reconciles,
  // Job creation, status patches. Runs are applied along the way (one every
  // kills/6 rounds) so that some are in flight throughout; answers arrive
  // while a controller lives or while none does.
  size_t applied = 0;
  auto apply_next = [&] {
    const std::string& n = all[applied++];
    if (applied <= research.size()) w.ApplyResearchRun(n);
    else w.ApplyTestAgentRun(n, R"({"scenario": "chain", "steps": 6, "sleep_ms": 250, "prefix": ")" + n + "\"}");
  };
  const int every = std::max(1, kills / static_cast<int>(all.size()));
  for (int k = 0; k < kills; ++k) {
    if (k % every == 0 && applied < all.size()) apply_next();
    w.EnsureController();
    std::this_thread::sleep_for(between(150, 2500));
    if (std::uniform_int_distribution<int>(0, 1)(rng)) AnswerWaiting(w, research);
    w.KillController();
    std::this_thread::sleep_for(between(0, 400));
    if (std::uniform_int_distribution<int>(0, 1)(rng)) AnswerWaiting(w, research);
  }
  while (applied < all.size()) apply_next();
  // How much work the killed controllers did (the chaos overlapped with the runs, not just start-ups).
  {
    const std::string log = w.ControllerLog();
    size_t reconciles = 0, jobs_created = 0;
    for (size_t p = 0; (p = log.find("\"msg\":\"reconcile\"", p)) != std::string::npos; ++p) ++reconciles;
    for (size_t p = 0; (p = log.find("CreateJob(", p)) != std::string::npos; ++p) ++jobs_created;
    std::string phases;
    for (const auto& n : all) phases += " " + n + "=" + w.Get(n, "{.status.phase}");
    std::cerr << "during the kills: " << reconciles << " reconciles logged, " << jobs_created
              << " CreateJob actions; phases after them:" << phases << "\n";
    EXPECT_GT(jobs_created, 0u) << "the controllers were killed before doing anything";
  }
  w.EnsureController();
  ASSERT_TRUE(Eventually(
      [&] {
        AnswerWaiting(w, research);
        return AllSucceeded(w, all);
      },
      std::chrono::seconds(240)))
      << [&] {
           std::string d;
           for (const auto& n : all) d += w.Diagnostics(n) + "\n";
           return d;
         }();

  for (const auto& r : research) {
    SCOPED_TRACE(r);
    ExpectOneJobPerAttempt(w, watch, r, 2);
    const std::string uid = w.Uid(r);
    EXPECT_EQ(w.Psql("SELECT count(*) || ' ' || string_agg(answer::text, ',') FROM flowrun.waits WHERE run_uid = '" +
                     uid + "'"),
              "1 true");
    EXPECT_NE(w.Get(r, "{.status.result}").find("\"done\""), std::string::npos);
  }
  for (const auto& c : chains) {
    SCOPED_TRACE(c);
    ExpectOneJobPerAttempt(w, watch, c, 1);
    EXPECT_EQ(w.Psql("SELECT count(*) FROM flowrun.checkpoints WHERE status = 'completed' AND run_uid = '" +
                     w.Uid(c) + "'"),
              "6");
  }
  // No LLM call made twice: 3 x 2 research calls, 3 x 6 chain steps.
  json stats = w.llm->Stats();
  for (auto it = stats["by_prompt"].begin(); it != stats["by_prompt"].end(); ++it)
    EXPECT_EQ(it.value().get<int64_t>(), 1) << it.key();
  EXPECT_EQ(stats.value("succeeded", 0), 3 * 2 + 3 * 6) << stats.dump();
  if (::testing::Test::HasFailure()) {
    // Every killed controller's log, for the post-mortem (the seed replays the kill schedule).
    const char* t = std::getenv("TMPDIR");
    const std::string path = std::string(t && *t ? t : "/tmp") + "/flowrun-chaos-controller.log";
    std::ofstream(path) << w.ControllerLog();
    std::cerr << "controller logs of every kill: " << path << "\n";
  }
}

// kube-apiserver SIGKILLed while a run executes and another waits, then
// started again: the controller's watches fail, it relists and converges;
// a run applied after the restart is picked up too.
TEST(E2eChaos, ApiserverKilledMidRunControllerRelistsAndConverges) {
  E2eWorld& w = E2eWorld::Get();
  w.EnsureController();
  w.llm->Reset();
  w.ApplyResearchRun("api-r1");
  w.ApplyTestAgentRun("api-c1", R"({"scenario": "chain", "steps": 8, "sleep_ms": 400, "prefix": "api-c1"})");
  ASSERT_TRUE(w.WaitPhase("api-r1", "Waiting"));
  ASSERT_TRUE(w.WaitPhase("api-c1", "Running", "120s"));
  const std::string c1 = w.Uid("api-c1");
  ASSERT_FALSE(c1.empty());
  auto c1_progress = [&] {
    return w.Psql("SELECT (SELECT count(*) FROM flowrun.checkpoints WHERE status = 'completed' AND run_uid = '" + c1 +
                  "') || ' ' || coalesce((SELECT status FROM flowrun.runs WHERE run_uid = '" + c1 + "'), '')");
  };
  const std::string before = c1_progress();

  w.cluster->KillApiserver();
  // The agent keeps running without the apiserver: wait until it has written
  // a checkpoint more (or finished) while the apiserver is down. (Nothing to
  // wait for if it finished before the kill, on a very slow machine.)
  if (before.find(" succeeded") == std::string::npos) {
    std::string during;
    EXPECT_TRUE(Eventually(
        [&] {
          during = c1_progress();
          return during != before;
        },
        std::chrono::seconds(60)))
        << "api-c1 made no progress without the apiserver: " << before << " -> " << during;
  }
  w.cluster->StartApiserver();
  ASSERT_TRUE(Eventually([&] { return w.KubectlResult({"get", "flowruns"}).ok(); }, std::chrono::seconds(60)));

  w.Answer("api-r1", "proceed", "true");
  w.ApplyTestAgentRun("api-c2", R"({"scenario": "chain", "steps": 2, "prefix": "api-c2"})");
  EXPECT_TRUE(w.WaitPhase("api-c1", "Succeeded"));
  EXPECT_TRUE(w.WaitPhase("api-r1", "Succeeded"));
  EXPECT_TRUE(w.WaitPhase("api-c2", "Succeeded"));
  EXPECT_TRUE(w.ControllerRunning()) << Tail(w.ControllerLog(), 4000);

  EXPECT_EQ(w.JobsOf("api-r1"), (std::vector<std::string>{"api-r1-a1 1", "api-r1-a2 2"}));
  EXPECT_EQ(w.JobsOf("api-c1"), (std::vector<std::string>{"api-c1-a1 1"}));
  EXPECT_EQ(w.JobsOf("api-c2"), (std::vector<std::string>{"api-c2-a1 1"}));
  json stats = w.llm->Stats();
  for (auto it = stats["by_prompt"].begin(); it != stats["by_prompt"].end(); ++it)
    EXPECT_EQ(it.value().get<int64_t>(), 1) << it.key();
  EXPECT_EQ(stats.value("succeeded", 0), 2 + 8 + 2) << stats.dump();
}

}  // namespace
}  // namespace flowrun::testing
