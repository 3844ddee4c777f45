// Informer against a real control plane (label kube). The cluster runs with
// kube-apiserver --watch-cache=false and a 2 s etcd compaction interval, so a
// watch resumed from an old resourceVersion gets a real 410 Gone quickly.
// The pure half (scripted client, fake clock) is informer_unit_test.cc.
#include "flowrun/kube/informer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "flowrun/kube/client.h"
#include "flowrun/kube/config.h"
#include "flowrun/kube/errors.h"
#include "kube/informer_journal.h"
#include "kube/kube_cluster.h"
#include "kube/unimplemented_client.h"
#include "support/eventually.h"

namespace flowrun::kube {
namespace {

using namespace std::chrono_literals;
using flowrun::kube::testing::Journal;
using flowrun::testing::Eventually;
using flowrun::testing::KubeCluster;

std::unique_ptr<KubeClient> AdminClient() {
  auto cfg = LoadKubeconfig(KubeCluster::Get().admin_kubeconfig());
  EXPECT_TRUE(cfg.ok()) << cfg.status();
  ClientOptions o;
  o.request_timeout = 10s;
  auto c = NewKubeClient(*cfg, o);
  EXPECT_TRUE(c.ok()) << c.status();
  return std::move(c).value();
}

nlohmann::json ConfigMap(const std::string& ns, const std::string& name, nlohmann::json data = {{"k", "v"}},
                         nlohmann::json labels = nlohmann::json::object()) {
  return {{"apiVersion", "v1"},
          {"kind", "ConfigMap"},
          {"metadata", {{"name", name}, {"namespace", ns}, {"labels", labels}}},
          {"data", data}};
}

// A KubeClient that forwards to a real one, and can cut the informer off:
// while partitioned every List and Watch fails at once and running watches
// are cancelled. Records every List's options; an optional hook runs before
// a List is forwarded (on the informer's thread).
class PartitionableClient final : public flowrun::kube::testing::UnimplementedClient {
 public:
  explicit PartitionableClient(KubeClient* real) : real_(real) {}

  void Partition() {
    std::lock_guard<std::mutex> l(mu_);
    partitioned_ = true;
    for (auto* t : running_) t->Cancel();
  }
  void Heal() {
    std::lock_guard<std::mutex> l(mu_);
    partitioned_ = false;
  }
  std::vector<std::string> WatchResourceVersions() const {
    std::lock_guard<std::mutex> l(mu_);
    return watch_rvs_;
  }
  std::vector<ListOptions> ListCalls() const {
    std::lock_guard<std::mutex> l(mu_);
    return list_calls_;
  }
  // Before Start().
  void BeforeList(std::function<void(const ListOptions&)> hook) { before_list_ = std::move(hook); }

