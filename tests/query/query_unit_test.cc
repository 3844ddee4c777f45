// The read API's core without a database or a network: routing, the
// 401/403/400/404/405/406/413 answers as Kubernetes Status bodies, keyset
// pagination and its bounds, money as decimal text, discovery and content
// negotiation, requestheader authentication, and the SubjectAccessReview
// cache. The store is an in-memory QueryStore (the PostgreSQL one is tested
// against a real server in query_db_test).
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "flowrun/query/authentication.h"
#include "flowrun/query/authorizer.h"
#include "flowrun/query/continue_token.h"
#include "flowrun/query/discovery.h"
#include "flowrun/query/money.h"
#include "flowrun/query/query_api.h"
#include "support/expect_contains.h"
#include "support/fake_clock.h"

namespace flowrun::query {
namespace {

using nlohmann::json;

// The store's contract implemented over vectors (orders and keysets as the
// header states them).
class MemoryStore final : public QueryStore {
 public:
  std::vector<RunRow> runs;
  std::map<std::string, std::vector<CallRow>> calls;
  std::map<std::string, std::vector<CheckpointRow>> checkpoints;
  std::map<std::string, std::vector<ArtifactData>> artifacts;
  std::map<std::string, std::string> outputs;  // "uid/name/occ" -> JSON text
  std::map<std::string, ReplayRow> replays;    // replay uid -> its row
  std::optional<std::vector<DiffCheckpointRow>> diff_rows;  // nullopt: the fixed four below
  bool down = false;

