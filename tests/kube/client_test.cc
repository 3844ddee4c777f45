// KubeClient against a real control plane (tests/cluster): verbs, errors,
// pagination, watch, authentication. ctest label kube.
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <future>
#include <map>
#include <set>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "flowrun/kube/client.h"
#include "kube/kube_cluster.h"
#include "support/eventually.h"

namespace flowrun::kube {
namespace {

using flowrun::testing::KubeCluster;
using json = nlohmann::json;
using namespace std::chrono_literals;

// Real time plus an offset the test sets: a credential whose expiry the exec
// plugin computed from the real clock can be made "expired" for the client at
// once (ClientOptions::clock), and valid again by setting the offset back.
class ShiftedClock final : public Clock {
 public:
  std::chrono::system_clock::time_point Now() const override {
    return std::chrono::system_clock::now() +
           std::chrono::duration_cast<std::chrono::system_clock::duration>(Offset());
  }
  std::chrono::steady_clock::time_point MonotonicNow() const override {
    return std::chrono::steady_clock::now() +
           std::chrono::duration_cast<std::chrono::steady_clock::duration>(Offset());
  }
  void SleepFor(std::chrono::nanoseconds d) override { std::this_thread::sleep_for(d); }
  void SetOffset(std::chrono::nanoseconds d) { offset_ns_ = d.count(); }

 private:
  std::chrono::nanoseconds Offset() const { return std::chrono::nanoseconds(offset_ns_.load()); }
  std::atomic<int64_t> offset_ns_{0};
};

std::unique_ptr<KubeClient> ClientFor(const std::string& kubeconfig, ClientOptions opts = {}) {
  auto cfg = LoadKubeconfig(kubeconfig);
  EXPECT_TRUE(cfg.ok()) << cfg.status();
  if (!cfg.ok()) return nullptr;
  auto c = NewKubeClient(*cfg, opts);
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? std::move(c).value() : nullptr;
}

class ClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    cluster_ = &KubeCluster::Get();
    client_ = ClientFor(cluster_->admin_kubeconfig());
    ASSERT_NE(client_, nullptr);
    // A namespace per test: lower-case test name; under --gtest_repeat each
    // repetition gets a fresh one ("-2", "-3", ...), so leftovers of the last
    // run (objects, exec-plugin run counts) cannot change the next.
    std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    ns_ = "t-";
    for (char c : name) ns_ += std::isalnum(static_cast<unsigned char>(c)) ? static_cast<char>(std::tolower(c)) : '-';
    if (ns_.size() > 56) ns_.resize(56);
    static std::map<std::string, int> runs;
    if (int n = ++runs[name]; n > 1) ns_ += "-" + std::to_string(n);
    auto created = client_->Create(resources::Namespaces(), "", {{"metadata", {{"name", ns_}}}});
    ASSERT_TRUE(created.ok() || IsAlreadyExists(created.status())) << created.status();
  }

  static json ConfigMap(const std::string& name, json data = json::object()) {
    return {{"apiVersion", "v1"}, {"kind", "ConfigMap"}, {"metadata", {{"name", name}}}, {"data", data}};
  }

  // A kubeconfig in `dir` whose user runs tests/kube/exec_plugin.sh with
  // `source_env`=`source_value` (where its credential comes from), counting
  // its runs in `runs_file` and handing out credentials valid for an hour.
  std::string ExecKubeconfig(const std::string& dir, const std::string& source_env, const std::string& source_value,
                             const std::string& runs_file) const {
    std::string kc = dir + "/exec.kubeconfig";
    std::ofstream(kc) << "apiVersion: v1\nkind: Config\n"
                      << "clusters:\n- name: c\n  cluster:\n    server: " << cluster_->apiserver_url()
                      << "\n    certificate-authority: " << cluster_->ca_file() << "\n"
                      << "users:\n- name: u\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1\n"
                      << "      command: " << FLOWRUN_KUBE_TEST_DIR << "/exec_plugin.sh\n"
                      << "      interactiveMode: Never\n"
                      << "      env:\n      - name: " << source_env << "\n        value: " << source_value << "\n"
                      << "      - name: PLUGIN_RUNS_FILE\n        value: " << runs_file << "\n"
                      << "      - name: PLUGIN_TTL\n        value: \"3600\"\n"
                      << "contexts:\n- name: c\n  context:\n    cluster: c\n    user: u\n    namespace: " << ns_ << "\n"
                      << "current-context: c\n";
    return kc;
  }

  static int LineCount(const std::string& path) {
    std::ifstream in(path);
    int n = 0;
    for (std::string line; std::getline(in, line);) ++n;
    return n;
  }

  KubeCluster* cluster_ = nullptr;
  std::unique_ptr<KubeClient> client_;
  std::string ns_;
};

TEST_F(ClientTest, RawVersion) {
  auto v = client_->Raw("GET", "/version");
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ((*v)["gitVersion"], "v1.36.3");
}