  StatusOr<nlohmann::json> Get(const ResourceRef& r, const std::string& ns, const std::string& n) override {
    return real_->Get(r, ns, n);
  }
  StatusOr<ObjectList> List(const ResourceRef& r, const std::string& ns, const ListOptions& o) override {
    {
      std::lock_guard<std::mutex> l(mu_);
      if (partitioned_) return Unavailable("partitioned (test)");
      list_calls_.push_back(o);
    }
    if (before_list_) before_list_(o);
    return real_->List(r, ns, o);
  }
  StatusOr<nlohmann::json> Create(const ResourceRef& r, const std::string& ns, const nlohmann::json& o) override {
    return real_->Create(r, ns, o);
  }
  StatusOr<nlohmann::json> Update(const ResourceRef& r, const std::string& ns, const nlohmann::json& o) override {
    return real_->Update(r, ns, o);
  }
  StatusOr<nlohmann::json> UpdateStatus(const ResourceRef& r, const std::string& ns,
                                        const nlohmann::json& o) override {
    return real_->UpdateStatus(r, ns, o);
  }
  StatusOr<nlohmann::json> MergePatch(const ResourceRef& r, const std::string& ns, const std::string& n,
                                      const nlohmann::json& p, bool status) override {
    return real_->MergePatch(r, ns, n, p, status);
  }
  StatusOr<nlohmann::json> Apply(const ResourceRef& r, const std::string& ns, const std::string& n,
                                 const nlohmann::json& o, const std::string& fm, bool force, bool status) override {
    return real_->Apply(r, ns, n, o, fm, force, status);
  }
  Status Delete(const ResourceRef& r, const std::string& ns, const std::string& n, const DeleteOptions& o) override {
    return real_->Delete(r, ns, n, o);
  }
  StatusOr<nlohmann::json> Raw(const std::string& m, const std::string& p, const nlohmann::json& b,
                               const std::string& ct) override {
    return real_->Raw(m, p, b, ct);
  }
  StatusOr<std::string> Watch(const ResourceRef& r, const std::string& ns, const WatchOptions& o,
                              const std::function<bool(const WatchEvent&)>& on_event, CancelToken* cancel) override {
    CancelToken inner;
    {
      std::lock_guard<std::mutex> l(mu_);
      if (partitioned_) return Unavailable("partitioned (test)");
      watch_rvs_.push_back(o.resource_version);
      running_.insert(&inner);
    }
    if (cancel != nullptr) {
      cancel->SetOnCancel([&inner] { inner.Cancel(); });
      if (cancel->cancelled()) inner.Cancel();
    }
    auto res = real_->Watch(r, ns, o, on_event, &inner);
    if (cancel != nullptr) cancel->SetOnCancel(nullptr);
    bool cut;
    {
      std::lock_guard<std::mutex> l(mu_);
      running_.erase(&inner);
      cut = inner.cancelled() && !(cancel != nullptr && cancel->cancelled());
    }
    if (cut) return Unavailable("partitioned (test)");
    return res;
  }

 private:
  KubeClient* real_;
  mutable std::mutex mu_;
  bool partitioned_ = false;
  std::set<CancelToken*> running_;
  std::vector<std::string> watch_rvs_;
  std::vector<ListOptions> list_calls_;
  std::function<void(const ListOptions&)> before_list_;
};

class InformerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    client_ = AdminClient();
    ASSERT_NE(client_, nullptr);
  }
  std::string Namespace(const std::string& base) {
    std::string ns = base + "-" + std::to_string(counter_++);
    KubeCluster::Get().CreateNamespace(ns);
    return ns;
  }
  nlohmann::json Create(const nlohmann::json& obj) {
    auto r = client_->Create(resources::ConfigMaps(), obj["metadata"]["namespace"], obj);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : nlohmann::json();
  }
  void Delete(const std::string& ns, const std::string& name) {
    DeleteOptions o;
    auto s = client_->Delete(resources::ConfigMaps(), ns, name, o);
    EXPECT_TRUE(s.ok()) << s;
  }
  void Patch(const std::string& ns, const std::string& name, const nlohmann::json& patch) {
    auto r = client_->MergePatch(resources::ConfigMaps(), ns, name, patch);
    EXPECT_TRUE(r.ok()) << r.status();
  }
  InformerOptions Options(const std::string& ns) {
    InformerOptions o;
    o.resource = resources::ConfigMaps();
    o.ns = ns;
    o.backoff_initial = 200ms;
    o.backoff_max = 2s;
    return o;
  }

  std::unique_ptr<KubeClient> client_;
  static inline int counter_ = 0;
};