  StatusOr<std::optional<RunRow>> FindRun(const std::string& ns, const std::string& name) override {
    if (down) return Unavailable("database down");
    for (const auto& r : runs)
      if (r.ns == ns && r.name == name) return std::optional<RunRow>(r);
    return std::optional<RunRow>();
  }
  StatusOr<AttemptPage> LastAttempts(const std::string&, int) override { return AttemptPage{}; }
  StatusOr<Totals> RunTotals(const std::string& uid) override {
    Totals t;
    for (const auto& c : calls[uid]) {
      t.llm_calls++;
      if (c.usd) t.spent_usd += *c.usd;
      else t.unpriced_calls++;
    }
    for (const auto& c : checkpoints[uid])
      if (c.copied) {
        t.copied_checkpoints++;
        t.inherited_usd += c.usd;
      }
    return t;
  }
  StatusOr<std::optional<OpenWait>> FindOpenWait(const std::string&) override { return std::optional<OpenWait>(); }
  StatusOr<std::vector<CallRow>> Calls(const std::string& uid, CallOrder order, const std::optional<CallKey>& after,
                                       int limit) override {
    std::vector<CallRow> all = calls[uid];
    auto cost = [](const CallRow& c) { return c.usd ? *c.usd : -1.0; };
    if (order == CallOrder::kCost)
      std::stable_sort(all.begin(), all.end(), [&](const CallRow& a, const CallRow& b) {
        if (cost(a) != cost(b)) return cost(a) > cost(b);
        return std::make_pair(a.epoch, a.seq) < std::make_pair(b.epoch, b.seq);
      });
    std::vector<CallRow> out;
    for (const auto& c : all) {
      if (after) {
        if (order == CallOrder::kTime && std::make_pair(c.epoch, c.seq) <= std::make_pair(after->epoch, after->seq))
          continue;
        if (order == CallOrder::kCost &&
            !(cost(c) < after->cost_key ||
              (cost(c) == after->cost_key && std::make_pair(c.epoch, c.seq) > std::make_pair(after->epoch, after->seq))))
          continue;
      }
      if (static_cast<int>(out.size()) == limit) break;
      out.push_back(c);
    }
    return out;
  }
  StatusOr<std::vector<CheckpointRow>> Checkpoints(const std::string& uid, const std::optional<CheckpointKey>& after,
                                                   int limit) override {
    std::vector<CheckpointRow> out;
    for (const auto& c : checkpoints[uid]) {
      if (after && std::make_tuple(c.start_key, c.name, c.occurrence) <=
                       std::make_tuple(after->start_key, after->name, after->occurrence))
        continue;
      if (static_cast<int>(out.size()) == limit) break;
      out.push_back(c);
    }
    return out;
  }
  StatusOr<std::vector<UsageGroup>> UsageByModel(const std::string&, int) override { return std::vector<UsageGroup>{}; }
  StatusOr<std::vector<UsageGroup>> UsageByCheckpoint(const std::string&, int limit) override {
    std::vector<UsageGroup> out;
    for (int i = 0; i < std::min(limit, 3); ++i) out.push_back(UsageGroup{"cp" + std::to_string(i), 1, 1, 0, 0, 0, 0, 0.5});
    return out;
  }
  StatusOr<std::vector<ArtifactMeta>> Artifacts(const std::string& uid, const std::optional<ArtifactKey>&, int limit) override {
    std::vector<ArtifactMeta> out;
    for (const auto& a : artifacts[uid])
      if (static_cast<int>(out.size()) < limit) out.push_back(a.meta);
    return out;
  }
  StatusOr<std::optional<ArtifactData>> Artifact(const std::string& uid, const std::string& name, std::optional<int> version,
                                                 int64_t max_bytes) override {
    std::optional<ArtifactData> best;
    for (const auto& a : artifacts[uid])
      if (a.meta.name == name && (!version || a.meta.version == *version) && (!best || a.meta.version > best->meta.version))
        best = a;
    if (best && best->meta.size_bytes > max_bytes) best->bytes.clear();
    return best;
  }
  StatusOr<std::optional<OutputRow>> Output(const std::string& uid, const std::string& name, int occurrence,
                                            int64_t max_bytes) override {
    auto it = outputs.find(uid + "/" + name + "/" + std::to_string(occurrence));
    if (it == outputs.end()) return std::optional<OutputRow>();
    OutputRow o{"step", "completed", 1, std::nullopt, static_cast<int64_t>(it->second.size())};
    if (o.size_bytes <= max_bytes) o.output_json = it->second;
    return std::optional<OutputRow>(o);
  }
  StatusOr<std::vector<DiffCheckpointRow>> DiffCheckpoints(const std::string&, const std::string&, int) override {
    if (diff_rows) return *diff_rows;
    return std::vector<DiffCheckpointRow>{
        {"a", 1, DiffSide{"completed", 0.5}, DiffSide{"completed", 0.25}, true},
        {"b", 1, DiffSide{"completed", 0.1}, DiffSide{"completed", 0.1}, false},
        {"c", 1, DiffSide{"completed", 0.1}, std::nullopt, false},
        {"d", 1, std::nullopt, DiffSide{"failed", 0.0}, false}};
  }
  StatusOr<std::vector<DiffArtifactRow>> DiffArtifacts(const std::string&, const std::string&, int) override {
    return std::vector<DiffArtifactRow>{{"r", 2, 1, "x", "x"}, {"s", 1, std::nullopt, "y", std::nullopt}};
  }
  StatusOr<std::optional<ReplayRow>> FindReplay(const std::string& uid) override {
    auto it = replays.find(uid);
    if (it == replays.end()) return std::optional<ReplayRow>();
    return std::optional<ReplayRow>(it->second);
  }
  StatusOr<RecomputedCost> Recomputed(const std::string& replay_uid, const std::string& source_uid) override {
    RecomputedCost rc;
    for (const auto& r : checkpoints[replay_uid])
      for (const auto& s : checkpoints[source_uid])
        if (!r.copied && r.name == s.name && r.occurrence == s.occurrence) {
          rc.checkpoints++;
          rc.replay_usd += r.usd;
          rc.source_usd += s.usd;
        }
    return rc;
  }
  Status Ping() override { return down ? Unavailable("down") : Status(); }
};

// Allows what `allowed` lists as "user|ns|name|subresource"; records every question.
class ListAuthorizer final : public Authorizer {
 public:
  std::set<std::string> allowed;
  std::vector<std::string> asked;
  bool fail = false;
  StatusOr<Decision> Authorize(const Identity& who, const ResourceAttributes& what) override {
    const std::string key = who.user + "|" + what.ns + "|" + what.name + "|" + what.subresource;
    asked.push_back(key);
    if (fail) return Unavailable("apiserver unreachable");
    return Decision{allowed.count(key) > 0, allowed.count(key) ? "" : "no RBAC policy matched"};
  }
};

HttpRequest Get(const std::string& path, std::map<std::string, std::string> query = {}) {
  HttpRequest r;
  r.method = "GET";
  r.path = path;
  r.query = std::move(query);
  return r;
}

const std::string kBase = "/apis/query.flowrun.dev/v1alpha1/namespaces/team-a/flowruns/";

class QueryApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RunRow r;
    r.uid = "uid-1";
    r.ns = "team-a";
    r.name = "run-1";
    r.flow = "research";
    r.status = "succeeded";
    r.attempt = 2;
    r.budget_usd = 1.0;
    store.runs.push_back(r);
    RunRow o = r;
    o.uid = "uid-2";
    o.name = "run-2";
    store.runs.push_back(o);
    // 1200 calls; call i costs (i % 97) * 1e-6 USD (many ties), every 100th is unpriced.
    for (int i = 0; i < 1200; ++i) {
      CallRow c;
      c.epoch = 1 + i / 600;
      c.seq = i % 600;
      c.model = i % 2 ? "gpt-4o" : "gpt-4o-mini";
      if (i % 100 != 0) c.usd = (i % 97) * 1e-6;
      store.calls["uid-1"].push_back(c);
    }
    for (int i = 0; i < 30; ++i) {
      CheckpointRow c;
      c.name = "step" + std::to_string(i % 3);
      c.occurrence = i / 3 + 1;
      c.status = "completed";
      c.kind = "step";
      c.attempt = i < 20 ? 1 : 2;
      c.start_key = 1000 + i;
      store.checkpoints["uid-1"].push_back(c);
    }
    store.outputs["uid-1/step0/1"] = R"({"answer":42})";
    store.outputs["uid-1/big/1"] = std::string(2000, ' ') + "1";
    ArtifactData a;
    a.meta = {"report.md", "text/markdown", "abc", "write", "", 2, 5, 1};
    a.bytes = "hello";
    store.artifacts["uid-1"].push_back(a);
    for (const char* sub : {"summary", "checkpoints", "calls", "costs", "diff"}) {
      authz.allowed.insert(std::string("viewer|team-a|run-1|") + sub);
      authz.allowed.insert(std::string("viewer|team-a|run-2|") + sub);
    }
    authz.allowed.insert("reader|team-a|run-1|outputs");
    authz.allowed.insert("reader|team-a|run-1|artifacts");
  }

