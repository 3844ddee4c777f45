// The shipped monitoring files, checked without services (ctest -L metrics):
// the Grafana dashboard's structure (valid JSON, every panel has a data
// source and a query, every variable used is defined, ids unique, layout in
// the 24-column grid), and every metric name the dashboard and the alert
// rules use is one the controller exports. (The e2e test runs each query
// against a real Prometheus.)
#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "flowrun/kube/workqueue.h"
#include "flowrun/metrics/controller_metrics.h"
#include "flowrun/metrics/db_snapshot.h"
#include "flowrun/metrics/db_totals.h"
#include "flowrun/metrics/phase_counter.h"
#include "flowrun/metrics/workqueue_collector.h"

namespace flowrun::metrics {
namespace {

using nlohmann::json;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

const std::string kFiles = std::string(FLOWRUN_SOURCE_DIR) + "/helm/flowrun/files/";

json Dashboard() { return json::parse(ReadFile(kFiles + "grafana-dashboard.json")); }

// Every query text of the dashboard: panel targets (expr / rawSql) and
// variable queries.
std::vector<std::string> Queries(const json& d) {
  std::vector<std::string> out;
  for (const auto& p : d["panels"])
    for (const auto& t : p.value("targets", json::array())) {
      if (t.contains("expr")) out.push_back(t["expr"].get<std::string>());
      if (t.contains("rawSql")) out.push_back(t["rawSql"].get<std::string>());
    }
  for (const auto& v : d["templating"]["list"])
    if (v.contains("definition")) out.push_back(v["definition"].get<std::string>());
  return out;
}

TEST(Dashboard, EveryPanelHasADataSourceAndAQuery) {
  json d = Dashboard();
  ASSERT_TRUE(d.is_object());
  EXPECT_EQ(d.value("uid", ""), "flowrun-overview");
  std::set<std::string> ds_vars;
  for (const auto& v : d["templating"]["list"])
    if (v["type"] == "datasource") ds_vars.insert("${" + v["name"].get<std::string>() + "}");
  ASSERT_EQ(ds_vars, (std::set<std::string>{"${datasource}", "${postgres}"}));
  std::set<int> ids;
  int queries = 0;
  std::set<std::string> rows;
  for (const auto& p : d["panels"]) {
    std::string title = p.value("title", "");
    EXPECT_FALSE(title.empty());
    EXPECT_TRUE(ids.insert(p["id"].get<int>()).second) << "duplicate id " << p["id"];
    const json& g = p["gridPos"];
    EXPECT_GE(g["x"].get<int>(), 0) << title;
    EXPECT_LE(g["x"].get<int>() + g["w"].get<int>(), 24) << title;
    if (p["type"] == "row") {
      rows.insert(title);
      continue;
    }
    ASSERT_TRUE(p.contains("datasource")) << title;
    EXPECT_TRUE(ds_vars.count(p["datasource"]["uid"].get<std::string>())) << title;
    ASSERT_TRUE(p.contains("targets") && !p["targets"].empty()) << title;
    for (const auto& t : p["targets"]) {
      EXPECT_EQ(t["datasource"], p["datasource"]) << title;
      std::string q = t.value("expr", t.value("rawSql", ""));
      EXPECT_FALSE(q.empty()) << title;
      ++queries;
    }
  }
  EXPECT_GE(queries, 40);
  for (const char* r : {"Spend", "Tokens", "Savings from the cache", "Runs", "Waiting runs and human response time",
                        "Failures and retries", "Budget events", "Controller health"})
    EXPECT_TRUE(rows.count(r)) << "missing row " << r;
}

TEST(Dashboard, EveryVariableUsedIsDefinedBeforeItsUsers) {
  json d = Dashboard();
  std::vector<std::string> order;
  for (const auto& v : d["templating"]["list"]) order.push_back(v["name"]);
  for (const char* want : {"namespace", "flow", "model"})
    EXPECT_NE(std::find(order.begin(), order.end(), want), order.end()) << want;
  const std::set<std::string> builtins = {"__rate_interval", "__range", "__interval", "__timeFilter", "__all"};
  std::regex var(R"(\$\{?([A-Za-z_][A-Za-z0-9_]*))");
  for (const auto& q : Queries(d))
    for (auto it = std::sregex_iterator(q.begin(), q.end(), var); it != std::sregex_iterator(); ++it) {
      std::string name = (*it)[1];
      bool ok = builtins.count(name) || std::find(order.begin(), order.end(), name) != order.end();
      EXPECT_TRUE(ok) << "undefined variable $" << name << " in: " << q;
    }
  // A variable's own query may only use variables defined before it.
  for (size_t i = 0; i < order.size(); ++i) {
    const json& v = d["templating"]["list"][i];
    std::string q = v.value("definition", "");
    for (auto it = std::sregex_iterator(q.begin(), q.end(), var); it != std::sregex_iterator(); ++it) {
      std::string name = (*it)[1];
      auto pos = std::find(order.begin(), order.end(), name);
      EXPECT_TRUE(pos < order.begin() + static_cast<long>(i)) << order[i] << " uses $" << name;
    }
  }
}

// Every metric the controller can export, with histogram series names.
std::set<std::string> ExportedNames() {
  std::vector<prometheus::MetricFamily> fams = DbFamilies({});
  ControllerMetrics cm("flowrun", "test", 1);
  cm.SetLeader("x", true);
  cm.ObserveRequest("GET", 200, {});
  cm.ObserveDbQuery("x", {});
  for (auto& f : cm.registry()->Collect()) fams.push_back(f);
  for (auto& f : WorkQueueFamilies(kube::WorkQueueStats{})) fams.push_back(f);
  fams.push_back(PhaseCounter().Family());
  class NoSource : public MetricsSource {
    Status Connect() override { return Unavailable("none"); }
    StatusOr<DbSnapshot> Read() override { return Unavailable("none"); }
    StatusOr<bool> AwaitChange(std::chrono::milliseconds) override { return Unavailable("none"); }
  };
  for (auto& f : DbTotals(std::make_unique<NoSource>(), {}).Collect()) fams.push_back(f);
  std::set<std::string> names = {"up"};
  for (const auto& f : fams) {
    names.insert(f.name);
    if (f.type == prometheus::MetricType::Histogram)
      for (const char* s : {"_bucket", "_sum", "_count"}) names.insert(f.name + s);
  }
  return names;
}

TEST(MonitoringFiles, EveryMetricNameUsedIsExported) {
  std::set<std::string> names = ExportedNames();
  std::regex metric(R"(\b((flowrun|controller_runtime|workqueue|rest_client|leader_election)_[a-z_]+)\b)");
  std::vector<std::string> texts = Queries(Dashboard());
  texts.push_back(ReadFile(kFiles + "prometheus-rules.yaml"));
  int used = 0;
  for (const auto& t : texts)
    for (auto it = std::sregex_iterator(t.begin(), t.end(), metric); it != std::sregex_iterator(); ++it) {
      std::string n = (*it)[1];
      ++used;
      EXPECT_TRUE(names.count(n)) << n << " is used but not exported";
    }
  EXPECT_GT(used, 50);
}

}  // namespace
}  // namespace flowrun::metrics