TEST_F(InformerTest, SyncsAndDeliversEventsForConfigMaps) {
  std::string ns = Namespace("inf-sync");
  Create(ConfigMap(ns, "a"));
  Create(ConfigMap(ns, "b"));
  Create(ConfigMap(ns, "c"));

  Journal j;
  auto opts = Options(ns);
  opts.transform = [](nlohmann::json& o) { o["data"].erase("drop-me"); };
  Informer inf(client_.get(), opts);
  inf.AddEventHandler(j.Handlers());
  EXPECT_FALSE(inf.HasSynced());
  inf.Start();
  ASSERT_TRUE(inf.WaitForSync(30s)) << inf.Stats().last_error;
  EXPECT_EQ(inf.Size(), 3u);
  EXPECT_TRUE(j.Has("add " + ns + "/a") && j.Has("add " + ns + "/b") && j.Has("add " + ns + "/c")) << j.Dump();
  EXPECT_EQ(inf.Keys(), (std::vector<std::string>{ns + "/a", ns + "/b", ns + "/c"}));
  auto a = inf.Get(ns, "a");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ((*a)["data"]["k"], "v");
  EXPECT_FALSE((*a)["metadata"].contains("managedFields")) << "managedFields must be stripped";

  Create(ConfigMap(ns, "d", {{"k", "1"}, {"drop-me", "x"}}));
  ASSERT_TRUE(Eventually([&] { return j.Has("add " + ns + "/d"); })) << j.Dump();
  auto d = inf.Get(ns + "/d");
  ASSERT_NE(d, nullptr);
  EXPECT_FALSE((*d)["data"].contains("drop-me")) << "transform hook applied";

  Patch(ns, "a", {{"data", {{"k", "changed"}}}});
  ASSERT_TRUE(Eventually([&] {
    auto o = inf.Get(ns, "a");
    return o && (*o)["data"]["k"] == "changed";
  }));
  EXPECT_TRUE(j.Has("update " + ns + "/a"));
  EXPECT_EQ((*a)["data"]["k"], "v") << "an old snapshot never changes";

  Delete(ns, "b");
  ASSERT_TRUE(Eventually([&] { return j.Has("delete " + ns + "/b"); })) << j.Dump();
  EXPECT_EQ(inf.Get(ns, "b"), nullptr);
  EXPECT_EQ(inf.Size(), 3u);
  inf.Stop();
  EXPECT_EQ(inf.Stats().lists, 1u);
  EXPECT_EQ(inf.Stats().gone, 0u);
}

TEST_F(InformerTest, IndexesByOwnerUidAndLabel) {
  std::string ns = Namespace("inf-index");
  auto owner = Create(ConfigMap(ns, "owner"));
  std::string uid = owner["metadata"]["uid"];
  auto child = [&](const std::string& name, const std::string& tier) {
    auto cm = ConfigMap(ns, name, {{"k", "v"}}, {{"tier", tier}});
    cm["metadata"]["ownerReferences"] = {
        {{"apiVersion", "v1"}, {"kind", "ConfigMap"}, {"name", "owner"}, {"uid", uid}}};
    return cm;
  };
  Create(child("c1", "web"));
  Create(child("c2", "db"));
  Create(ConfigMap(ns, "orphan", {{"k", "v"}}, {{"tier", "web"}}));

  Informer inf(client_.get(), Options(ns));
  inf.AddIndex("owner", IndexByOwnerUid());
  inf.AddIndex("tier", IndexByLabel("tier"));
  inf.Start();
  ASSERT_TRUE(inf.WaitForSync(30s));
  auto names = [](const std::vector<ObjectPtr>& v) {
    std::set<std::string> s;
    for (const auto& o : v) s.insert((*o)["metadata"]["name"].get<std::string>());
    return s;
  };
  EXPECT_EQ(names(inf.ByIndex("owner", uid)), (std::set<std::string>{"c1", "c2"}));
  EXPECT_EQ(names(inf.ByIndex("tier", "web")), (std::set<std::string>{"c1", "orphan"}));
  EXPECT_TRUE(inf.ByIndex("owner", "no-such-uid").empty());
  EXPECT_TRUE(inf.ByIndex("no-such-index", "x").empty());

  // Index entries follow updates and deletes.
  Create(child("c3", "web"));
  Patch(ns, "c1", {{"metadata", {{"labels", {{"tier", "db"}}}}}});
  Delete(ns, "c2");
  ASSERT_TRUE(Eventually([&] {
    return names(inf.ByIndex("owner", uid)) == std::set<std::string>{"c1", "c3"} &&
           names(inf.ByIndex("tier", "web")) == std::set<std::string>{"c3", "orphan"};
  })) << "owner: " << inf.ByIndex("owner", uid).size();
  EXPECT_EQ(names(inf.ByIndex("tier", "db")), (std::set<std::string>{"c1"}));
}