TEST_F(ClientTest, ConfigMapRoundTrips) {
  auto cm = ConfigMap("cm1", {{"a", "1"}});
  auto created = client_->Create(resources::ConfigMaps(), ns_, cm);
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_EQ((*created)["metadata"]["namespace"], ns_);
  EXPECT_FALSE((*created)["metadata"]["uid"].get<std::string>().empty());

  auto got = client_->Get(resources::ConfigMaps(), ns_, "cm1");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ((*got)["data"]["a"], "1");

  json upd = *got;
  upd["data"]["b"] = "2";
  auto updated = client_->Update(resources::ConfigMaps(), ns_, upd);
  ASSERT_TRUE(updated.ok()) << updated.status();
  EXPECT_EQ((*updated)["data"]["b"], "2");
  EXPECT_NE((*updated)["metadata"]["resourceVersion"], (*got)["metadata"]["resourceVersion"]);

  auto patched = client_->MergePatch(resources::ConfigMaps(), ns_, "cm1", {{"data", {{"a", nullptr}, {"c", "3"}}}});
  ASSERT_TRUE(patched.ok()) << patched.status();
  EXPECT_FALSE((*patched)["data"].contains("a"));
  EXPECT_EQ((*patched)["data"]["c"], "3");

  auto applied = client_->Apply(resources::ConfigMaps(), ns_, "cm1", {{"data", {{"d", "4"}}}}, "flowrun-test");
  ASSERT_TRUE(applied.ok()) << applied.status();
  EXPECT_EQ((*applied)["data"]["d"], "4");
  EXPECT_EQ((*applied)["data"]["c"], "3");  // owned by the earlier manager: kept

  // Apply creates too.
  auto applied2 = client_->Apply(resources::ConfigMaps(), ns_, "cm2", {{"data", {{"x", "y"}}}}, "flowrun-test");
  ASSERT_TRUE(applied2.ok()) << applied2.status();

  ASSERT_TRUE(client_->Delete(resources::ConfigMaps(), ns_, "cm1", {}).ok());
  auto gone = client_->Get(resources::ConfigMaps(), ns_, "cm1");
  EXPECT_TRUE(IsNotFound(gone.status())) << gone.status();
  EXPECT_EQ(HttpStatusOf(gone.status()), 404);
  EXPECT_EQ(ReasonOf(gone.status()), "NotFound");
  EXPECT_TRUE(IsNotFound(client_->Delete(resources::ConfigMaps(), ns_, "cm1", {})));
}

TEST_F(ClientTest, StaleResourceVersionIsConflict) {
  auto created = client_->Create(resources::ConfigMaps(), ns_, ConfigMap("c", {{"v", "0"}}));
  ASSERT_TRUE(created.ok()) << created.status();
  json first = *created, second = *created;
  first["data"]["v"] = "1";
  ASSERT_TRUE(client_->Update(resources::ConfigMaps(), ns_, first).ok());
  second["data"]["v"] = "2";  // still the old resourceVersion
  auto stale = client_->Update(resources::ConfigMaps(), ns_, second);
  ASSERT_FALSE(stale.ok());
  EXPECT_TRUE(IsConflict(stale.status())) << stale.status();
  EXPECT_FALSE(IsAlreadyExists(stale.status()));
  EXPECT_EQ(ReasonOf(stale.status()), "Conflict");
}

TEST_F(ClientTest, CreateTwiceIsAlreadyExists) {
  ASSERT_TRUE(client_->Create(resources::ConfigMaps(), ns_, ConfigMap("twice")).ok());
  auto again = client_->Create(resources::ConfigMaps(), ns_, ConfigMap("twice"));
  ASSERT_FALSE(again.ok());
  EXPECT_TRUE(IsAlreadyExists(again.status())) << again.status();
  EXPECT_FALSE(IsConflict(again.status()));
  EXPECT_EQ(HttpStatusOf(again.status()), 409);
}

TEST_F(ClientTest, InvalidObjectCarriesCauses) {
  auto bad = client_->Create(resources::ConfigMaps(), ns_, ConfigMap("Not_A_Valid_Name"));
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument) << bad.status();
  EXPECT_EQ(HttpStatusOf(bad.status()), 422);
  EXPECT_EQ(ReasonOf(bad.status()), "Invalid");
  auto causes = CausesOf(bad.status());
  ASSERT_FALSE(causes.empty());
  EXPECT_EQ(causes[0].field, "metadata.name");
  EXPECT_EQ(causes[0].reason, "FieldValueInvalid");
}

TEST_F(ClientTest, ServerSideApplyConflictThenForce) {
  auto a = client_->Apply(resources::ConfigMaps(), ns_, "ssa", {{"data", {{"k", "from-a"}}}}, "manager-a");
  ASSERT_TRUE(a.ok()) << a.status();
  auto b = client_->Apply(resources::ConfigMaps(), ns_, "ssa", {{"data", {{"k", "from-b"}}}}, "manager-b");
  ASSERT_FALSE(b.ok());
  EXPECT_TRUE(IsConflict(b.status())) << b.status();
  EXPECT_FALSE(CausesOf(b.status()).empty());  // which field, which manager
  auto forced = client_->Apply(resources::ConfigMaps(), ns_, "ssa", {{"data", {{"k", "from-b"}}}}, "manager-b",
                               /*force=*/true);
  ASSERT_TRUE(forced.ok()) << forced.status();
  EXPECT_EQ((*forced)["data"]["k"], "from-b");
}

