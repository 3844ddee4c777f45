// The fixture of the Execution engine's tests (execution_test.cc,
// replay_test.cc): executions over a real PostgreSQL (store_fixture.h), with
// exit codes and log lines captured instead of ending the test process.
#pragma once

#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "flowrun/execution.h"
#include "flowrun/flow.h"
#include "store/store_fixture.h"

namespace flowrun::store_test {

class EngineTest : public StoreTest {
 protected:
  void SetUp() override {
    StoreTest::SetUp();
    dir_ = std::filesystem::temp_directory_path() / ("flowrun-engine-test-" + db_);
    std::filesystem::create_directories(dir_);
    auto parsed = PriceTable::Parse("models:\n  gpt-4o-mini: {input: 5.0, output: 5.0}\n", "test prices");
    prices_ = Must(std::move(parsed), "prices");
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  RunEnvironment Env(const std::string& uid, int attempt = 1) {
    RunEnvironment env;
    env.run = Ident(uid);
    env.attempt = attempt;
    env.termination_message_path = (dir_ / ("term-" + uid + "-" + std::to_string(attempt))).string();
    return env;
  }

  // An execution of `uid` on a store of its own; exit codes and log lines are
  // captured instead of ending the test process.
  std::unique_ptr<Execution> Open(const std::string& uid, int attempt = 1, RunEnvironment* env_out = nullptr,
                                  std::optional<double> budget = std::nullopt) {
    RunEnvironment env = Env(uid, attempt);
    env.initial_budget_usd = budget;
    if (env_out) *env_out = env;
    return OpenEnv(env);
  }
  // The same from an environment the test made (Env(), then changed).
  std::unique_ptr<Execution> OpenEnv(const RunEnvironment& env) {
    stores_.push_back(Store());
    ExecutionDeps deps;
    deps.store = stores_.back().get();
    deps.prices = &prices_;
    deps.exit = [this](int code) { exits_.push_back(code); };
    deps.log = [this](const std::string& level, const std::string& msg, const json&) {
      std::lock_guard l(log_mu_);
      log_.push_back(level + ": " + msg);
    };
    OpenedExecution opened = Execution::Open(env, std::move(deps));
    if (!opened.execution) throw std::runtime_error("could not open: " + opened.reported->error);
    return std::move(opened.execution);
  }

  json TerminationMessage(const RunEnvironment& env) {
    std::ifstream in(env.termination_message_path);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    return json::parse(text, nullptr, false);
  }

  static LlmCall Call(int64_t in, int64_t out) {
    LlmCall c;
    c.model = "gpt-4o-mini";
    c.input_tokens = in;
    c.output_tokens = out;
    c.latency = milliseconds(3);
    return c;
  }

  // Runs a checkpoint through the engine the way a driver does, output fixed.
  json Checkpoint(Execution& ex, const std::string& name, const json& output,
                  std::optional<std::string> key = std::nullopt) {
    CheckpointKey k = Must(ex.Reserve(name, CheckpointKind::kStep, key), "Reserve");
    BeginResult b = Must(ex.Begin(k, std::nullopt), "Begin");
    if (b.cached) return b.output;
    Must(ex.TryStarted(k, 1), "TryStarted");
    return Must(ex.Complete(k, output), "Complete");
  }

  std::filesystem::path dir_;
  PriceTable prices_;
  std::vector<std::unique_ptr<RunStore>> stores_;
  std::vector<int> exits_;
  std::mutex log_mu_;
  std::vector<std::string> log_;
};

}  // namespace flowrun::store_test