// The watch resumes from the last resourceVersion when the server ends it
// (timeoutSeconds), without relisting.
TEST_F(InformerTest, ResumesFromLastResourceVersionAcrossWatchTimeouts) {
  std::string ns = Namespace("inf-resume");
  PartitionableClient pc(client_.get());
  Journal j;
  auto opts = Options(ns);
  opts.min_watch_timeout = 1s;
  opts.max_watch_timeout = 2s;
  Informer inf(&pc, opts);
  inf.AddEventHandler(j.Handlers());
  inf.Start();
  ASSERT_TRUE(inf.WaitForSync(30s));
  // Each object is created, seen, and then outlived by its watch (a new
  // watch started after the event), so the next watch resumes past it.
  for (size_t i = 0; i < 3; ++i) {
    Create(ConfigMap(ns, "r" + std::to_string(i)));
    ASSERT_TRUE(Eventually([&] { return inf.Size() == i + 1; }));
    uint64_t watches = inf.Stats().watches;
    ASSERT_TRUE(Eventually([&] { return inf.Stats().watches > watches; }, 30s));
  }
  auto rvs = pc.WatchResourceVersions();
  EXPECT_EQ(inf.Stats().lists, 1u) << "no relist";
  // Every watch started from a non-empty resourceVersion, and they advanced.
  for (const auto& rv : rvs) EXPECT_FALSE(rv.empty());
  EXPECT_GE(std::set<std::string>(rvs.begin(), rvs.end()).size(), 3u);
  EXPECT_EQ(j.Count("add " + ns + "/r0"), 1) << j.Dump();
}

// Deletes while the watch is down, then a resume from a compacted
// resourceVersion: 410 Gone -> relist -> synthesized deletes.
TEST_F(InformerTest, RelistAfterGoneSynthesizesDeletes) {
  std::string ns = Namespace("inf-gone");
  Create(ConfigMap(ns, "a"));
  Create(ConfigMap(ns, "b"));
  Create(ConfigMap(ns, "c"));
  PartitionableClient pc(client_.get());
  Journal j;
  Informer inf(&pc, Options(ns));
  inf.AddEventHandler(j.Handlers());
  inf.Start();
  ASSERT_TRUE(inf.WaitForSync(30s));
  ASSERT_TRUE(Eventually([&] { return inf.Stats().watches >= 1; }));

  pc.Partition();
  const std::string old_rv = inf.Stats().last_resource_version;
  ASSERT_FALSE(old_rv.empty());
  Delete(ns, "b");
  Patch(ns, "c", {{"data", {{"k", "new"}}}});
  Create(ConfigMap(ns, "d"));
  // Wait until etcd compacted past the informer's resourceVersion
  // (--etcd-compaction-interval=2s; a compaction keeps one interval back):
  // a raw watch from it is answered 410 Gone instead of replaying events.
  ASSERT_TRUE(Eventually([&] {
    WatchOptions wo;
    wo.resource_version = old_rv;
    wo.timeout = 1s;
    auto w = client_->Watch(resources::ConfigMaps(), ns, wo, [](const WatchEvent&) { return false; }, nullptr);
    return !w.ok() && IsGone(w.status());
  }, 120s)) << "etcd never compacted past " << old_rv;
  EXPECT_TRUE(inf.Get(ns, "b") != nullptr) << "still cached while partitioned";
  pc.Heal();

  ASSERT_TRUE(Eventually([&] { return j.Has("delete? " + ns + "/b"); })) << j.Dump() << inf.Stats().last_error;
  ASSERT_TRUE(Eventually([&] { return inf.Get(ns, "d") != nullptr; }));
  auto c = inf.Get(ns, "c");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ((*c)["data"]["k"], "new");
  EXPECT_EQ(inf.Keys(), (std::vector<std::string>{ns + "/a", ns + "/c", ns + "/d"}));
  auto st = inf.Stats();
  EXPECT_GE(st.gone, 1u) << st.last_error;
  EXPECT_GE(st.lists, 2u);
  EXPECT_EQ(st.synthesized_deletes, 1u);
  EXPECT_FALSE(j.Has("delete " + ns + "/b")) << "the delete was not observed, only inferred";

  // And the informer keeps watching after the relist.
  Delete(ns, "a");
  ASSERT_TRUE(Eventually([&] { return j.Has("delete " + ns + "/a"); })) << j.Dump();
}