TEST_F(ClientTest, LeaseRoundTrips) {
  json lease = {{"metadata", {{"name", "leader"}}},
                {"spec", {{"holderIdentity", "a"}, {"leaseDurationSeconds", 15}}}};
  auto created = client_->Create(resources::Leases(), ns_, lease);
  ASSERT_TRUE(created.ok()) << created.status();
  json upd = *created;
  upd["spec"]["holderIdentity"] = "b";
  upd["spec"]["renewTime"] = "2026-01-01T00:00:00.000000Z";
  auto updated = client_->Update(resources::Leases(), ns_, upd);
  ASSERT_TRUE(updated.ok()) << updated.status();
  EXPECT_EQ((*updated)["spec"]["holderIdentity"], "b");
  // The stale copy cannot take the lease back.
  json stale = *created;
  stale["spec"]["holderIdentity"] = "c";
  EXPECT_TRUE(IsConflict(client_->Update(resources::Leases(), ns_, stale).status()));
  auto patched = client_->MergePatch(resources::Leases(), ns_, "leader", {{"spec", {{"leaseTransitions", 3}}}});
  ASSERT_TRUE(patched.ok()) << patched.status();
  EXPECT_EQ((*patched)["spec"]["leaseTransitions"], 3);
  auto list = client_->List(resources::Leases(), ns_, {});
  ASSERT_TRUE(list.ok()) << list.status();
  ASSERT_EQ(list->items.size(), 1u);
  EXPECT_EQ(list->items[0]["kind"], "Lease");
  EXPECT_EQ(list->items[0]["apiVersion"], "coordination.k8s.io/v1");
}

TEST_F(ClientTest, CustomResourceWithStatusSubresource) {
  const ResourceRef widgets{"test.flowrun.dev", "v1", "widgets", true, "Widget"};
  json crd = json::parse(R"({
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.test.flowrun.dev"},
    "spec": {
      "group": "test.flowrun.dev", "scope": "Namespaced",
      "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
      "versions": [{
        "name": "v1", "served": true, "storage": true,
        "subresources": {"status": {}},
        "schema": {"openAPIV3Schema": {"type": "object", "properties": {
          "spec": {"type": "object", "properties": {"size": {"type": "integer"}}},
          "status": {"type": "object", "properties": {
            "phase": {"type": "string"}, "observedGeneration": {"type": "integer"}}}}}}}]}})");
  auto c = client_->Create(resources::CustomResourceDefinitions(), "", crd);
  ASSERT_TRUE(c.ok() || IsAlreadyExists(c.status())) << c.status();
  // Wait until Established and served.
  bool served = false;
  for (int i = 0; i < 100 && !served; ++i) {
    auto l = client_->List(widgets, ns_, {});
    served = l.ok();
    if (!served) std::this_thread::sleep_for(100ms);
  }
  ASSERT_TRUE(served) << "CRD never served";

  json w = {{"apiVersion", "test.flowrun.dev/v1"}, {"kind", "Widget"}, {"metadata", {{"name", "w1"}}}, {"spec", {{"size", 3}}}};
  auto created = client_->Create(widgets, ns_, w);
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_FALSE(created->contains("status"));

  // Status through the subresource; a spec change there is ignored.
  json st = *created;
  st["status"] = {{"phase", "Running"}, {"observedGeneration", 1}};
  st["spec"]["size"] = 99;
  auto with_status = client_->UpdateStatus(widgets, ns_, st);
  ASSERT_TRUE(with_status.ok()) << with_status.status();
  EXPECT_EQ((*with_status)["status"]["phase"], "Running");
  EXPECT_EQ((*with_status)["spec"]["size"], 3);
  // The main resource ignores status.
  json main = *with_status;
  main["status"]["phase"] = "Ignored";
  main["spec"]["size"] = 4;
  auto upd = client_->Update(widgets, ns_, main);
  ASSERT_TRUE(upd.ok()) << upd.status();
  EXPECT_EQ((*upd)["status"]["phase"], "Running");
  EXPECT_EQ((*upd)["spec"]["size"], 4);

  auto mp = client_->MergePatch(widgets, ns_, "w1", {{"status", {{"phase", "Succeeded"}}}}, /*status=*/true);
  ASSERT_TRUE(mp.ok()) << mp.status();
  EXPECT_EQ((*mp)["status"]["phase"], "Succeeded");
  EXPECT_EQ((*mp)["status"]["observedGeneration"], 1);

  auto ap = client_->Apply(widgets, ns_, "w1", {{"status", {{"phase", "Applied"}}}}, "flowrun-controller",
                           /*force=*/true, /*status=*/true);
  ASSERT_TRUE(ap.ok()) << ap.status();
  EXPECT_EQ((*ap)["status"]["phase"], "Applied");

  // A stale status update conflicts too.
  EXPECT_TRUE(IsConflict(client_->UpdateStatus(widgets, ns_, st).status()));
  ASSERT_TRUE(client_->Delete(widgets, ns_, "w1", {}).ok());
}

TEST_F(ClientTest, FlowRunsResourceRef) {
  const ResourceRef fr = resources::FlowRuns();
  EXPECT_EQ(fr.group, "flowrun.dev");
  EXPECT_EQ(fr.version, "v1alpha1");
  EXPECT_EQ(fr.resource, "flowruns");
  EXPECT_EQ(fr.kind, "FlowRun");
  EXPECT_EQ(fr.CollectionPath("ns1"), "/apis/flowrun.dev/v1alpha1/namespaces/ns1/flowruns");
  EXPECT_EQ(resources::Pods().CollectionPath(""), "/api/v1/pods");
  EXPECT_EQ(resources::Nodes().CollectionPath("ignored"), "/api/v1/nodes");
}

