// kubectl-flowrun's read-API commands end to end: the real kube-apiserver
// configured for aggregated APIs (cluster.sh FLOWRUN_AGGREGATION=1), an
// APIService + selector-less Service + EndpointSlice pointing at the real
// flowrun-controller's read API (--query-addr on this machine's non-loopback
// address: EndpointSlices refuse loopback), real agent runs priced by
// examples/prices.yaml, and the plugin's figures compared with PostgreSQL.
//
//   ctest -L plugin
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "e2e/e2e_world.h"
#include "plugin_runner.h"
#include "read_api_setup.h"

namespace flowrun::testing {
namespace {

using nlohmann::json;
using Result = PluginResult;

// The cluster must be configured for aggregation before the world starts it.
const int kAggregation = SetAggregationEnv();

std::string Env(const std::string& llm_url) {
  return "    env:\n"
         "    - name: OPENAI_BASE_URL\n      value: " + llm_url + "\n"
         "    - name: OPENAI_API_KEY\n      valueFrom:\n        secretKeyRef: {name: openai, key: api-key}\n"
         "    - name: FLOWRUN_LLM_MODEL\n      value: gpt-4o-mini\n"
         "    - name: FLOWRUN_PRICE_TABLE\n      value: " FLOWRUN_SOURCE_DIR "/examples/prices.yaml\n";
}

// One world: the aggregated read API in front of the controller, two finished
// research runs (priced) and one test-agent run with artifacts.
class ReadApi : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ASSERT_EQ(kAggregation, 0);
    E2eWorld& w = E2eWorld::Get({.start_controller = false});
    SetUpReadApi(w, host_);
    ASSERT_FALSE(::testing::Test::HasFatalFailure());
    for (const std::string name : {"rr1", "rr2"}) {
      w.ApplyYaml(name + ".yaml", "apiVersion: flowrun.dev/v1alpha1\nkind: FlowRun\nmetadata:\n  name: " + name +
                                      "\nspec:\n  template:\n    image: flowrun/research-agent:0.1.0\n" +
                                      Env(w.llm->base_url()) + "  parameters:\n    topic: " + name +
                                      "\n  flow: research\n  budgetUSD: 1.5\n");
      ASSERT_TRUE(w.WaitPhase(name, "Waiting"));
      ASSERT_EQ(Plugin(w, w.cluster->admin_kubeconfig(), {"answer", name, "true"}).exit_code, 0);
      ASSERT_TRUE(w.WaitPhase(name, "Succeeded"));
    }
    std::string yaml = w.TestAgentRunYaml("ra1", R"({"scenario": "artifacts", "score": 7})", "",
                                          "    - name: FLOWRUN_PRICE_TABLE\n      value: " FLOWRUN_SOURCE_DIR
                                          "/examples/prices.yaml\n");
    ASSERT_FALSE(yaml.empty());
    w.ApplyYaml("ra1.yaml", yaml);
    ASSERT_TRUE(w.WaitPhase("ra1", "Succeeded"));
  }

  E2eWorld& w() { return E2eWorld::Get(); }
  std::string admin() { return w().cluster->admin_kubeconfig(); }
  static inline std::string host_;
};

double Num(const std::string& s) { return std::strtod(s.c_str(), nullptr); }

