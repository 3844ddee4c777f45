// ActionExecutor's PrepareReplay (actions.h) against a fake Kubernetes client
// and a fake RunAdmin: what it reads, what it asks the store, how a refusal is
// recorded (condition, Event once, backoff) and that the CreateJob after it
// runs only when the replay was prepared.
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "flowrun/controller/adapters.h"
#include "flowrun/controller/replay.h"
#include "kube/unimplemented_client.h"

namespace {

namespace fc = flowrun::controller;
namespace kube = flowrun::kube;
using flowrun::Status;
using flowrun::StatusOr;
using nlohmann::json;

// Objects by "<resource>/<ns>/<name>"; records creates, patches and gets.
class FakeClient : public kube::testing::UnimplementedClient {
 public:
  StatusOr<json> Get(const kube::ResourceRef& r, const std::string& ns, const std::string& name) override {
    gets.push_back(r.resource + "/" + ns + "/" + name);
    if (!get_error.ok()) return get_error;
    auto it = objects.find(r.resource + "/" + ns + "/" + name);
    if (it == objects.end()) return flowrun::NotFound(r.resource + " " + name + " not found");
    return it->second;
  }
  StatusOr<json> Create(const kube::ResourceRef&, const std::string&, const json& obj) override {
    created.push_back(obj["metadata"].value("name", ""));
    return obj;
  }
  StatusOr<json> MergePatch(const kube::ResourceRef&, const std::string&, const std::string&, const json& patch,
                            bool status) override {
    patches.push_back({{"status", status}, {"patch", patch}});
    return json{{"metadata", {{"resourceVersion", std::to_string(2 + patches.size())}}}};
  }
  std::map<std::string, json> objects;
  Status get_error;
  std::vector<std::string> gets, created;
  std::vector<json> patches;
};

class FakeAdmin : public flowrun::RunAdmin {
 public:
  StatusOr<flowrun::ReplayInfo> PrepareReplay(const flowrun::ReplayRequest& r) override {
    requests.push_back(r);
    if (!prepare_status.ok()) return prepare_status;
    flowrun::ReplayInfo info;
    info.source_run_uid = r.source_run_uid;
    return info;
  }
  StatusOr<flowrun::RecordedAnswer> RecordAnswer(const std::string&, const std::string&, const json&,
                                                 const flowrun::AnswerOptions&) override {
    return Unused();
  }
  StatusOr<flowrun::RunState> GetRun(const std::string&) override { return Unused(); }
  StatusOr<std::vector<flowrun::CheckpointInfo>> ListCheckpoints(const std::string&) override { return Unused(); }
  StatusOr<std::vector<flowrun::CheckpointFailure>> ListFailures(const std::string&) override { return Unused(); }
  StatusOr<std::vector<flowrun::ModelUsage>> UsageByModel(const std::string&) override { return Unused(); }
  StatusOr<json> GetCheckpointOutput(const std::string&, const flowrun::CheckpointKey&) override { return Unused(); }
  Status SetBudget(const std::string&, std::optional<double>) override { return Unused(); }
  StatusOr<WaitExpiry> ExpireWait(const std::string&, flowrun::TimePoint) override { return Unused(); }
  Status CancelRun(const std::string&, const std::string&) override { return Unused(); }
  Status DeleteRun(const std::string&) override { return Unused(); }
  StatusOr<std::vector<flowrun::ArtifactInfo>> ListArtifacts(const std::string&) override { return Unused(); }
  StatusOr<flowrun::Artifact> LoadArtifact(const std::string&, const std::string&, int) override { return Unused(); }
  Status prepare_status;
  std::vector<flowrun::ReplayRequest> requests;