TEST_F(ClientTest, ListPagination2000ConfigMaps) {
  constexpr int kCount = 2000, kThreads = 8;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  auto t0 = std::chrono::steady_clock::now();
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = t; i < kCount; i += kThreads) {
        json cm = ConfigMap("cm-" + std::to_string(i), {{"i", std::to_string(i)}});
        if (i % 2 == 0) cm["metadata"]["labels"]["parity"] = "even";
        auto r = client_->Create(resources::ConfigMaps(), ns_, cm);
        if (!r.ok() && !IsAlreadyExists(r.status())) ++failures;
      }
    });
  }
  for (auto& t : threads) t.join();
  ASSERT_EQ(failures.load(), 0);
  std::cerr << "created " << kCount << " ConfigMaps in "
            << std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() << " s\n";

  // Page by page.
  ListOptions o;
  o.limit = 500;
  int pages = 0;
  std::set<std::string> names;
  size_t total = 0;
  for (;;) {
    auto page = client_->List(resources::ConfigMaps(), ns_, o);
    ASSERT_TRUE(page.ok()) << page.status();
    ++pages;
    EXPECT_LE(page->items.size(), 500u);
    for (const auto& it : page->items) {
      names.insert(it["metadata"]["name"].get<std::string>());
      ++total;
    }
    if (page->continue_token.empty()) break;
    o.continue_token = page->continue_token;
  }
  // kube-root-ca.crt may be published into the namespace too (no controller here; allow it).
  EXPECT_GE(pages, 4);
  EXPECT_EQ(total, names.size()) << "duplicates across pages";
  EXPECT_GE(names.size(), static_cast<size_t>(kCount));
  for (int i = 0; i < kCount; ++i) ASSERT_TRUE(names.count("cm-" + std::to_string(i))) << i;

  ListOptions all;
  all.limit = 500;
  auto every = client_->ListAll(resources::ConfigMaps(), ns_, all);
  ASSERT_TRUE(every.ok()) << every.status();
  EXPECT_EQ(every->items.size(), names.size());
  EXPECT_FALSE(every->resource_version.empty());

  ListOptions even;
  even.label_selector = "parity=even";
  even.limit = 300;
  auto evens = client_->ListAll(resources::ConfigMaps(), ns_, even);
  ASSERT_TRUE(evens.ok()) << evens.status();
  EXPECT_EQ(evens->items.size(), static_cast<size_t>(kCount / 2));

  ListOptions one;
  one.field_selector = "metadata.name=cm-7";
  auto single = client_->List(resources::ConfigMaps(), ns_, one);
  ASSERT_TRUE(single.ok()) << single.status();
  ASSERT_EQ(single->items.size(), 1u);
  EXPECT_EQ(single->items[0]["data"]["i"], "7");

  // Clean up in one request.
  EXPECT_TRUE(client_->Raw("DELETE", "/api/v1/namespaces/" + ns_ + "/configmaps").ok());
}

// A Role that may read ConfigMaps (the aggregated ClusterRole "view" has no
// rules here: the aggregation controller does not run in the test cluster).
bool CreateReaderRole(KubeClient* c, const std::string& ns) {
  json role = json::parse(R"({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
    "metadata": {"name": "read-configmaps"},
    "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"]}]})");
  auto r = c->Raw("POST", "/apis/rbac.authorization.k8s.io/v1/namespaces/" + ns + "/roles", role);
  return r.ok() || IsAlreadyExists(r.status());
}

json SleeperJob(const std::string& name) {
  json job = json::parse(R"({
    "apiVersion": "batch/v1", "kind": "Job",
    "spec": {"backoffLimit": 0, "template": {"spec": {
      "restartPolicy": "Never",
      "containers": [{"name": "main", "image": "busybox", "command": ["sleep", "300"]}]}}}})");
  job["metadata"]["name"] = name;
  return job;
}

TEST_F(ClientTest, JobDeleteBackgroundRemovesPodsAndPreconditionsHold) {
  auto job = client_->Create(resources::Jobs(), ns_, SleeperJob("sleeper"));
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ((*job)["kind"], "Job");
  ListOptions sel;
  sel.label_selector = "job-name=sleeper";
  size_t pods = 0;
  for (int i = 0; i < 300 && pods == 0; ++i) {
    auto l = client_->List(resources::Pods(), ns_, sel);
    ASSERT_TRUE(l.ok()) << l.status();
    pods = l->items.size();
    if (pods == 0) std::this_thread::sleep_for(100ms);
  }
  ASSERT_GT(pods, 0u) << "the Job controller created no pod";

  // A patch on a Job (spec.activeDeadlineSeconds is mutable).
  auto patched = client_->MergePatch(resources::Jobs(), ns_, "sleeper", {{"spec", {{"activeDeadlineSeconds", 600}}}});
  ASSERT_TRUE(patched.ok()) << patched.status();
  EXPECT_EQ((*patched)["spec"]["activeDeadlineSeconds"], 600);

  DeleteOptions wrong;
  wrong.propagation_policy = "Background";
  wrong.precondition_uid = "00000000-0000-0000-0000-000000000000";
  Status st = client_->Delete(resources::Jobs(), ns_, "sleeper", wrong);
  EXPECT_TRUE(IsConflict(st)) << st;
  ASSERT_TRUE(client_->Get(resources::Jobs(), ns_, "sleeper").ok());

  DeleteOptions bg;
  bg.propagation_policy = "Background";
  bg.precondition_uid = (*job)["metadata"]["uid"].get<std::string>();
  ASSERT_TRUE(client_->Delete(resources::Jobs(), ns_, "sleeper", bg).ok());
  // The garbage collector deletes the pods; nodesim kills the processes.
  for (int i = 0; i < 600 && pods > 0; ++i) {
    std::this_thread::sleep_for(100ms);
    auto l = client_->List(resources::Pods(), ns_, sel);
    ASSERT_TRUE(l.ok()) << l.status();
    pods = l->items.size();
  }
  EXPECT_EQ(pods, 0u) << "pods outlived their Job";
  EXPECT_TRUE(IsNotFound(client_->Get(resources::Jobs(), ns_, "sleeper").status()));
}