  HttpResponse As(const std::string& user, const HttpRequest& r) { return api.Handle(r, Identity{user, {}, {}}); }
  static json Body(const HttpResponse& r) { return json::parse(r.body); }

  MemoryStore store;
  ListAuthorizer authz;
  QueryApiOptions opts = [] {
    QueryApiOptions o;
    o.max_output_bytes = 1000;
    o.max_artifact_bytes = 4;
    return o;
  }();
  QueryApi api{&store, &authz, opts};
};

TEST(Money, DecimalTextNeverFloatNoise) {
  EXPECT_EQ(FormatUsd(1.9050000000000002e-05), "0.00001905");
  EXPECT_EQ(FormatUsd(1.5), "1.50");
  EXPECT_EQ(FormatUsd(0), "0.00");
  EXPECT_EQ(FormatUsd(-0.0077), "-0.0077");
  EXPECT_EQ(FormatUsd(0.1 + 0.2), "0.30");
  EXPECT_EQ(FormatUsd(4e-10), "0.00");
  EXPECT_EQ(FormatUsd(5e-10), "0.000000001");
  EXPECT_EQ(FormatUsd(-4e-10), "0.00");
  EXPECT_EQ(FormatUsd(12345.678901234), "12345.678901234");
}

TEST_F(QueryApiTest, HealthAndDiscoveryNeedNoIdentity) {
  const StatusOr<Identity> nobody = Status(StatusCode::kUnauthenticated, "no cert");
  EXPECT_EQ(api.Handle(Get("/healthz"), nobody).code, 200);
  EXPECT_EQ(api.Handle(Get("/livez"), nobody).code, 200);
  EXPECT_EQ(api.Handle(Get("/readyz"), nobody).code, 200);
  store.down = true;
  EXPECT_EQ(api.Handle(Get("/readyz"), nobody).code, 503);
  store.down = false;

  HttpResponse apis = api.Handle(Get("/apis"), nobody);
  ASSERT_EQ(apis.code, 200);
  EXPECT_EQ(apis.content_type, "application/json");
  EXPECT_EQ(Body(apis)["groups"][0]["name"], "query.flowrun.dev");
  json group = Body(api.Handle(Get("/apis/query.flowrun.dev"), nobody));
  EXPECT_EQ(group["preferredVersion"]["groupVersion"], "query.flowrun.dev/v1alpha1");
  json list = Body(api.Handle(Get("/apis/query.flowrun.dev/v1alpha1"), nobody));
  EXPECT_EQ(list["kind"], "APIResourceList");
  std::set<std::string> names;
  for (const auto& r : list["resources"]) {
    names.insert(r["name"].get<std::string>());
    if (r["name"] == "flowruns") EXPECT_TRUE(r["verbs"].empty()) << "nothing to list or delete here";
    else EXPECT_EQ(r["verbs"], json({"get"}));
    EXPECT_TRUE(r["namespaced"].get<bool>());
  }
  EXPECT_EQ(names, (std::set<std::string>{"flowruns", "flowruns/summary", "flowruns/checkpoints", "flowruns/calls",
                                          "flowruns/costs", "flowruns/diff", "flowruns/artifacts", "flowruns/outputs"}));
  EXPECT_EQ(Body(api.Handle(Get("/openapi/v2"), nobody))["swagger"], "2.0");
  json v3 = Body(api.Handle(Get("/openapi/v3"), nobody));
  const std::string rel = v3["paths"]["apis/query.flowrun.dev/v1alpha1"]["serverRelativeURL"];
  EXPECT_EQ(Body(api.Handle(Get(rel), nobody))["openapi"], "3.0.0");
}

