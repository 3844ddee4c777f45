// The controller loop's policies: which updates enqueue a reconcile
// (update_predicate.h) and what a failed reconcile does next (retry_policy.h).
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "flowrun/controller/app/retry_policy.h"
#include "flowrun/controller/app/update_predicate.h"

namespace {

using nlohmann::json;
using namespace flowrun;
using namespace flowrun::controller::app;

// Applies a merge patch (RFC 7386) so each row names only what it changes.
json Patched(json base, const json& patch) {
  base.merge_patch(patch);
  return base;
}

struct Row {
  std::string name;
  json patch;
  bool matters;
};

const json kFlowRun = json::parse(R"({
  "metadata": {"name": "r", "namespace": "ns", "uid": "u1", "generation": 1, "resourceVersion": "10",
               "finalizers": ["flowrun.dev/cleanup"], "labels": {"a": "1"}, "annotations": {"b": "2"}},
  "spec": {"agent": {"image": "x"}},
  "status": {"phase": "Waiting", "observedGeneration": 1, "conditions": [{"type": "Ready", "status": "False"}]}
})");

TEST(FlowRunUpdatePredicate, Table) {
  const std::vector<Row> rows = {
      {"resourceVersion only (any write)", {{"metadata", {{"resourceVersion", "11"}}}}, false},
      {"the controller's phase", {{"status", {{"phase", "Resuming"}}}}, false},
      {"the controller's conditions", {{"status", {{"conditions", json::array()}}}}, false},
      {"observedGeneration", {{"status", {{"observedGeneration", 2}}}}, false},
      {"managedFields", {{"metadata", {{"managedFields", json::array({{{"manager", "m"}}})}}}}, false},
      {"spec", {{"spec", {{"agent", {{"image", "y"}}}}}}, true},
      {"generation", {{"metadata", {{"generation", 2}}}}, true},
      {"deletionTimestamp", {{"metadata", {{"deletionTimestamp", "2026-01-01T00:00:00Z"}}}}, true},
      {"finalizers", {{"metadata", {{"finalizers", json::array()}}}}, true},
      {"labels", {{"metadata", {{"labels", {{"a", "2"}}}}}}, true},
      {"annotations", {{"metadata", {{"annotations", {{"c", "3"}}}}}}, true},
      {"an answer", {{"status", {{"answers", {{"approve", true}}}}}}, true},
  };
  for (const auto& r : rows)
    EXPECT_EQ(FlowRunUpdateMatters(kFlowRun, Patched(kFlowRun, r.patch)), r.matters) << r.name;
  EXPECT_FALSE(FlowRunUpdateMatters(kFlowRun, kFlowRun));
}

const json kJob = json::parse(R"({
  "metadata": {"name": "r-a1", "namespace": "ns", "uid": "j1", "resourceVersion": "5", "labels": {"flowrun.dev/run": "r"},
               "ownerReferences": [{"kind": "FlowRun", "name": "r", "uid": "u1"}]},
  "spec": {"parallelism": 1},
  "status": {"active": 1, "ready": 0, "startTime": "2026-01-01T00:00:00Z", "uncountedTerminatedPods": {},
             "conditions": []}
})");

TEST(JobUpdatePredicate, Table) {
  const std::vector<Row> rows = {
      {"resourceVersion", {{"metadata", {{"resourceVersion", "6"}}}}, false},
      {"ready count", {{"status", {{"ready", 1}}}}, false},
      {"terminating", {{"status", {{"terminating", 1}}}}, false},
      {"uncountedTerminatedPods", {{"status", {{"uncountedTerminatedPods", {{"succeeded", json::array({"p"})}}}}}}, false},
      {"spec (suspend)", {{"spec", {{"suspend", true}}}}, false},
      {"active", {{"status", {{"active", 0}}}}, true},
      {"succeeded", {{"status", {{"succeeded", 1}}}}, true},
      {"failed", {{"status", {{"failed", 1}}}}, true},
      {"completionTime", {{"status", {{"completionTime", "2026-01-01T00:01:00Z"}}}}, true},
      {"a condition", {{"status", {{"conditions", json::array({{{"type", "Complete"}, {"status", "True"}}})}}}}, true},
      {"labels", {{"metadata", {{"labels", {{"flowrun.dev/attempt", "1"}}}}}}, true},
      {"deletionTimestamp", {{"metadata", {{"deletionTimestamp", "2026-01-01T00:00:00Z"}}}}, true},
  };
  for (const auto& r : rows) EXPECT_EQ(JobUpdateMatters(kJob, Patched(kJob, r.patch)), r.matters) << r.name;
}