TEST_F(ClientTest, WatchDeliversAddedModifiedDeleted) {
  auto start = client_->List(resources::ConfigMaps(), ns_, {});
  ASSERT_TRUE(start.ok()) << start.status();
  WatchOptions wo;
  wo.resource_version = start->resource_version;
  wo.label_selector = "watched=yes";
  wo.timeout = 60s;
  std::vector<std::pair<std::string, std::string>> seen;  // type, name
  std::mutex mu;
  CancelToken cancel;
  auto fut = std::async(std::launch::async, [&] {
    return client_->Watch(resources::ConfigMaps(), ns_, wo, [&](const WatchEvent& ev) {
      std::lock_guard<std::mutex> lock(mu);
      if (ev.type == "BOOKMARK") return true;
      seen.emplace_back(ev.type, ev.object["metadata"]["name"].get<std::string>());
      return ev.type != "DELETED";
    }, &cancel);
  });
  json cm = ConfigMap("w", {{"v", "1"}});
  cm["metadata"]["labels"]["watched"] = "yes";
  ASSERT_TRUE(client_->Create(resources::ConfigMaps(), ns_, ConfigMap("unwatched")).ok());
  auto created = client_->Create(resources::ConfigMaps(), ns_, cm);
  ASSERT_TRUE(created.ok()) << created.status();
  ASSERT_TRUE(client_->MergePatch(resources::ConfigMaps(), ns_, "w", {{"data", {{"v", "2"}}}}).ok());
  ASSERT_TRUE(client_->Delete(resources::ConfigMaps(), ns_, "w", {}).ok());
  ASSERT_EQ(fut.wait_for(30s), std::future_status::ready) << "watch did not see the delete";
  auto rv = fut.get();
  ASSERT_TRUE(rv.ok()) << rv.status();
  EXPECT_FALSE(rv->empty());
  EXPECT_NE(*rv, start->resource_version);
  std::lock_guard<std::mutex> lock(mu);
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0], std::make_pair(std::string("ADDED"), std::string("w")));
  EXPECT_EQ(seen[1], std::make_pair(std::string("MODIFIED"), std::string("w")));
  EXPECT_EQ(seen[2], std::make_pair(std::string("DELETED"), std::string("w")));
}

TEST_F(ClientTest, WatchDeliversBookmarksAndEndsAtTimeout) {
  auto start = client_->List(resources::ConfigMaps(), ns_, {});
  ASSERT_TRUE(start.ok()) << start.status();
  WatchOptions wo;
  wo.resource_version = start->resource_version;
  wo.allow_bookmarks = true;
  wo.timeout = 5s;  // the apiserver sends a bookmark ~2 s before the deadline
  wo.label_selector = "never=matches";
  std::string bookmark_rv;
  int bookmarks = 0;
  // Bookmarks are only sent once the cache moved past the watch's start:
  // write something the selector does not match while the watch is open.
  // When it opens is not observable (it matches nothing), so the writer keeps
  // writing until the watch returned instead of guessing with one sleep.
  std::atomic<bool> watch_done{false};
  std::thread writer([&] {
    for (int i = 0; !watch_done.load(); ++i) {
      EXPECT_TRUE(client_->Create(resources::ConfigMaps(), ns_, ConfigMap("unrelated-" + std::to_string(i))).ok());
      std::this_thread::sleep_for(200ms);  // pacing only; nothing is asserted on it
    }
  });
  auto t0 = std::chrono::steady_clock::now();
  auto rv = client_->Watch(resources::ConfigMaps(), ns_, wo, [&](const WatchEvent& ev) {
    if (ev.type == "BOOKMARK") {
      ++bookmarks;
      bookmark_rv = ev.object["metadata"]["resourceVersion"].get<std::string>();
    }
    return true;
  }, nullptr);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  watch_done = true;
  writer.join();
  ASSERT_TRUE(rv.ok()) << rv.status();
  EXPECT_GE(bookmarks, 1);
  EXPECT_EQ(*rv, bookmark_rv) << "the returned resourceVersion includes bookmarks";
  EXPECT_GT(secs, 2.0);
  EXPECT_LT(secs, 15.0);
}