 private:
  static Status Unused() { return flowrun::Unimplemented("not used by this test"); }
};

json Replay() {
  return {{"apiVersion", "flowrun.dev/v1alpha1"},
          {"kind", "FlowRun"},
          {"metadata", {{"name", "r1"}, {"namespace", "team-a"}, {"uid", "uid-r1"}, {"resourceVersion", "1"},
                        {"generation", 1}}},
          {"spec",
           {{"template", {{"image", "a"}}},
            {"replay",
             {{"from", {{"run", "src"}, {"checkpoint", "analyze"}}},
              {"outputFrom", {{"research", {{"configMapKeyRef", {{"name", "notes"}, {"key", "research.json"}}}}}}}}}}}};
}

json Source(const std::string& uid = "uid-src") {
  return {{"apiVersion", "flowrun.dev/v1alpha1"},
          {"kind", "FlowRun"},
          {"metadata", {{"name", "src"}, {"namespace", "team-a"}, {"uid", uid}}},
          {"spec", {{"template", {{"image", "a"}}}}}};
}

fc::ReconcileResult PrepareThenJob() {
  fc::ReconcileResult r;
  r.actions.push_back(fc::PrepareReplay{});
  r.actions.push_back(fc::CreateJob{"r1-a1", 1, {{"metadata", {{"name", "r1-a1"}}}}});
  r.actions.push_back(fc::PatchStatus{{{"status", {{"phase", "Pending"}}}}});
  return r;
}

struct Fixture {
  FakeClient kube;
  FakeAdmin admin;
  json replay = Replay();
  fc::ActionExecutor ex{&kube, nullptr, fc::ControllerConfig{},
                        [] { return *fc::ParseTime("2026-12-03T18:00:00Z"); }};
  Fixture() {
    kube.objects["flowruns/team-a/src"] = Source();
    kube.objects["configmaps/team-a/notes"] = {{"data", {{"research.json", R"({"notes":"long edited notes"})"}}}};
  }
  const json* ReplayCondition() const {
    for (const auto& p : kube.patches)
      if (p["status"] == true)
        for (const auto& c : p["patch"]["status"]["conditions"])
          if (c["type"] == "Replay") return &c;
    return nullptr;
  }
};

TEST(PrepareReplay, ReadsTheSourceAndConfigMapThenPreparesThenCreatesTheJob) {
  Fixture f;
  auto out = f.ex.Execute(Replay(), PrepareThenJob(), &f.admin);
  ASSERT_TRUE(out.status.ok()) << out.status;
  EXPECT_EQ(out.executed, 3);
  EXPECT_EQ(f.kube.gets, (std::vector<std::string>{"flowruns/team-a/src", "configmaps/team-a/notes"}));
  ASSERT_EQ(f.admin.requests.size(), 1u);
  const auto& req = f.admin.requests[0];
  EXPECT_EQ(req.run_uid, "uid-r1");
  EXPECT_EQ(req.source_run_uid, "uid-src");
  EXPECT_EQ(req.source_name, "src");
  EXPECT_EQ(req.cut.name, "analyze");
  EXPECT_EQ(req.output_overrides.at("research"), json({{"notes", "long edited notes"}}));
  EXPECT_EQ(f.kube.created, std::vector<std::string>{"r1-a1"});
}

struct Refusal {
  const char* name;
  std::function<void(Fixture&)> arrange;
  const char* reason;
};

class Refused : public ::testing::TestWithParam<Refusal> {};

TEST_P(Refused, RecordsTheConditionStopsBeforeTheJobAndBacksOff) {
  Fixture f;
  GetParam().arrange(f);
  auto out = f.ex.Execute(f.replay, PrepareThenJob(), &f.admin);
  EXPECT_EQ(out.status.code(), flowrun::StatusCode::kFailedPrecondition) << out.status;  // requeued with backoff
  EXPECT_EQ(out.executed, 0);
  EXPECT_TRUE(f.kube.created.empty()) << "no Job for an unprepared replay";
  ASSERT_EQ(f.kube.patches.size(), 1u);
  EXPECT_EQ(f.kube.patches[0]["patch"]["metadata"]["resourceVersion"], "1");  // conditional on what was read
  const json* c = f.ReplayCondition();
  ASSERT_NE(c, nullptr);
  EXPECT_EQ((*c)["status"], "False");
  EXPECT_EQ((*c)["reason"], GetParam().reason);
  EXPECT_EQ(f.kube.patches[0]["patch"]["status"]["phase"], "Pending");
}

INSTANTIATE_TEST_SUITE_P(
    PrepareReplay, Refused,
    ::testing::Values(
        Refusal{"SourceMissing", [](Fixture& f) { f.kube.objects.erase("flowruns/team-a/src"); }, "SourceNotFound"},
        Refusal{"SourceRecreated",
                [](Fixture& f) {
                  f.replay["spec"]["replay"]["from"]["uid"] = "uid-src";
                  f.kube.objects["flowruns/team-a/src"] = Source("uid-new");
                },
                "SourceUidMismatch"},
        Refusal{"OtherDatabase",
                [](Fixture& f) {
                  f.kube.objects["flowruns/team-a/src"]["spec"]["database"] = {{"secretRef", {{"name", "db2"}, {"key", "url"}}}};
                },
                "OtherDatabase"},
        Refusal{"NoConfigMap", [](Fixture& f) { f.kube.objects.erase("configmaps/team-a/notes"); }, "InvalidReplay"},
        Refusal{"NoKey", [](Fixture& f) { f.kube.objects["configmaps/team-a/notes"] = {{"data", {{"x", "1"}}}}; },
                "InvalidReplay"},
        Refusal{"NotJson",
                [](Fixture& f) { f.kube.objects["configmaps/team-a/notes"] = {{"data", {{"research.json", "notes"}}}}; },
                "InvalidReplay"},
        Refusal{"SourceHasNoRun", [](Fixture& f) { f.admin.prepare_status = flowrun::NotFound("no run row"); },
                "SourceNotPrepared"},
        Refusal{"StoreRefusedOverride",
                [](Fixture& f) { f.admin.prepare_status = flowrun::InvalidArgument("override too large"); },
                "InvalidReplay"}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(PrepareReplay, UidPinAcceptsTheSameSource) {
  Fixture f;
  json r = Replay();
  r["spec"]["replay"]["from"]["uid"] = "uid-src";
  auto out = f.ex.Execute(r, PrepareThenJob(), &f.admin);
  EXPECT_TRUE(out.status.ok()) << out.status;
  f.kube.objects["flowruns/team-a/src"] = Source("uid-new");
  FakeClient& k = f.kube;
  k.created.clear();
  out = f.ex.Execute(r, PrepareThenJob(), &f.admin);
  EXPECT_EQ(out.status.code(), flowrun::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(k.created.empty());
}

TEST(PrepareReplay, TransientErrorsStopWithoutACondition) {
  Fixture f;
  f.kube.get_error = flowrun::Unavailable("apiserver down");
  auto out = f.ex.Execute(Replay(), PrepareThenJob(), &f.admin);
  EXPECT_EQ(out.status.code(), flowrun::StatusCode::kUnavailable);
  EXPECT_TRUE(f.kube.patches.empty());
  EXPECT_TRUE(f.kube.created.empty());
  Fixture g;
  g.admin.prepare_status = flowrun::Unavailable("database down");
  out = g.ex.Execute(Replay(), PrepareThenJob(), &g.admin);
  EXPECT_EQ(out.status.code(), flowrun::StatusCode::kUnavailable);
  EXPECT_TRUE(g.kube.patches.empty());
  EXPECT_TRUE(g.kube.created.empty());
  // No database session at all: nothing is prepared, no Job.
  Fixture h;
  out = h.ex.Execute(Replay(), PrepareThenJob(), nullptr);
  EXPECT_EQ(out.status.code(), flowrun::StatusCode::kUnavailable);
  EXPECT_TRUE(h.kube.created.empty());
}

TEST(PrepareReplay, RefusalRecordedAgainKeepsItsTransitionTime) {
  Fixture f;
  f.kube.objects.erase("flowruns/team-a/src");
  json r = Replay();
  r["status"] = {{"phase", "Pending"},
                 {"conditions",
                  {{{"type", "Replay"}, {"status", "False"}, {"reason", "SourceNotFound"},
                    {"message", "source FlowRun team-a/src not found; the replay starts once it exists"},
                    {"lastTransitionTime", "2026-12-03T17:00:00Z"}}}}};
  auto out = f.ex.Execute(r, PrepareThenJob(), &f.admin);
  EXPECT_EQ(out.status.code(), flowrun::StatusCode::kFailedPrecondition);
  const json* c = f.ReplayCondition();
  ASSERT_NE(c, nullptr);
  EXPECT_EQ((*c)["lastTransitionTime"], "2026-12-03T17:00:00Z");
}

TEST(SetLabel, MergePatchesTheLabelWithTheResourceVersion) {
  Fixture f;
  fc::ReconcileResult r;
  r.actions.push_back(fc::SetLabel{"flowrun.dev/replay-of", "src"});
  auto out = f.ex.Execute(Replay(), r, &f.admin);
  ASSERT_TRUE(out.status.ok()) << out.status;
  ASSERT_EQ(f.kube.patches.size(), 1u);
  EXPECT_EQ(f.kube.patches[0]["status"], false);
  EXPECT_EQ(f.kube.patches[0]["patch"]["metadata"]["labels"]["flowrun.dev/replay-of"], "src");
  EXPECT_EQ(f.kube.patches[0]["patch"]["metadata"]["resourceVersion"], "1");
}

}  // namespace