const json kPod = json::parse(R"({
  "metadata": {"name": "r-a1-x", "namespace": "ns", "uid": "p1", "resourceVersion": "7",
               "labels": {"flowrun.dev/run-uid": "u1", "job-name": "r-a1"}},
  "spec": {"nodeName": ""},
  "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True", "lastProbeTime": null}],
             "containerStatuses": [{"name": "agent", "ready": false, "restartCount": 0,
                                    "state": {"waiting": {"reason": "ContainerCreating"}}}]}
})");

TEST(PodUpdatePredicate, Table) {
  const json other_container_fields = json::parse(
      R"({"status": {"containerStatuses": [{"name": "agent", "ready": true, "restartCount": 0, "started": true,
          "state": {"waiting": {"reason": "ContainerCreating"}}}]}})");
  const json running = json::parse(
      R"({"status": {"containerStatuses": [{"name": "agent", "state": {"running": {"startedAt": "2026-01-01T00:00:05Z"}}}]}})");
  const std::vector<Row> rows = {
      {"resourceVersion", {{"metadata", {{"resourceVersion", "8"}}}}, false},
      {"pod IPs", {{"status", {{"podIP", "10.0.0.1"}, {"hostIP", "10.0.0.2"}}}}, false},
      {"spec nodeName", {{"spec", {{"nodeName", "n1"}}}}, false},
      {"ready/started flags", other_container_fields, false},
      {"a condition's probe time",
       {{"status", {{"conditions", json::array({{{"type", "PodScheduled"}, {"status", "True"}, {"lastProbeTime", "x"}}})}}}},
       false},
      {"phase", {{"status", {{"phase", "Running"}}}}, true},
      {"reason", {{"status", {{"reason", "Evicted"}}}}, true},
      {"container state", running, true},
      {"a condition flips",
       {{"status", {{"conditions", json::array({{{"type", "DisruptionTarget"}, {"status", "True"}, {"reason", "x"}}})}}}},
       true},
      {"deletionTimestamp", {{"metadata", {{"deletionTimestamp", "2026-01-01T00:00:00Z"}}}}, true},
      {"labels", {{"metadata", {{"labels", {{"flowrun.dev/run-uid", "u2"}}}}}}, true},
  };
  for (const auto& r : rows) EXPECT_EQ(PodUpdateMatters(kPod, Patched(kPod, r.patch)), r.matters) << r.name;
}

TEST(ManagedFieldTouchesAnswers, KeepsOnlyTheAnswersWriters) {
  // The shape AnsweredBy (reconcile.cc) reads: fieldsV1 → f:status → f:answers → f:<wait>.
  EXPECT_TRUE(ManagedFieldTouchesAnswers(json::parse(
      R"({"manager": "kubectl-patch", "operation": "Update", "subresource": "status",
          "fieldsV1": {"f:status": {"f:answers": {".": {}, "f:approve": {}}}}})")));
  EXPECT_FALSE(ManagedFieldTouchesAnswers(json::parse(
      R"({"manager": "flowrun-controller", "fieldsV1": {"f:status": {"f:phase": {}, "f:conditions": {}}}})")));
  EXPECT_FALSE(ManagedFieldTouchesAnswers(json::parse(R"({"manager": "kubectl", "fieldsV1": {"f:spec": {}}})")));
  EXPECT_FALSE(ManagedFieldTouchesAnswers(json::parse(R"({"manager": "x"})")));
  EXPECT_FALSE(ManagedFieldTouchesAnswers(json("not an object")));
}

TEST(RetryPolicy, OneDecisionPerCode) {
  struct Case {
    Status status;
    Retry want;
  };
  const std::vector<Case> cases = {
      {Status(), Retry::kNone},
      {Unavailable("db down"), Retry::kResetSessionAndBackoff},
      {Permanent(InvalidArgument("no metadata.uid")), Retry::kWaitForChange},
      // The database's state must change first, and that sends no event.
      {Status(StatusCode::kFailedPrecondition, "run is not waiting for 'proceed'"), Retry::kBackoff},
      {InvalidArgument("422 from the API"), Retry::kBackoff},
      {Status(StatusCode::kInternal, "the core threw"), Retry::kBackoff},
      {Status(StatusCode::kAborted, "conflict"), Retry::kBackoff},
      {Status(StatusCode::kDeadlineExceeded, "timeout"), Retry::kBackoff},
      {Status(StatusCode::kUnknown, "?"), Retry::kBackoff},
      {Status(StatusCode::kPermissionDenied, "rbac"), Retry::kBackoff},
  };
  for (const auto& c : cases) EXPECT_EQ(RetryFor(c.status), c.want) << c.status.ToString();
  EXPECT_TRUE(IsTerminal(RetryFor(Permanent(InvalidArgument("x")))));
  EXPECT_FALSE(IsTerminal(RetryFor(Status(StatusCode::kFailedPrecondition, "x"))));
  EXPECT_FALSE(IsTerminal(RetryFor(Status(StatusCode::kInternal, "x"))));
}

}  // namespace