TEST_F(ClientTest, WatchCancelReturnsPromptly) {
  WatchOptions wo;
  wo.timeout = 120s;
  CancelToken cancel;
  std::atomic<int> events{0};
  auto fut = std::async(std::launch::async, [&] {
    return client_->Watch(resources::ConfigMaps(), ns_, wo, [&](const WatchEvent&) { ++events; return true; }, &cancel);
  });
  // The watch is open once it delivered an event (ADDED for the existing
  // objects, or this one); then it is quiet.
  auto poke = client_->Create(resources::ConfigMaps(), ns_, ConfigMap("cancel-poke"));
  ASSERT_TRUE(poke.ok()) << poke.status();
  ASSERT_TRUE(flowrun::testing::Eventually([&] { return events.load() > 0; }, 30s)) << "the watch never opened";
  auto t0 = std::chrono::steady_clock::now();
  cancel.Cancel();
  ASSERT_EQ(fut.wait_for(5s), std::future_status::ready) << "Watch ignored the cancellation";
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  auto rv = fut.get();
  EXPECT_EQ(rv.status().code(), StatusCode::kAborted) << rv.status();
  // Promptness is the 5 s wait above (a stream cut, not a timeout); a tighter
  // bound would measure the machine's load.
  std::cerr << "watch cancelled in " << secs * 1000 << " ms\n";
  // A cancelled token stops the next Watch at once.
  auto again = client_->Watch(resources::ConfigMaps(), ns_, wo, [](const WatchEvent&) { return true; }, &cancel);
  EXPECT_EQ(again.status().code(), StatusCode::kAborted);
}

TEST_F(ClientTest, TokenAuthenticationAndRbac) {
  std::string kc = cluster_->ServiceAccountKubeconfig(ns_, "default");
  // The ServiceAccount controller creates "default" shortly after the namespace.
  for (int i = 0; i < 100 && kc.find(".kubeconfig") == std::string::npos; ++i) {
    std::this_thread::sleep_for(100ms);
    kc = cluster_->ServiceAccountKubeconfig(ns_, "default");
  }
  auto cfg = LoadKubeconfig(kc);
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  EXPECT_FALSE(cfg->bearer_token.empty());
  EXPECT_TRUE(cfg->client_cert_pem.empty());
  auto sa = NewKubeClient(*cfg);
  ASSERT_TRUE(sa.ok()) << sa.status();
  auto denied = (*sa)->List(resources::ConfigMaps(), ns_, {});
  EXPECT_TRUE(IsForbidden(denied.status())) << denied.status();  // authenticated, not authorized
  ASSERT_TRUE(CreateReaderRole(client_.get(), ns_));
  json rb = {{"apiVersion", "rbac.authorization.k8s.io/v1"},
             {"kind", "RoleBinding"},
             {"metadata", {{"name", "sa-view"}}},
             {"roleRef", {{"apiGroup", "rbac.authorization.k8s.io"}, {"kind", "Role"}, {"name", "read-configmaps"}}},
             {"subjects", {{{"kind", "ServiceAccount"}, {"name", "default"}, {"namespace", ns_}}}}};
  ASSERT_TRUE(client_->Raw("POST", "/apis/rbac.authorization.k8s.io/v1/namespaces/" + ns_ + "/rolebindings", rb).ok());
  StatusOr<ObjectList> allowed = Status(StatusCode::kUnknown, "not tried");
  flowrun::testing::Eventually([&] {  // RBAC caches update asynchronously
    allowed = (*sa)->List(resources::ConfigMaps(), ns_, {});
    return allowed.ok();
  });
  EXPECT_TRUE(allowed.ok()) << allowed.status();

  ClusterConfig bad = *cfg;
  bad.bearer_token = "not-a-token";
  auto badc = NewKubeClient(bad);
  ASSERT_TRUE(badc.ok());
  auto unauth = (*badc)->List(resources::ConfigMaps(), ns_, {});
  EXPECT_EQ(unauth.status().code(), StatusCode::kUnauthenticated) << unauth.status();
  EXPECT_EQ(HttpStatusOf(unauth.status()), 401);
}

TEST_F(ClientTest, MintedUserWithoutRightsIsForbidden) {
  auto alice = ClientFor(cluster_->MintUser("alice"));
  ASSERT_NE(alice, nullptr);
  auto r = alice->Get(resources::ConfigMaps(), ns_, "anything");
  EXPECT_TRUE(IsForbidden(r.status())) << r.status();
  EXPECT_EQ(HttpStatusOf(r.status()), 403);
  EXPECT_EQ(ReasonOf(r.status()), "Forbidden");
  auto w = alice->Watch(resources::ConfigMaps(), ns_, {}, [](const WatchEvent&) { return true; }, nullptr);
  EXPECT_TRUE(IsForbidden(w.status())) << w.status();
}