TEST_F(InformerTest, WatchSurvivesApiserverRestartAndConverges) {
  std::string ns = Namespace("inf-restart");
  Create(ConfigMap(ns, "a"));
  Create(ConfigMap(ns, "b"));
  Journal j;
  Informer inf(client_.get(), Options(ns));
  inf.AddEventHandler(j.Handlers());
  inf.Start();
  ASSERT_TRUE(inf.WaitForSync(30s));

  KubeCluster::Get().RestartApiserver();
  // The first request after the restart may hit a pooled connection the old
  // apiserver closed; a POST is not retried by the client, so retry here.
  ASSERT_TRUE(Eventually([&] {
    auto r = client_->Create(resources::ConfigMaps(), ns, ConfigMap(ns, "c"));
    return r.ok() || IsAlreadyExists(r.status());
  }, 20s));
  Delete(ns, "a");
  Patch(ns, "b", {{"data", {{"k", "after-restart"}}}});

  ASSERT_TRUE(Eventually([&] {
    auto b = inf.Get(ns, "b");
    return inf.Keys() == std::vector<std::string>{ns + "/b", ns + "/c"} && b && (*b)["data"]["k"] == "after-restart";
  }, 60s)) << j.Dump() << inf.Stats().last_error;
  auto st = inf.Stats();
  EXPECT_GE(st.watches, 2u) << "the first watch ended with the apiserver";
  EXPECT_TRUE(j.Has("delete " + ns + "/a") || j.Has("delete? " + ns + "/a")) << j.Dump();

  // Still live afterwards.
  Create(ConfigMap(ns, "e"));
  ASSERT_TRUE(Eventually([&] { return inf.Get(ns, "e") != nullptr; }));
}