TEST_F(QueryApiTest, AggregatedDiscoveryAndProtobufAcceptHeaders) {
  auto with_accept = [&](const std::string& path, const std::string& accept) {
    HttpRequest r = Get(path);
    r.headers.emplace("accept", accept);
    return api.Handle(r, Status(StatusCode::kUnauthenticated, "x"));
  };
  const std::string aggregated = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";
  HttpResponse only = with_accept("/apis", aggregated);
  EXPECT_EQ(only.code, 406);
  EXPECT_EQ(Body(only)["kind"], "Status");
  EXPECT_EQ(Body(only)["reason"], "NotAcceptable");
  HttpResponse fallback = with_accept("/apis", aggregated + ",application/json");
  EXPECT_EQ(fallback.code, 200);
  EXPECT_EQ(fallback.content_type, "application/json");
  EXPECT_EQ(Body(fallback)["kind"], "APIGroupList");
  EXPECT_EQ(with_accept("/apis", "application/vnd.kubernetes.protobuf, application/json").code, 200);
  EXPECT_EQ(with_accept("/apis/query.flowrun.dev/v1alpha1", "application/vnd.kubernetes.protobuf").code, 406);
  EXPECT_EQ(with_accept("/apis", "*/*").code, 200);
  EXPECT_EQ(with_accept("/openapi/v2", "application/com.github.proto-openapi.spec.v2@v1.0+protobuf").code, 406);
  EXPECT_EQ(with_accept("/openapi/v2", "application/com.github.proto-openapi.spec.v2@v1.0+protobuf, application/json").code,
            200);
  EXPECT_FALSE(AcceptsPlainJson("application/json;q=0"));
  EXPECT_TRUE(AcceptsPlainJson("application/json;charset=utf-8"));
}

TEST_F(QueryApiTest, DataNeedsAnIdentityFirst) {
  HttpResponse r = api.Handle(Get(kBase + "run-1/summary"),
                              Status(StatusCode::kUnauthenticated, "no client certificate verified"));
  EXPECT_EQ(r.code, 401);
  json b = Body(r);
  EXPECT_EQ(b["kind"], "Status");
  EXPECT_EQ(b["reason"], "Unauthorized");
  EXPECT_TRUE(authz.asked.empty()) << "nobody was asked about an unauthenticated request";
}

TEST_F(QueryApiTest, EverySubresourceIsAuthorizedSeparately) {
  EXPECT_EQ(As("viewer", Get(kBase + "run-1/summary")).code, 200);
  EXPECT_EQ(authz.asked.back(), "viewer|team-a|run-1|summary");
  EXPECT_EQ(As("viewer", Get(kBase + "run-1/checkpoints")).code, 200);
  EXPECT_EQ(As("viewer", Get(kBase + "run-1/calls")).code, 200);
  EXPECT_EQ(As("viewer", Get(kBase + "run-1/costs")).code, 200);
  HttpResponse out = As("viewer", Get(kBase + "run-1/outputs/step0"));
  EXPECT_EQ(out.code, 403);
  EXPECT_EQ(authz.asked.back(), "viewer|team-a|run-1|outputs");
  json b = Body(out);
  EXPECT_EQ(b["reason"], "Forbidden");
  EXPECT_CONTAINS(b["message"].get<std::string>(), "User \"viewer\" cannot get resource \"flowruns/outputs\"");
  EXPECT_EQ(As("viewer", Get(kBase + "run-1/artifacts")).code, 403);
  EXPECT_EQ(As("viewer", Get(kBase + "run-1/artifacts/report.md")).code, 403);
  EXPECT_EQ(As("reader", Get(kBase + "run-1/summary")).code, 403);
  EXPECT_EQ(As("reader", Get(kBase + "run-1/outputs/step0")).code, 200);
  // Another namespace: the namespace is part of the question.
  EXPECT_EQ(As("viewer", Get("/apis/query.flowrun.dev/v1alpha1/namespaces/team-b/flowruns/run-1/summary")).code, 403);
  EXPECT_EQ(authz.asked.back(), "viewer|team-b|run-1|summary");
  authz.fail = true;
  HttpResponse down = As("viewer", Get(kBase + "run-1/summary"));
  EXPECT_EQ(down.code, 503);
  EXPECT_EQ(Body(down)["reason"], "ServiceUnavailable");
}