TEST_F(ClientTest, ExecPluginRunsAgainAfterExpiryAnd401) {
  // The plugin hands out a ServiceAccount token; grant that SA "view".
  std::string sa_name = "exec-user";
  auto sa = client_->Create(resources::ServiceAccounts(), ns_, {{"metadata", {{"name", sa_name}}}});
  ASSERT_TRUE(sa.ok()) << sa.status();
  ASSERT_TRUE(CreateReaderRole(client_.get(), ns_));
  json rb = {{"apiVersion", "rbac.authorization.k8s.io/v1"},
             {"kind", "RoleBinding"},
             {"metadata", {{"name", "exec-view"}}},
             {"roleRef", {{"apiGroup", "rbac.authorization.k8s.io"}, {"kind", "Role"}, {"name", "read-configmaps"}}},
             {"subjects", {{{"kind", "ServiceAccount"}, {"name", sa_name}, {"namespace", ns_}}}}};
  ASSERT_TRUE(client_->Raw("POST", "/apis/rbac.authorization.k8s.io/v1/namespaces/" + ns_ + "/rolebindings", rb).ok());
  // A token through the TokenRequest API (Raw).
  auto tr = client_->Raw("POST", "/api/v1/namespaces/" + ns_ + "/serviceaccounts/" + sa_name + "/token",
                         {{"apiVersion", "authentication.k8s.io/v1"},
                          {"kind", "TokenRequest"},
                          {"spec", {{"expirationSeconds", 3600}}}});
  ASSERT_TRUE(tr.ok()) << tr.status();
  std::string token = (*tr)["status"]["token"].get<std::string>();

  std::string dir = cluster_->dir() + "/exec-" + ns_;
  ASSERT_EQ(::system(("mkdir -p '" + dir + "'").c_str()), 0);
  std::string token_file = dir + "/token", runs_file = dir + "/runs";
  std::ofstream(token_file) << token;
  std::string kc = ExecKubeconfig(dir, "PLUGIN_TOKEN_FILE", token_file, runs_file);
  auto runs = [&] { return LineCount(runs_file); };
  // The credential lives an hour (PLUGIN_TTL); the client's clock jumps past
  // its expirationTimestamp instead of the test sleeping until then.
  ShiftedClock clock;
  const auto past_expiry = 2h;
  ClientOptions opts;
  opts.clock = &clock;
  auto c = ClientFor(kc, opts);
  ASSERT_NE(c, nullptr);
  StatusOr<ObjectList> l1 = Status(StatusCode::kUnknown, "not tried");
  ASSERT_TRUE(flowrun::testing::Eventually([&] {  // RBAC caches catch up (403 until then)
    l1 = c->List(resources::ConfigMaps(), ns_, {});
    return !IsForbidden(l1.status());
  }));
  ASSERT_TRUE(l1.ok()) << l1.status();
  EXPECT_EQ(runs(), 1);
  ASSERT_TRUE(c->List(resources::ConfigMaps(), ns_, {}).ok());
  EXPECT_EQ(runs(), 1) << "the credential is cached until it expires";
  clock.SetOffset(past_expiry);
  ASSERT_TRUE(c->List(resources::ConfigMaps(), ns_, {}).ok());
  EXPECT_EQ(runs(), 2) << "expired credential: plugin runs again";
  clock.SetOffset(0s);  // the new credential is valid (an hour from the real now)

  // A 401 makes it run again at once (once per request).
  std::ofstream(token_file) << "revoked";
  clock.SetOffset(past_expiry);
  auto bad = c->List(resources::ConfigMaps(), ns_, {});
  EXPECT_EQ(bad.status().code(), StatusCode::kUnauthenticated) << bad.status();
  EXPECT_EQ(runs(), 4) << "expired -> run (revoked token) -> 401 -> run again";
  clock.SetOffset(0s);  // the cached (revoked) credential has not expired
  std::ofstream(token_file) << token;
  auto good = c->List(resources::ConfigMaps(), ns_, {});
  EXPECT_TRUE(good.ok()) << good.status();
  EXPECT_EQ(runs(), 5) << "cached revoked token -> 401 -> run -> ok";
}

// An exec plugin that hands out client certificates (ExecCredential
// clientCertificateData/clientKeyData, as cloud and SSO plugins do): the
// client presents that certificate, keeps it until the credential expires,
// and on re-run switches to the new identity the plugin returns. Identity is
// read back from the apiserver (SelfSubjectReview), not assumed. A key that
// is not PEM is a clear error naming the field, not a TLS failure later.
TEST_F(ClientTest, ExecPluginClientCertificatesAreUsedAndRotated) {
  std::string dir = cluster_->dir() + "/exec-cert-" + ns_;
  ASSERT_EQ(::system(("mkdir -p '" + dir + "'").c_str()), 0);
  for (const std::string user : {"exec-cert-a", "exec-cert-b"}) {
    ASSERT_FALSE(cluster_->MintUser(user).empty());
    std::string minted = cluster_->dir() + "/users/" + user;
    ASSERT_EQ(::system(("cp '" + minted + ".crt' '" + minted + ".key' '" + dir + "/'").c_str()), 0);
  }
  std::ofstream(dir + "/current") << "exec-cert-a";
  std::string runs_file = dir + "/runs";
  std::string kc = ExecKubeconfig(dir, "PLUGIN_CERT_DIR", dir, runs_file);
  auto runs = [&] { return LineCount(runs_file); };
  ShiftedClock clock;
  ClientOptions opts;
  opts.clock = &clock;
  auto c = ClientFor(kc, opts);
  ASSERT_NE(c, nullptr);
  auto whoami = [&]() -> std::string {
    auto r = c->Raw("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                    {{"apiVersion", "authentication.k8s.io/v1"}, {"kind", "SelfSubjectReview"}});
    if (!r.ok()) return "error: " + r.status().ToString();
    const json& st = *r;
    if (!st.contains("status") || !st["status"].contains("userInfo")) return "no userInfo: " + st.dump();
    return st["status"]["userInfo"].value("username", std::string());
  };
  EXPECT_EQ(whoami(), "exec-cert-a");
  EXPECT_EQ(runs(), 1);
  EXPECT_EQ(whoami(), "exec-cert-a");
  EXPECT_EQ(runs(), 1) << "the certificate is kept until the credential expires";

  // The plugin now hands out another identity; once the credential expired
  // the client runs it again and presents the new certificate.
  std::ofstream(dir + "/current") << "exec-cert-b";
  clock.SetOffset(2h);
  EXPECT_EQ(whoami(), "exec-cert-b");
  EXPECT_EQ(runs(), 2);
  clock.SetOffset(0s);

  // A key that is not PEM: refused with the field's name.
  std::ofstream(dir + "/exec-cert-b.key") << "not a key";
  clock.SetOffset(4h);
  auto bad = c->List(resources::ConfigMaps(), ns_, {});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("clientKeyData"), std::string::npos) << bad.status();
}

