// Renamed checkpoints between attempts (runtime-lib/src/checkpoint_renames.h
// states the rule): the engine, in-process on a real PostgreSQL, for what C++
// Flow and the Python SDK both drive. A rename is a divergence naming both
// names and writing nothing; a new checkpoint (other inputs, another place,
// its old neighbour still on the code path or declared, no inputs) runs live.
#include <filesystem>
#include <mutex>
#include <vector>

#include "flowrun/execution.h"
#include "store/store_fixture.h"

namespace flowrun::store_test {
namespace {

class CheckpointRenames : public StoreTest {
 protected:
  void SetUp() override {
    StoreTest::SetUp();
    dir_ = std::filesystem::temp_directory_path() / ("flowrun-renames-test-" + db_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::unique_ptr<Execution> Open(const std::string& uid, int attempt,
                                  DivergencePolicy policy = DivergencePolicy::kFail) {
    stores_.push_back(Store());
    RunEnvironment env;
    env.run = Ident(uid);
    env.attempt = attempt;
    env.on_divergence = policy;
    env.termination_message_path = (dir_ / ("term-" + uid + "-" + std::to_string(attempt))).string();
    ExecutionDeps deps;
    deps.store = stores_.back().get();
    deps.exit = [](int) {};
    deps.log = [this](const std::string& level, const std::string& msg, const json&) {
      std::lock_guard l(log_mu_);
      log_.push_back(level + ": " + msg);
    };
    OpenedExecution opened = Execution::Open(env, std::move(deps));
    if (!opened.execution) throw std::runtime_error("could not open: " + opened.reported->error);
    return std::move(opened.execution);
  }

  // A step run the way a driver runs it; returns Begin's status (and stores
  // `output` when live).
  Status Step(Execution& ex, const std::string& name, const std::optional<json>& inputs, const json& output,
              const std::optional<json>& digest_inputs = std::nullopt) {
    CheckpointKey k = Must(ex.Reserve(name, CheckpointKind::kStep), "Reserve");
    auto b = ex.Begin(k, inputs, std::nullopt, digest_inputs);
    if (!b.ok()) return b.status();
    if (b->cached) return Status::Ok();
    Must(ex.TryStarted(k, 1), "TryStarted");
    Must(ex.Complete(k, output), "Complete");
    return Status::Ok();
  }

  // Attempt 1 of `uid`: the given steps (name, inputs), outputs "<name> out".
  void FirstAttempt(const std::string& uid, const std::vector<std::pair<std::string, std::optional<json>>>& steps) {
    auto ex = Open(uid, 1);
    for (const auto& [name, inputs] : steps) MustOk(Step(*ex, name, inputs, json(name + " out")), name);
    EXPECT_EQ(ex->Finish(json(nullptr)), 0);
  }

  int64_t Rows(const std::string& uid, const std::string& name) {
    return Count("SELECT count(*) FROM flowrun.checkpoints WHERE run_uid = $1 AND name = $2", uid, name);
  }

  bool Logged(const std::string& needle) {
    std::lock_guard l(log_mu_);
    for (const auto& line : log_)
      if (line.find(needle) != std::string::npos) return true;
    return false;
  }

  std::filesystem::path dir_;
  std::vector<std::unique_ptr<RunStore>> stores_;
  std::mutex log_mu_;
  std::vector<std::string> log_;
};

const json kLlamas = {{"topic", "llamas"}};

TEST_F(CheckpointRenames, ALiveStepStoresItsPositionAndNameIndependentDigest) {
  FirstAttempt("place", {{"plan", json{{"n", 1}}}, {"research", kLlamas}, {"bare", std::nullopt}});
  EXPECT_EQ(Count("SELECT position FROM flowrun.checkpoints WHERE run_uid = 'place' AND name = 'research'"), 2);
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.checkpoints WHERE run_uid = 'place' AND name = 'bare'"
                  " AND position = 3 AND inputs_digest IS NULL"),
            1)
      << "a step without inputs has no digest";
  // The digest leaves the name out: another name with these inputs has the same one.
  auto digest = Query("SELECT inputs_digest FROM flowrun.checkpoints WHERE run_uid = 'place' AND name = 'research'");
  std::string research_digest = digest[0][0].as<std::string>();
  EXPECT_EQ(research_digest.rfind("v1:", 0), 0u);
  EXPECT_NE(research_digest, CheckpointFingerprint(CheckpointKind::kStep, "research", kLlamas));
}

TEST_F(CheckpointRenames, ARenamedStepDivergesNamingBothAndWritesNothing) {
  FirstAttempt("renamed", {{"plan", json{{"n", 1}}}, {"research", kLlamas}});
  auto ex = Open("renamed", 2);
  MustOk(Step(*ex, "plan", json{{"n", 1}}, json("unused")), "plan (cached)");
  Status s = Step(*ex, "investigate", kLlamas, json("must not be stored"));
  ASSERT_EQ(s.code(), StatusCode::kDataLoss) << s.ToString();
  EXPECT_CONTAINS(s.message(), "was checkpoint 'research' renamed to 'investigate'?");
  EXPECT_EQ(ex->Reserve("next", CheckpointKind::kStep).status().code(), StatusCode::kDataLoss) << "sticky";
  EXPECT_EQ(ex->FinishWithError(FlowEndReason::kFlowFailed, "driver"), kExitDivergence);
  EXPECT_EQ(Rows("renamed", "investigate"), 0) << "nothing written for the new name";
  EXPECT_EQ(Count("SELECT count(*) FROM flowrun.checkpoints WHERE run_uid = 'renamed' AND name = 'research'"
                  " AND output = '\"research out\"' AND attempt = 1"),
            1)
      << "nothing overwritten";
  // The old name still resumes.
  auto again = Open("renamed", 3);
  MustOk(Step(*again, "plan", json{{"n", 1}}, json("unused")));
  MustOk(Step(*again, "research", kLlamas, json("unused")));
  EXPECT_EQ(again->stats().cached_checkpoints, 2);
  EXPECT_EQ(again->Finish(json(nullptr)), 0);
}

TEST_F(CheckpointRenames, UnderRerunARenamedStepRunsLiveBesideTheOldRow) {
  FirstAttempt("rerun", {{"research", kLlamas}});
  auto ex = Open("rerun", 2, DivergencePolicy::kRerun);
  MustOk(Step(*ex, "investigate", kLlamas, json("investigated")));
  EXPECT_EQ(ex->stats().live_checkpoints, 1);
  EXPECT_TRUE(Logged("was checkpoint 'research' renamed to 'investigate'?"));
  EXPECT_EQ(ex->Finish(json(nullptr)), 0);
  EXPECT_EQ(Rows("rerun", "investigate"), 1);
  EXPECT_EQ(Rows("rerun", "research"), 1);
}

TEST_F(CheckpointRenames, TheDriversDigestInputsLeaveTheCodeOut) {
  // As the Python SDK: the fingerprint's inputs name the function, the digest covers the arguments.
  json args = {{"topic", "llamas"}};
  {
    auto ex = Open("py", 1);
    MustOk(Step(*ex, "research", json{{"function", "agent.research"}, {"args", args}}, json("r"), args));
    EXPECT_EQ(ex->Finish(json(nullptr)), 0);
  }
  auto ex = Open("py", 2);
  Status s = Step(*ex, "investigate", json{{"function", "agent.investigate"}, {"args", args}}, json("x"), args);
  EXPECT_EQ(s.code(), StatusCode::kDataLoss) << s.ToString();
  EXPECT_CONTAINS(s.message(), "'research'");
}

TEST_F(CheckpointRenames, NewStepsRunLive) {
  FirstAttempt("new", {{"a", kLlamas}, {"b", kLlamas}, {"c", json{{"topic", "alpacas"}}}});
  {
    // Other inputs at a known place: a new checkpoint.
    auto ex = Open("new", 2);
    MustOk(Step(*ex, "other", json{{"topic", "vicunas"}}, json("o")));
    EXPECT_EQ(ex->Finish(json(nullptr)), 0);
  }
  {
    // Same inputs as 'b' at b's place, but b was asked already on this path
    // (here first, as cached): a new checkpoint, not b renamed.
    auto ex = Open("new", 3);
    MustOk(Step(*ex, "b", kLlamas, json("unused")));
    MustOk(Step(*ex, "after-b", kLlamas, json("n")));
    EXPECT_EQ(ex->stats().live_checkpoints, 1);
    EXPECT_EQ(ex->Finish(json(nullptr)), 0);
  }
  {
    // Inserted before 'a' with a's inputs, a's name declared by the driver: new.
    auto ex = Open("new", 4);
    ex->DeclareCheckpointNames({"a", "b", "c"});
    MustOk(Step(*ex, "inserted", kLlamas, json("i")));
    MustOk(Step(*ex, "a", kLlamas, json("unused")));
    EXPECT_EQ(ex->stats().live_checkpoints, 1);
    EXPECT_EQ(ex->stats().cached_checkpoints, 1);
    EXPECT_EQ(ex->Finish(json(nullptr)), 0);
  }
  {
    // Same inputs, another place (a's inputs asked at c's place): new.
    auto ex = Open("new", 5);
    MustOk(Step(*ex, "a", kLlamas, json("unused")));
    MustOk(Step(*ex, "b", kLlamas, json("unused")));
    MustOk(Step(*ex, "d", kLlamas, json("d")));
    EXPECT_EQ(ex->Finish(json(nullptr)), 0);
  }
  EXPECT_EQ(Rows("new", "d"), 1);
}

TEST_F(CheckpointRenames, StepsWithoutInputsOrRowsWithoutAPlaceAreNeverTakenForRenames) {
  FirstAttempt("bare", {{"research", std::nullopt}, {"summarize", kLlamas}});
  // An older build's row (before migration 6) has no place.
  Query("UPDATE flowrun.checkpoints SET position = NULL, inputs_digest = NULL WHERE name = 'summarize'");
  auto ex = Open("bare", 2);
  MustOk(Step(*ex, "investigate", std::nullopt, json("i")));
  MustOk(Step(*ex, "condense", kLlamas, json("c")));
  EXPECT_EQ(ex->stats().live_checkpoints, 2);
  EXPECT_EQ(ex->Finish(json(nullptr)), 0);
}

}  // namespace
}  // namespace flowrun::store_test