TEST_F(QueryApiTest, ErrorsAreKubernetesStatusBodies) {
  HttpResponse missing = As("viewer", Get(kBase + "nope/summary"));
  authz.allowed.insert("viewer|team-a|nope|summary");
  missing = As("viewer", Get(kBase + "nope/summary"));
  EXPECT_EQ(missing.code, 404);
  json b = Body(missing);
  EXPECT_EQ(b["apiVersion"], "v1");
  EXPECT_EQ(b["status"], "Failure");
  EXPECT_EQ(b["reason"], "NotFound");
  EXPECT_EQ(b["code"], 404);
  EXPECT_EQ(b["details"]["name"], "nope");
  EXPECT_EQ(b["details"]["group"], "query.flowrun.dev");
  EXPECT_EQ(As("viewer", Get(kBase + "run-1/bogus")).code, 404);
  EXPECT_EQ(As("viewer", Get(kBase + "run-1/summary/extra")).code, 404);
  EXPECT_EQ(As("viewer", Get("/apis/other.group/v1/namespaces/a/flowruns/x/summary")).code, 404);
  HttpRequest post = Get(kBase + "run-1/summary");
  post.method = "POST";
  EXPECT_EQ(As("viewer", post).code, 405);
  for (const char* bad : {"0", "-1", "abc", "501", "1e3"})
    EXPECT_EQ(As("viewer", Get(kBase + "run-1/calls", {{"limit", bad}})).code, 400) << bad;
  EXPECT_EQ(As("viewer", Get(kBase + "run-1/calls", {{"sort", "price"}})).code, 400);
  EXPECT_EQ(As("viewer", Get(kBase + "run-1/calls", {{"continue", "zz"}})).code, 400);
  EXPECT_EQ(As("viewer", Get(kBase + "run-1/diff")).code, 400);
  store.down = true;
  HttpResponse down = As("viewer", Get(kBase + "run-1/summary"));
  EXPECT_EQ(down.code, 503);
  bool retry_after = false;
  for (const auto& [k, v] : down.headers) retry_after |= k == "Retry-After";
  EXPECT_TRUE(retry_after);
}

TEST_F(QueryApiTest, CallsPageByCostWithoutSkippingOrRepeating) {
  std::vector<json> seen;
  std::string token;
  int pages = 0;
  do {
    std::map<std::string, std::string> q{{"sort", "cost"}, {"limit", "500"}};
    if (!token.empty()) q["continue"] = token;
    HttpResponse r = As("viewer", Get(kBase + "run-1/calls", q));
    ASSERT_EQ(r.code, 200) << r.body;
    EXPECT_LT(r.body.size(), 500u * 400) << "a page is bounded";
    json b = Body(r);
    for (const auto& c : b["items"]) seen.push_back(c);
    token = b["metadata"].value("continue", "");
    ++pages;
  } while (!token.empty() && pages < 10);
  EXPECT_EQ(pages, 3);
  ASSERT_EQ(seen.size(), 1200u);
  std::set<std::pair<int64_t, int64_t>> ids;
  for (const auto& c : seen) ids.insert({c["epoch"].get<int64_t>(), c["seq"].get<int64_t>()});
  EXPECT_EQ(ids.size(), 1200u) << "no call twice";
  EXPECT_EQ(seen.front()["usd"], FormatUsd(96e-6)) << "the most expensive call comes first";
  EXPECT_TRUE(seen.back()["usd"].is_null()) << "unpriced calls last";
  // The token belongs to its sort and list.
  HttpResponse first = As("viewer", Get(kBase + "run-1/calls", {{"sort", "cost"}, {"limit", "10"}}));
  const std::string t = Body(first)["metadata"]["continue"];
  EXPECT_EQ(As("viewer", Get(kBase + "run-1/calls", {{"sort", "time"}, {"continue", t}})).code, 400);
  EXPECT_EQ(As("viewer", Get(kBase + "run-1/checkpoints", {{"continue", t}})).code, 400);
  EXPECT_EQ(As("viewer", Get(kBase + "run-2/calls", {{"sort", "cost"}, {"continue", t}})).code, 400);
  // Default page size.
  EXPECT_EQ(Body(As("viewer", Get(kBase + "run-1/calls")))["items"].size(), 100u);
}

TEST_F(QueryApiTest, CheckpointsTimelineMarksCachedWork) {
  HttpResponse r = As("viewer", Get(kBase + "run-1/checkpoints", {{"limit", "25"}}));
  ASSERT_EQ(r.code, 200);
  json b = Body(r);
  EXPECT_EQ(b["kind"], "FlowRunCheckpointList");
  EXPECT_EQ(b["metadata"]["uid"], "uid-1");
  ASSERT_EQ(b["items"].size(), 25u);
  EXPECT_EQ(b["items"][0]["origin"], "cached");  // attempt 1 of a run now at attempt 2
  json rest = Body(As("viewer", Get(kBase + "run-1/checkpoints", {{"continue", b["metadata"]["continue"]}})));
  ASSERT_EQ(rest["items"].size(), 5u);
  EXPECT_EQ(rest["items"][4]["origin"], "live");
  EXPECT_FALSE(rest["metadata"].contains("continue"));
}

