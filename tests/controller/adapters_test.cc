// ActionExecutor (controller/adapters) against test doubles: how a failed
// RecordAnswer stops the actions after it. No cluster, no database.
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "flowrun/controller/adapters.h"
#include "kube/unimplemented_client.h"

namespace {

namespace fc = flowrun::controller;
using flowrun::Status;
using flowrun::StatusOr;
using nlohmann::json;

// Records the Jobs created and the status patches; everything else is unimplemented.
class RecordingClient : public flowrun::kube::testing::UnimplementedClient {
 public:
  StatusOr<json> Create(const flowrun::kube::ResourceRef&, const std::string&, const json& obj) override {
    created.push_back(obj["metadata"].value("name", ""));
    return obj;
  }
  StatusOr<json> MergePatch(const flowrun::kube::ResourceRef&, const std::string&, const std::string&,
                            const json& patch, bool) override {
    patches.push_back(patch);
    return json{{"metadata", {{"resourceVersion", "2"}}}};
  }
  std::vector<std::string> created;
  std::vector<json> patches;
};

// A RunAdmin whose RecordAnswer answers `record_status`; nothing else is used here.
class AnswerOnlyAdmin : public flowrun::RunAdmin {
 public:
  explicit AnswerOnlyAdmin(Status record_status) : record_status_(std::move(record_status)) {}
  StatusOr<flowrun::RecordedAnswer> RecordAnswer(const std::string&, const std::string& wait, const json&,
                                                 const flowrun::AnswerOptions&) override {
    ++record_calls;
    if (!record_status_.ok()) return record_status_;
    return flowrun::RecordedAnswer{wait, 1, false};
  }
  StatusOr<flowrun::RunState> GetRun(const std::string&) override { return Unused(); }
  StatusOr<std::vector<flowrun::CheckpointInfo>> ListCheckpoints(const std::string&) override { return Unused(); }
  StatusOr<std::vector<flowrun::CheckpointFailure>> ListFailures(const std::string&) override { return Unused(); }
  StatusOr<std::vector<flowrun::ModelUsage>> UsageByModel(const std::string&) override { return Unused(); }
  StatusOr<json> GetCheckpointOutput(const std::string&, const flowrun::CheckpointKey&) override { return Unused(); }
  StatusOr<flowrun::ReplayInfo> PrepareReplay(const flowrun::ReplayRequest&) override { return Unused(); }
  Status SetBudget(const std::string&, std::optional<double>) override { return Unused(); }
  StatusOr<WaitExpiry> ExpireWait(const std::string&, flowrun::TimePoint) override { return Unused(); }
  Status CancelRun(const std::string&, const std::string&) override { return Unused(); }
  Status DeleteRun(const std::string&) override { return Unused(); }
  StatusOr<std::vector<flowrun::ArtifactInfo>> ListArtifacts(const std::string&) override { return Unused(); }
  StatusOr<flowrun::Artifact> LoadArtifact(const std::string&, const std::string&, int) override { return Unused(); }
  int record_calls = 0;

 private:
  static Status Unused() { return flowrun::Unimplemented("not used by this test"); }
  Status record_status_;
};

json FlowRun() {
  return {{"apiVersion", "flowrun.dev/v1alpha1"},
          {"kind", "FlowRun"},
          {"metadata", {{"name", "r"}, {"namespace", "default"}, {"uid", "uid-r"}, {"resourceVersion", "1"}}}};
}

// What the core returns when an answer resumes a run.
fc::ReconcileResult Resume() {
  fc::ReconcileResult r;
  r.actions.push_back(fc::RecordAnswer{"proceed", true, "kubernetes:kubectl-patch"});
  json job = {{"metadata", {{"name", "r-a2"}, {"annotations", {{"flowrun.dev/answer", R"({"answer":true,"wait":"proceed"})"}}}}}};
  r.actions.push_back(fc::CreateJob{"r-a2", 2, job});
  r.actions.push_back(fc::PatchStatus{{{"status", {{"phase", "Resuming"}}}}});
  return r;
}

TEST(ActionExecutor, RecordedAnswerThenJobThenStatus) {
  RecordingClient kube;
  AnswerOnlyAdmin admin{Status()};
  fc::ActionExecutor ex(&kube, nullptr);
  fc::ExecuteOutcome out = ex.Execute(FlowRun(), Resume(), &admin);
  EXPECT_TRUE(out.status.ok()) << out.status.ToString();
  EXPECT_EQ(out.executed, 3);
  EXPECT_EQ(kube.created, std::vector<std::string>{"r-a2"});
  EXPECT_EQ(kube.patches.size(), 1u);
}

// The wait was answered meanwhile (first answer wins): the Job naming the
// other answer must not be created, nor the status say Resuming; the error
// requeues the run, whose next reconcile resumes with the database's answer.
TEST(ActionExecutor, AnswerAlreadyRecordedStopsBeforeTheJob) {
  RecordingClient kube;
  AnswerOnlyAdmin admin{flowrun::AlreadyExists("wait 'proceed' was already answered (by flowrunctl)")};
  fc::ActionExecutor ex(&kube, nullptr);
  fc::ExecuteOutcome out = ex.Execute(FlowRun(), Resume(), &admin);
  EXPECT_FALSE(out.status.ok());
  EXPECT_NE(out.status.message().find("answered meanwhile"), std::string::npos) << out.status.ToString();
  EXPECT_EQ(admin.record_calls, 1);
  EXPECT_EQ(out.executed, 0);
  EXPECT_TRUE(kube.created.empty());
  EXPECT_TRUE(kube.patches.empty());
}

// A schema violation the database found: a Warning (no recorder here), stop, no error.
TEST(ActionExecutor, InvalidAnswerStopsWithoutError) {
  RecordingClient kube;
  AnswerOnlyAdmin admin{flowrun::InvalidArgument("answer to 'proceed' does not match its schema")};
  fc::ActionExecutor ex(&kube, nullptr);
  fc::ExecuteOutcome out = ex.Execute(FlowRun(), Resume(), &admin);
  EXPECT_TRUE(out.status.ok()) << out.status.ToString();
  EXPECT_TRUE(kube.created.empty());
  EXPECT_TRUE(kube.patches.empty());
}

}  // namespace