// A list of 25 objects in pages of 4: each page is in the cache before the
// next is requested. While the second page is held back, an object of the
// first page is deleted, another changed and a new one created, and etcd
// compacts past the list's snapshot: the apiserver answers the continue
// token with a real 410 Expired, the informer lists again from scratch and
// converges, with a synthesized delete for the object the first list showed.
TEST_F(InformerTest, PagedListRestartsAfterExpiredContinueAndConverges) {
  std::string ns = Namespace("inf-pages");
  std::vector<std::string> want;
  for (int i = 0; i < 25; ++i) {
    std::string name = std::string("cm-") + (i < 10 ? "0" : "") + std::to_string(i);
    Create(ConfigMap(ns, name));
    if (i != 0) want.push_back(ns + "/" + name);
  }
  want.push_back(ns + "/cm-new");
  std::sort(want.begin(), want.end());

  PartitionableClient pc(client_.get());
  Journal j;
  auto opts = Options(ns);
  opts.page_size = 4;
  Informer inf(&pc, opts);
  bool held_back = false;
  size_t cached_before_page_2 = 0;
  bool expired = false;
  pc.BeforeList([&](const ListOptions& o) {
    if (o.continue_token.empty() || held_back) return;
    held_back = true;
    cached_before_page_2 = inf.Size();
    Delete(ns, "cm-00");
    Patch(ns, "cm-10", {{"data", {{"k", "changed"}}}});
    Create(ConfigMap(ns, "cm-new"));
    // Wait until etcd compacted past the snapshot (--etcd-compaction-interval=2s).
    expired = Eventually([&] { return IsGone(client_->List(resources::ConfigMaps(), ns, o).status()); }, 60s);
  });
  inf.AddEventHandler(j.Handlers());
  inf.Start();
  ASSERT_TRUE(inf.WaitForSync(120s)) << inf.Stats().last_error;
  ASSERT_TRUE(expired) << "the continue token never expired";

  EXPECT_EQ(cached_before_page_2, 4u) << "the first page is cached before the second is requested";
  EXPECT_EQ(inf.Keys(), want);
  auto c10 = inf.Get(ns, "cm-10");
  ASSERT_NE(c10, nullptr);
  EXPECT_EQ((*c10)["data"]["k"], "changed");
  EXPECT_EQ(j.Count("delete? " + ns + "/cm-00"), 1) << j.Dump();
  auto st = inf.Stats();
  EXPECT_EQ(st.list_restarts, 1u) << st.last_error;
  EXPECT_EQ(st.list_errors, 0u) << st.last_error;
  EXPECT_EQ(st.lists, 1u);
  EXPECT_EQ(st.synthesized_deletes, 1u);
  // 1 page + the expired request, then 25 objects in 7 pages of 4.
  auto calls = pc.ListCalls();
  EXPECT_EQ(calls.size(), 9u);
  for (const auto& o : calls) EXPECT_EQ(o.limit, 4);

  // And the informer watches from the second list's resourceVersion.
  Delete(ns, "cm-01");
  ASSERT_TRUE(Eventually([&] { return j.Has("delete " + ns + "/cm-01"); })) << j.Dump();
}

// The informer's lists drop metadata.managedFields while parsing: only
// there, not a same-named key elsewhere, and only when asked.
TEST_F(InformerTest, ListCanDropManagedFieldsWhileParsing) {
  std::string ns = Namespace("inf-mf");
  Create(ConfigMap(ns, "a", {{"managedFields", "data, kept"}}, {{"metadata", "kept"}}));
  Create(ConfigMap(ns, "b"));
  ListOptions o;
  auto full = client_->List(resources::ConfigMaps(), ns, o);
  ASSERT_TRUE(full.ok()) << full.status();
  ASSERT_EQ(full->items.size(), 2u);
  ASSERT_TRUE(full->items[0]["metadata"].contains("managedFields")) << "the apiserver sends them";
  o.drop_managed_fields = true;
  o.limit = 1;
  auto page = client_->List(resources::ConfigMaps(), ns, o);
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_EQ(page->items.size(), 1u);
  EXPECT_FALSE(page->continue_token.empty());
  EXPECT_FALSE(page->resource_version.empty());
  auto expected = full->items[0];
  expected["metadata"].erase("managedFields");
  EXPECT_EQ(page->items[0], expected) << page->items[0].dump();
  EXPECT_EQ(page->items[0]["data"]["managedFields"], "data, kept");
  EXPECT_EQ(page->items[0]["metadata"]["labels"]["metadata"], "kept");
}

TEST_F(InformerTest, StopIsPromptAndIdempotent) {
  std::string ns = Namespace("inf-stop");
  Informer inf(client_.get(), Options(ns));
  inf.Start();
  ASSERT_TRUE(inf.WaitForSync(30s));
  auto t0 = std::chrono::steady_clock::now();
  inf.Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
  inf.Stop();
  EXPECT_TRUE(inf.HasSynced());
}

}  // namespace
}  // namespace flowrun::kube

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);
  // Read by KubeCluster when it starts the cluster (cluster.sh).
  setenv("FLOWRUN_ETCD_COMPACTION_INTERVAL", "2s", 1);
  setenv("FLOWRUN_APISERVER_ARGS", "--watch-cache=false", 1);
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::AddGlobalTestEnvironment(new flowrun::testing::KubeClusterEnvironment);
  return RUN_ALL_TESTS();
}