TEST_F(QueryApiTest, SummaryCostsDiffShapes) {
  json s = Body(As("viewer", Get(kBase + "run-1/summary")));
  EXPECT_EQ(s["kind"], "FlowRunSummary");
  EXPECT_EQ(s["totals"]["budgetUSD"], "1.00");
  EXPECT_EQ(s["totals"]["llmCalls"], 1200);
  EXPECT_EQ(s["totals"]["unpricedCalls"], 12);
  EXPECT_TRUE(s["openWait"].is_null());
  EXPECT_EQ(s["mostExpensiveCall"]["usd"], FormatUsd(96e-6));
  json c = Body(As("viewer", Get(kBase + "run-1/costs", {{"limit", "2"}})));
  EXPECT_EQ(c["byCheckpoint"].size(), 2u);
  EXPECT_TRUE(c["byCheckpointTruncated"].get<bool>());
  EXPECT_EQ(c["byCheckpoint"][0]["usd"], "0.50");
  json d = Body(As("viewer", Get(kBase + "run-1/diff", {{"other", "run-2"}})));
  EXPECT_EQ(authz.asked.back(), "viewer|team-a|run-2|diff");
  ASSERT_EQ(d["checkpoints"].size(), 4u);
  EXPECT_EQ(d["checkpoints"][0]["state"], "same");
  EXPECT_EQ(d["checkpoints"][0]["usdDelta"], "0.25");
  EXPECT_EQ(d["checkpoints"][1]["state"], "changed");
  EXPECT_EQ(d["checkpoints"][2]["state"], "onlyInThis");
  EXPECT_TRUE(d["checkpoints"][2]["other"].is_null());
  EXPECT_EQ(d["checkpoints"][3]["state"], "onlyInOther");
  EXPECT_EQ(d["artifacts"][0]["state"], "same");
  EXPECT_EQ(d["artifacts"][1]["state"], "onlyInThis");
  authz.allowed.erase("viewer|team-a|run-2|diff");
  EXPECT_EQ(As("viewer", Get(kBase + "run-1/diff", {{"other", "run-2"}})).code, 403) << "diff needs both runs";
}