// After an apiserver restart its watch cache starts at the current
// resourceVersion: resuming from an older one is 410 Gone (an ERROR event in
// a 200 stream), as after an etcd compaction.
TEST_F(ClientTest, WatchFromTooOldResourceVersionIsGone) {
  auto before = client_->List(resources::ConfigMaps(), ns_, {});
  ASSERT_TRUE(before.ok()) << before.status();
  ASSERT_TRUE(client_->Create(resources::ConfigMaps(), ns_, ConfigMap("advance1")).ok());
  ASSERT_TRUE(client_->Create(resources::ConfigMaps(), ns_, ConfigMap("advance2")).ok());
  cluster_->RestartApiserver();
  auto adv3 = client_->Create(resources::ConfigMaps(), ns_, ConfigMap("advance3"));
  ASSERT_TRUE(adv3.ok()) << adv3.status();
  for (const std::string& old_rv : {before->resource_version, std::string("1")}) {
    WatchOptions wo;
    wo.resource_version = old_rv;
    wo.timeout = 10s;
    int events = 0;
    auto rv = client_->Watch(resources::ConfigMaps(), ns_, wo, [&](const WatchEvent&) { ++events; return true; },
                             nullptr);
    ASSERT_FALSE(rv.ok()) << "rv " << old_rv << ": " << events << " events, returned " << *rv;
    EXPECT_TRUE(IsGone(rv.status())) << rv.status();
    EXPECT_EQ(HttpStatusOf(rv.status()), 410);
    EXPECT_EQ(events, 0);
  }
}

// Kept last: it restarts the apiserver under the other tests' feet.
TEST_F(ClientTest, WatchEndsWhenApiserverDiesOrRestarts) {
  WatchOptions wo;
  wo.timeout = 300s;
  // 1. SIGKILL: the connection breaks -> an error, not a hang. The watch is
  // open once it delivered an event (ADDED for the object created first).
  ASSERT_TRUE(client_->Create(resources::ConfigMaps(), ns_, ConfigMap("watch-open-1")).ok());
  std::atomic<int> events{0};
  auto fut = std::async(std::launch::async, [&] {
    return client_->Watch(resources::ConfigMaps(), ns_, wo, [&](const WatchEvent&) { ++events; return true; },
                          nullptr);
  });
  ASSERT_TRUE(flowrun::testing::Eventually([&] { return events.load() > 0; }, 30s)) << "the watch never opened";
  ASSERT_EQ(fut.wait_for(0s), std::future_status::timeout);
  cluster_->KillApiserver();
  ASSERT_EQ(fut.wait_for(10s), std::future_status::ready) << "Watch hung after the apiserver died";
  auto r1 = fut.get();
  EXPECT_FALSE(r1.ok());
  EXPECT_EQ(r1.status().code(), StatusCode::kUnavailable) << r1.status();
  // While it is down: requests fail fast with kUnavailable.
  auto down = client_->Get(resources::ConfigMaps(), ns_, "x");
  EXPECT_EQ(down.status().code(), StatusCode::kUnavailable) << down.status();
  cluster_->StartApiserver();

  // 2. Graceful restart (SIGTERM): the server ends the stream; Watch returns
  // promptly (OK at a clean end, or an error), never hangs.
  auto start = client_->List(resources::ConfigMaps(), ns_, {});
  ASSERT_TRUE(start.ok()) << start.status();
  wo.resource_version = start->resource_version;
  // Created after `start`: the watch from there delivers it once open.
  ASSERT_TRUE(client_->Create(resources::ConfigMaps(), ns_, ConfigMap("watch-open-2")).ok());
  std::atomic<int> events2{0};
  auto fut2 = std::async(std::launch::async, [&] {
    return client_->Watch(resources::ConfigMaps(), ns_, wo, [&](const WatchEvent&) { ++events2; return true; },
                          nullptr);
  });
  ASSERT_TRUE(flowrun::testing::Eventually([&] { return events2.load() > 0; }, 30s)) << "the watch never opened";
  auto t0 = std::chrono::steady_clock::now();
  cluster_->RestartApiserver();
  ASSERT_EQ(fut2.wait_for(30s), std::future_status::ready) << "Watch hung across an apiserver restart";
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  auto r2 = fut2.get();
  std::cerr << "watch across restart returned after " << secs << " s: "
            << (r2.ok() ? "OK rv=" + *r2 : r2.status().ToString()) << "\n";
  // Pooled connections died with the old process: the next GET still works.
  auto after = client_->List(resources::ConfigMaps(), ns_, {});
  EXPECT_TRUE(after.ok()) << after.status();
}

}  // namespace
}  // namespace flowrun::kube
