// End to end at once: 50 FlowRuns applied in one `kubectl apply`, each a
// short test-agent flow (two checkpoints, one LLM call each). All must
// succeed with one Job each and every LLM call made once. Prints how long
// the batch took (a figure, not an assertion).
#include <algorithm>
#include <chrono>
#include <iostream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "e2e/e2e_world.h"

namespace flowrun::testing {
namespace {

using nlohmann::json;

TEST(E2eScale, FiftyFlowRunsAppliedAtOnceAllSucceed) {
  E2eWorld& w = E2eWorld::Get();
  constexpr int kRuns = 50;
  constexpr int kSteps = 2;
  std::string all;
  std::vector<std::string> names;
  for (int i = 1; i <= kRuns; ++i) {
    names.push_back("many-" + std::to_string(i));
    all += "---\n" + w.TestAgentRunYaml(names.back(), R"({"scenario": "chain", "steps": )" + std::to_string(kSteps) +
                                                           R"(, "prefix": ")" + names.back() + "\"}");
  }
  const auto start = std::chrono::steady_clock::now();
  w.ApplyYaml("many.yaml", all);
  auto r = w.KubectlResult(
      {"wait", "--for=jsonpath={.status.phase}=Succeeded", "--timeout=600s", "flowrun", "--all"});
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_TRUE(r.ok()) << r.output << "\n"
                      << w.Kubectl({"get", "flowruns"}, true) << "\ncontroller log tail:\n"
                      << Tail(w.ControllerLog(), 4000);
  std::cerr << kRuns << " FlowRuns applied at once: all Succeeded after " << seconds << " s\n";

  // One Job each, never a retry.
  std::string jobs = w.Kubectl({"get", "jobs", "-l", "flowrun.dev/run", "-o",
                                "jsonpath={range .items[*]}{.metadata.name}{\"\\n\"}{end}"});
  for (const auto& n : names) EXPECT_NE(jobs.find(n + "-a1\n"), std::string::npos) << n;
  EXPECT_EQ(std::count(jobs.begin(), jobs.end(), '\n'), kRuns) << jobs;
  EXPECT_EQ(w.Psql("SELECT count(*) FROM flowrun.runs WHERE status = 'succeeded'"), std::to_string(kRuns));

  json stats = w.llm->Stats();
  EXPECT_EQ(stats.value("succeeded", 0), kRuns * kSteps) << stats.dump();
  for (auto it = stats["by_prompt"].begin(); it != stats["by_prompt"].end(); ++it)
    EXPECT_EQ(it.value().get<int64_t>(), 1) << it.key();
  json list = w.GetJson("flowruns");
  ASSERT_TRUE(list.is_object());
  ASSERT_EQ(list["items"].size(), static_cast<size_t>(kRuns));
  for (const auto& fr : list["items"]) {
    const std::string n = fr["metadata"]["name"];
    EXPECT_EQ(fr["status"]["checkpoints"].value("completed", -1), kSteps) << n;
    EXPECT_EQ(fr["status"].value("attempt", -1), 1) << n;
  }
}

}  // namespace
}  // namespace flowrun::testing