// A replay (run-2 of run-1): copied checkpoints say so, the summary carries
// the lineage and inherited beside spent, and the diff marks each checkpoint
// reused or recomputed with the recomputed part's cost delta, in either order.
TEST_F(QueryApiTest, ReplayLineageCopiedAndTheDiff) {
  store.replays["uid-2"] = ReplayRow{"uid-1", "run-1", "step2", "2026-12-03T12:00:00.000000Z", 1, 30, true};
  auto cp = [](const std::string& name, double usd, bool copied) {
    CheckpointRow c;
    c.name = name;
    c.occurrence = 1;
    c.status = "completed";
    c.kind = "step";
    c.attempt = 2;  // the runs' current attempt: live, not cached
    c.usd = usd;
    c.copied = copied;
    return c;
  };
  store.checkpoints["uid-2"] = {cp("step0", 0.25, true), cp("step1", 0.5, true), cp("step2", 0.125, false)};
  store.checkpoints["src"] = {cp("step2", 0.375, false)};
  store.runs[0].uid = "src";  // run-1's rows for Recomputed
  store.replays["uid-2"].source_uid = "src";
  CallRow call;
  call.usd = 0.125;
  store.calls["uid-2"] = {call};

  json l = Body(As("viewer", Get(kBase + "run-2/checkpoints")));
  ASSERT_EQ(l["items"].size(), 3u);
  EXPECT_EQ(l["items"][0]["copied"], true);
  EXPECT_EQ(l["items"][0]["origin"], "copied");
  EXPECT_EQ(l["items"][2]["copied"], false);
  EXPECT_EQ(l["items"][2]["origin"], "live");
  json s = Body(As("viewer", Get(kBase + "run-2/summary")));
  EXPECT_EQ(s["totals"]["spentUSD"], "0.125");
  EXPECT_EQ(s["totals"]["inheritedUSD"], "0.75");
  EXPECT_EQ(s["totals"]["copiedCheckpoints"], 2);
  EXPECT_EQ(s["replay"], json::parse(R"({"sourceName": "run-1", "sourceUid": "src",
      "cut": {"checkpoint": "step2", "occurrence": 1}, "preparedAt": "2026-12-03T12:00:00.000000Z",
      "snapshotCheckpoints": 30, "copiedCheckpoints": 2, "inheritedUSD": "0.75", "cutReached": true})"));
  EXPECT_TRUE(Body(As("viewer", Get(kBase + "run-1/summary")))["replay"].is_null());
  EXPECT_EQ(Body(As("viewer", Get(kBase + "run-2/costs")))["inheritedUSD"], "0.75");

  store.diff_rows = std::vector<DiffCheckpointRow>{
      {"step0", 1, DiffSide{"completed", 0.25, false}, DiffSide{"completed", 0.25, true}, true},
      {"step2", 1, DiffSide{"completed", 0.375, false}, DiffSide{"completed", 0.125, false}, false},
      {"step9", 1, std::nullopt, DiffSide{"completed", 0.0, false}, false}};
  json d = Body(As("viewer", Get(kBase + "run-1/diff", {{"other", "run-2"}})));
  EXPECT_EQ(d["checkpoints"][0]["reuse"], "reused");
  EXPECT_EQ(d["checkpoints"][0]["other"]["copied"], true);
  EXPECT_EQ(d["checkpoints"][1]["reuse"], "recomputed");
  EXPECT_EQ(d["checkpoints"][2]["reuse"], "new");
  EXPECT_EQ(d["inheritedUSD"]["other"], "0.75");
  EXPECT_EQ(d["lineage"]["replay"], "other");
  EXPECT_EQ(d["lineage"]["sourceName"], "run-1");
  EXPECT_EQ(d["lineage"]["reusedCheckpoints"], 2);
  EXPECT_EQ(d["lineage"]["recomputedCheckpoints"], 1);
  EXPECT_EQ(d["lineage"]["recomputedUSD"], json({{"replay", "0.125"}, {"source", "0.375"}, {"delta", "-0.25"}}));
  // The other order: this is the replay.
  store.diff_rows = std::vector<DiffCheckpointRow>{
      {"step0", 1, DiffSide{"completed", 0.25, true}, DiffSide{"completed", 0.25, false}, true}};
  json r = Body(As("viewer", Get(kBase + "run-2/diff", {{"other", "run-1"}})));
  EXPECT_EQ(r["lineage"]["replay"], "this");
  EXPECT_EQ(r["checkpoints"][0]["reuse"], "reused");
  // No lineage: no reuse marks.
  store.replays.clear();
  json n = Body(As("viewer", Get(kBase + "run-2/diff", {{"other", "run-1"}})));
  EXPECT_TRUE(n["lineage"].is_null());
  EXPECT_TRUE(n["checkpoints"][0]["reuse"].is_null());
}

TEST_F(QueryApiTest, PayloadsAreBounded) {
  json o = Body(As("reader", Get(kBase + "run-1/outputs/step0")));
  EXPECT_EQ(o["kind"], "FlowRunOutput");
  EXPECT_EQ(o["output"]["answer"], 42);
  EXPECT_EQ(o["occurrence"], 1);
  EXPECT_EQ(As("reader", Get(kBase + "run-1/outputs/step0", {{"occurrence", "2"}})).code, 404);
  EXPECT_EQ(As("reader", Get(kBase + "run-1/outputs/step0", {{"occurrence", "x"}})).code, 400);
  authz.allowed.insert("reader|team-a|run-1|outputs");
  HttpResponse big = As("reader", Get(kBase + "run-1/outputs/big"));
  EXPECT_EQ(big.code, 413);
  EXPECT_EQ(Body(big)["reason"], "RequestEntityTooLarge");
  HttpResponse art = As("reader", Get(kBase + "run-1/artifacts/report.md"));
  EXPECT_EQ(art.code, 413) << "5 bytes above a 4-byte limit";
  QueryApiOptions roomy;
  QueryApi api2(&store, &authz, roomy);
  HttpResponse ok = api2.Handle(Get(kBase + "run-1/artifacts/report.md"), Identity{"reader", {}, {}});
  EXPECT_EQ(ok.code, 200);
  EXPECT_EQ(ok.body, "hello");
  EXPECT_EQ(ok.content_type, "text/markdown");
  EXPECT_EQ(api2.Handle(Get(kBase + "run-1/artifacts/report.md", {{"version", "7"}}), Identity{"reader", {}, {}}).code, 404);
  json list = Body(api2.Handle(Get(kBase + "run-1/artifacts"), Identity{"reader", {}, {}}));
  EXPECT_EQ(list["items"][0]["sha256"], "abc");
}