// costs: the spend equals the database's sum exactly (as decimal text, to 9
// places), the most expensive call is the database's most expensive one.
TEST_F(ReadApi, CostsMatchTheDatabase) {
  std::string uid = w().Uid("rr1");
  Result r = Plugin(w(), admin(), {"costs", "rr1", "-o", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json c = json::parse(r.out);
  std::string db = w().Psql("SELECT round(sum(cost_usd)::numeric, 9) FROM flowrun.llm_calls WHERE run_uid = '" + uid + "'");
  ASSERT_GT(Num(db), 0) << "the runs must be priced";
  EXPECT_EQ(Num(c["spentUSD"].get<std::string>()), Num(db)) << c.dump();
  EXPECT_EQ(c["llmCalls"], std::stoi(w().Psql("SELECT count(*) FROM flowrun.llm_calls WHERE run_uid = '" + uid + "'")));
  ASSERT_TRUE(c["topCalls"].is_array() && !c["topCalls"].empty()) << c.dump();
  EXPECT_EQ(Num(c["topCalls"][0]["usd"].get<std::string>()),
            Num(w().Psql("SELECT round(max(cost_usd)::numeric, 9) FROM flowrun.llm_calls WHERE run_uid = '" + uid + "'")));
  Result table = Plugin(w(), admin(), {"costs", "rr1"});
  ASSERT_EQ(table.exit_code, 0);
  EXPECT_NE(table.out.find("By model:"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("gpt-4o-mini"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("Most expensive calls:"), std::string::npos) << table.out;
  Result top = Plugin(w(), admin(), {"costs", "rr1", "--by", "call", "--top", "1"});
  EXPECT_EQ(top.exit_code, 0);
  EXPECT_NE(top.out.find("Calls, most expensive first:"), std::string::npos) << top.out;
  // status now names the most expensive call from the summary.
  Result status = Plugin(w(), admin(), {"status", "rr1"});
  EXPECT_NE(status.out.find("Top call:    gpt-4o-mini in "), std::string::npos) << status.out;
}

TEST_F(ReadApi, CheckpointsMatchTheDatabase) {
  std::string uid = w().Uid("rr1");
  Result r = Plugin(w(), admin(), {"checkpoints", "rr1", "-o", "json", "--all"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json l = json::parse(r.out);
  std::string names;
  for (const auto& i : l["items"]) names += i["name"].get<std::string>() + " ";
  EXPECT_EQ(l["items"].size(), std::stoul(w().Psql("SELECT count(*) FROM flowrun.checkpoints WHERE run_uid = '" + uid + "'")))
      << names;
  EXPECT_NE(names.find("research"), std::string::npos) << names;
  EXPECT_NE(names.find("analyze"), std::string::npos) << names;
  Result table = Plugin(w(), admin(), {"checkpoints", "rr1"});
  EXPECT_NE(table.out.find("CHECKPOINT"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("cached"), std::string::npos) << table.out;  // research, served from the cache on resume
}

TEST_F(ReadApi, ArtifactsAndTheirBytes) {
  Result l = Plugin(w(), admin(), {"artifacts", "ra1", "-o", "json"});
  ASSERT_EQ(l.exit_code, 0) << l.err;
  json items = json::parse(l.out)["items"];
  ASSERT_GE(items.size(), 3u) << l.out;  // report v1, v2, blob
  std::string file = w().dir + "/blob.bin";
  Result blob = Plugin(w(), admin(), {"artifact", "ra1", "blob", "-o", file});
  ASSERT_EQ(blob.exit_code, 0) << blob.err;
  std::ifstream f(file, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  EXPECT_EQ(bytes, std::string("a\0b", 3));
  Result v1 = Plugin(w(), admin(), {"artifact", "ra1", "report", "--version", "1", "-o", "-"});
  ASSERT_EQ(v1.exit_code, 0) << v1.err;
  EXPECT_EQ(json::parse(v1.out), json({{"score", 7}, {"text", "draft"}}));
  Result latest = Plugin(w(), admin(), {"artifact", "ra1", "report", "-o", "-"});
  EXPECT_EQ(json::parse(latest.out), json({{"score", 7}, {"text", "final"}}));
  EXPECT_EQ(Plugin(w(), admin(), {"artifact", "ra1", "report", "--version", "9"}).exit_code, 3);
}

TEST_F(ReadApi, DiffOfTwoRuns) {
  Result d = Plugin(w(), admin(), {"diff", "rr1", "rr2"});
  ASSERT_EQ(d.exit_code, 0) << d.err;
  EXPECT_NE(d.out.find("rr1 vs rr2: spent"), std::string::npos) << d.out;
  Result j = Plugin(w(), admin(), {"diff", "rr1", "rr2", "-o", "json"});
  ASSERT_EQ(j.exit_code, 0);
  json doc = json::parse(j.out);
  EXPECT_EQ(doc["other"]["name"], "rr2");
  EXPECT_FALSE(doc["checkpoints"].empty());
}

// RBAC decides: a viewer (metadata only) reads costs but not artifacts; a
// user without rights reads nothing; both are told what role they miss.
TEST_F(ReadApi, PermissionsAreKubernetesRbac) {
  w().ApplyYaml("viewer.yaml",
                "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: query-viewer}\n"
                "rules:\n- apiGroups: [query.flowrun.dev]\n"
                "  resources: [flowruns/summary, flowruns/checkpoints, flowruns/calls, flowruns/costs, flowruns/diff]\n"
                "  verbs: [get]\n---\n"
                "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {name: query-viewer}\n"
                "roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: query-viewer}\n"
                "subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: vera}]\n");
  std::string vera = w().cluster->MintUser("vera");
  std::string nobody = w().cluster->MintUser("nobody");
  ASSERT_TRUE(Eventually([&] { return Plugin(w(), vera, {"costs", "rr1"}).exit_code == 0; }, std::chrono::seconds(20)));
  Result art = Plugin(w(), vera, {"artifacts", "ra1"});
  EXPECT_EQ(art.exit_code, 4) << art.err;
  EXPECT_NE(art.err.find("flowrun-payload-reader"), std::string::npos) << art.err;
  Result none = Plugin(w(), nobody, {"costs", "rr1"});
  EXPECT_EQ(none.exit_code, 4) << none.err;
  EXPECT_NE(none.err.find("flowrun-viewer"), std::string::npos) << none.err;
}

// Last: with the controller down the read API is unavailable and the user is told so.
TEST_F(ReadApi, ZZControllerDownIsAClearError) {
  w().KillController();
  ASSERT_TRUE(Eventually([&] { return Plugin(w(), admin(), {"costs", "rr1"}).exit_code == 8; }, std::chrono::seconds(60)));
  Result r = Plugin(w(), admin(), {"costs", "rr1"});
  EXPECT_NE(r.err.find("the read API is unavailable"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace flowrun::testing