TEST(Authentication, HeadersCountOnlyBehindAVerifiedAllowedProxyCertificate) {
  RequestHeaderConfig cfg;
  cfg.allowed_names = {"front-proxy-client"};
  HttpRequest r;
  r.headers.emplace("x-remote-user", "alice");
  r.headers.emplace("x-remote-group", "team-a");
  r.headers.emplace("x-remote-group", "system:authenticated");
  r.headers.emplace("x-remote-extra-scopes", "read");
  r.headers.emplace("x-remote-extra-acme.com%2fproject", "p1");
  auto forged = Authenticate(cfg, std::nullopt, r);
  EXPECT_EQ(forged.status().code(), StatusCode::kUnauthenticated);
  auto other = Authenticate(cfg, std::string("alice"), r);
  EXPECT_EQ(other.status().code(), StatusCode::kUnauthenticated);
  EXPECT_CONTAINS(other.status().message(), "not a requestheader allowed name");
  auto ok = Authenticate(cfg, std::string("front-proxy-client"), r);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->user, "alice");
  EXPECT_EQ(ok->groups, (std::vector<std::string>{"team-a", "system:authenticated"}));
  EXPECT_EQ(ok->extra.at("scopes"), std::vector<std::string>{"read"});
  EXPECT_EQ(ok->extra.at("acme.com/project"), std::vector<std::string>{"p1"});
  HttpRequest nouser;
  EXPECT_FALSE(Authenticate(cfg, std::string("front-proxy-client"), nouser).ok());
  cfg.allowed_names.clear();
  EXPECT_TRUE(Authenticate(cfg, std::string("anything-the-ca-signed"), r).ok());
}

TEST(Authentication, ConfigMapAsKubeApiserverWritesIt) {
  std::map<std::string, std::string> data{
      {"requestheader-client-ca-file", "-----BEGIN CERTIFICATE-----\n..."},
      {"requestheader-allowed-names", R"(["front-proxy-client"])"},
      {"requestheader-username-headers", R"(["X-Remote-User"])"},
      {"requestheader-group-headers", R"(["X-Remote-Group"])"},
      {"requestheader-extra-headers-prefix", R"(["X-Remote-Extra-"])"},
      {"client-ca-file", "ignored"}};
  auto c = RequestHeaderConfigFromConfigMap(data);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->allowed_names, std::vector<std::string>{"front-proxy-client"});
  data["requestheader-allowed-names"] = "not json";
  EXPECT_EQ(RequestHeaderConfigFromConfigMap(data).status().code(), StatusCode::kInvalidArgument);
  data.erase("requestheader-client-ca-file");
  EXPECT_CONTAINS(RequestHeaderConfigFromConfigMap(data).status().message(), "aggregation is not configured");
}

TEST(CachingAuthorizer, ReusesAnswersForTheTtlAndNeverCachesErrors) {
  ListAuthorizer inner;
  inner.allowed.insert("bob|a|r|summary");
  testing::FakeClock clock;
  CachingAuthorizer cache(&inner, std::chrono::seconds(10), &clock, 2);
  Identity bob{"bob", {"g"}, {}};
  EXPECT_TRUE(cache.Authorize(bob, {"a", "r", "summary"})->allowed);
  EXPECT_TRUE(cache.Authorize(bob, {"a", "r", "summary"})->allowed);
  EXPECT_EQ(inner.asked.size(), 1u);
  EXPECT_FALSE(cache.Authorize(bob, {"a", "r", "outputs"})->allowed);
  EXPECT_FALSE(cache.Authorize(bob, {"a", "r", "outputs"})->allowed);
  EXPECT_EQ(inner.asked.size(), 2u) << "denials are cached too";
  Identity bob_other_groups{"bob", {"h"}, {}};
  (void)cache.Authorize(bob_other_groups, {"a", "r", "summary"});
  EXPECT_EQ(inner.asked.size(), 3u) << "groups are part of the key";
  clock.Advance(std::chrono::seconds(11));
  inner.allowed.clear();  // the binding was revoked
  EXPECT_FALSE(cache.Authorize(bob, {"a", "r", "summary"})->allowed);
  inner.fail = true;
  EXPECT_FALSE(cache.Authorize(bob, {"b", "r", "summary"}).ok());
  EXPECT_FALSE(cache.Authorize(bob, {"b", "r", "summary"}).ok());
  inner.fail = false;
  EXPECT_FALSE(cache.Authorize(bob, {"b", "r", "summary"})->allowed);
}

TEST(ContinueToken, RoundTripsExactDoubles) {
  ContinueToken t{"calls", "cost", "u", json::array({1.9050000000000002e-05, 3, 4})};
  auto back = DecodeContinue(EncodeContinue(t), "calls", "cost", "u");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->key[0].get<double>(), 1.9050000000000002e-05);
}

}  // namespace
}  // namespace flowrun::query
