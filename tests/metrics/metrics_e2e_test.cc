// Metrics end to end (label e2e): a real Prometheus scrapes flowrun-controller
// (--metrics-addr) while FlowRuns run on the real control plane (E2eWorld).
// Checked against independent sources:
//   - total spend equals PostgreSQL's sum of llm_calls.cost_usd to the cent;
//   - the savings of a crash-and-resume run equal its cached checkpoints
//     (FlowRun status) times the price of one call;
//   - runs by phase equal `kubectl get flowruns`;
//   - every PromQL expression of the Grafana dashboard and of the alert rules
//     runs without error, those that must have data have it, and the alerts
//     that must (not) fire do (not); the dashboard's PostgreSQL query runs;
//   - two replicas (leader election) export the same totals: counted once;
//   - the leader stopped mid-run (the other takes over) and started again,
//     then runs deleted: no counter drops (resets() == 0) or doubles (still
//     the database's sum).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmath>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "e2e/e2e_world.h"

namespace flowrun::testing {
namespace {

using nlohmann::json;

constexpr double kUsdPerCall = 0.01;  // 1000 + 1000 tokens at 5 USD per million each

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
  socklen_t len = sizeof sa;
  getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
  close(fd);
  return ntohs(sa.sin_port);
}

std::string UrlEncode(const std::string& s) {
  std::string out;
  char buf[4];
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A real Prometheus on a free port, scraping the controller every second.
class Prometheus {
 public:
  // Scrapes each of `target_ports` as pod flowrun-controller-<index>.
  Prometheus(const std::string& dir, const std::vector<int>& target_ports) : port_(FreePort()) {
    std::string cfg = dir + "/prometheus.yml";
    std::string targets;
    for (size_t i = 0; i < target_ports.size(); ++i)
      targets += "      - targets: ['127.0.0.1:" + std::to_string(target_ports[i]) + "']\n"
                 "        labels: {pod: flowrun-controller-" + std::to_string(i) + "}\n";
    WriteFile(cfg, "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                   "scrape_configs:\n  - job_name: flowrun-controller\n    static_configs:\n" + targets);
    process_ = ChildProcess::Spawn({"prometheus", "--config.file=" + cfg, "--storage.tsdb.path=" + dir + "/prom-data",
                                    "--web.listen-address=127.0.0.1:" + std::to_string(port_), "--log.level=warn"},
                                   {}, ChildProcess::Options{.die_with_parent = true});
    if (!Eventually([&] { return HttpGetStatus(port_, "/-/ready") == 200; }, std::chrono::seconds(60)))
      throw std::runtime_error("prometheus did not become ready: " + process_->Output());
  }
  // An instant query: {"status": ..., "data": {"result": [...]}} (null on no answer).
  json Query(const std::string& promql) {
    std::string body = HttpGetBody(port_, "/api/v1/query?query=" + UrlEncode(promql));
    return json::parse(body, nullptr, false);
  }
  // The single value of a query returning one sample (NaN when none).
  double Scalar(const std::string& promql) {
    json r = Query(promql);
    if (!r.is_object() || r.value("status", "") != "success") return std::nan("");
    const json& res = r["data"]["result"];
    if (res.size() != 1) return std::nan("");
    return std::stod(res[0]["value"][1].get<std::string>());
  }
  // label value -> value, for a query aggregated by one label.
  std::map<std::string, double> ByLabel(const std::string& promql, const std::string& label) {
    std::map<std::string, double> out;
    json r = Query(promql);
    if (!r.is_object() || r.value("status", "") != "success") return out;
    for (const auto& s : r["data"]["result"])
      out[s["metric"].value(label, "")] = std::stod(s["value"][1].get<std::string>());
    return out;
  }
  std::string Log() const { return process_->Output(); }

 private:
  int port_;
  std::unique_ptr<ChildProcess> process_;
};

// Two replicas with leader election, like the chart's deployment: the
// world's controller (restarted in the second test) and a second one. Both
// export the database totals; the queries must count them once.
struct Suite {
  E2eWorld* w = nullptr;
  int metrics_port = 0, second_port = 0;
  std::unique_ptr<Prometheus> prom;
  std::vector<std::string> controller_args;
  std::unique_ptr<ChildProcess> second;
};

Suite& S() {
  static Suite s;
  if (!s.w) {
    s.w = &E2eWorld::Get({.start_controller = false});
    WriteFile(s.w->dir + "/prices.yaml", "models:\n  gpt-4o-mini: {input: 5.0, output: 5.0}\n");
    s.metrics_port = FreePort();
    s.second_port = FreePort();
    auto args = [&](int port) {
      return std::vector<std::string>{"--metrics-addr", "127.0.0.1:" + std::to_string(port), "--metrics-min-refresh-ms",
                                      "200", "--price-table-path", s.w->dir + "/prices.yaml", "--leader-elect",
                                      "--leader-election-namespace", "default"};
    };
    s.controller_args = args(s.metrics_port);
    s.w->llm->Reset();
    s.w->llm->Configure({{"usage", {{"prompt_tokens", 1000}, {"completion_tokens", 1000}, {"cached_tokens", 0}}}});
    s.w->StartController({.args = s.controller_args});
    // The first one leads before the second starts.
    WaitReady(HealthPort(*s.w->controller()), std::chrono::seconds(60));
    s.second = s.w->SpawnController({.args = args(s.second_port)});
    s.prom = std::make_unique<Prometheus>(s.w->dir, std::vector<int>{s.metrics_port, s.second_port});
  }
  return s;
}

double DbSpend(E2eWorld& w) {
  return std::stod(w.Psql(
      "SELECT coalesce((SELECT sum(cost_usd) FROM flowrun.llm_calls), 0)"
      " + coalesce((SELECT sum(value) FROM flowrun.metric_rollup WHERE metric = 'cost_usd'), 0)"));
}

const char* kTotalSpend = "sum(max without (instance, pod) (flowrun_cost_usd_total))";

bool Cents(double a, double b) { return std::llround(a * 100) == std::llround(b * 100); }

// The dashboard's and the rules' expressions with Grafana's variables bound:
// every namespace/flow/model/job, a 1m rate interval, a 1h range.
std::string Bind(std::string q) {
  for (auto [from, to] : std::vector<std::pair<std::string, std::string>>{
           {"$__rate_interval", "1m"}, {"$__range", "1h"}, {"$__interval", "15s"}, {"$namespace", ".*"},
           {"$flow", ".*"}, {"$model", ".*"}, {"$job", ".*"}}) {
    for (size_t p; (p = q.find(from)) != std::string::npos;) q.replace(p, from.size(), to);
  }
  return q;
}

TEST(MetricsE2e, SpendSavingsPhasesAndEveryQueryAgainstARealPrometheus) {
  Suite& s = S();
  E2eWorld& w = *s.w;
  ASSERT_TRUE(w.ControllerRunning()) << w.ControllerLog();
  json listening = WaitForLogLine(*w.controller(), "metrics server listening");
  ASSERT_FALSE(listening.is_null()) << w.ControllerLog();
  EXPECT_EQ(listening.value("port", 0), s.metrics_port);

  // A run left waiting, a run whose wait times out (Failed), a research run
  // answered by a human, and a chain whose pod is killed mid-run.
  w.ApplyResearchRun("m-waiting");
  w.ApplyTestAgentRun("m-timeout", R"({"scenario": "wait_timeout", "timeout_s": 6, "policy": "fail"})");
  ASSERT_TRUE(w.ExpectResearchLifecycle("m-answered"));

  std::string yaml = w.TestAgentRunYaml("m-crash", R"({"scenario": "chain", "steps": 8, "sleep_ms": 300, "prefix": "crashstep"})",
                                        "  retry:\n    maxAttempts: 3\n    backoffSeconds: 1\n");
  yaml = std::regex_replace(yaml, std::regex("flow: e2e"), "flow: crash");
  w.ApplyYaml("m-crash.yaml", yaml);
  ASSERT_TRUE(w.WaitPhase("m-crash", "Running", "120s"));
  std::string uid = w.Uid("m-crash");
  ASSERT_TRUE(Eventually([&] {
    return std::atoi(w.Psql("SELECT count(*) FROM flowrun.checkpoints WHERE run_uid = '" + uid +
                            "' AND status = 'completed'").c_str()) >= 3;
  }, std::chrono::seconds(60)));
  std::string pod = Trim(w.Kubectl({"get", "pods", "-l", "flowrun.dev/run=m-crash,flowrun.dev/attempt=1", "-o", "name"}));
  ASSERT_NE(pod, "");
  w.Kubectl({"delete", pod, "--wait=false"});
  ASSERT_TRUE(w.WaitPhase("m-crash", "Succeeded", "180s"));
  ASSERT_TRUE(w.WaitPhase("m-timeout", "Failed", "120s"));
  ASSERT_TRUE(w.WaitPhase("m-waiting", "Waiting", "120s"));

  Prometheus& p = *s.prom;
  // Total spend: the database's sum, to the cent - once, although both
  // replicas export it (a plain sum shows them both).
  double db = DbSpend(w);
  EXPECT_GT(db, 0);
  bool spend_ok = Eventually([&] { return Cents(p.Scalar(kTotalSpend), db); }, std::chrono::seconds(30));
  EXPECT_TRUE(spend_ok) << "prometheus " << p.Scalar(kTotalSpend) << " database " << db;
  EXPECT_TRUE(Eventually([&] { return Cents(p.Scalar("sum(flowrun_cost_usd_total)"), 2 * db); }, std::chrono::seconds(30)))
      << "both replicas export the totals: " << p.Scalar("sum(flowrun_cost_usd_total)");
  EXPECT_EQ(p.Scalar("count(flowrun_build_info)"), 2);
  EXPECT_EQ(p.Scalar(R"(sum(leader_election_master_status{name="flowrun-controller"}))"), 1);

  // Savings of the crash-and-resume run: what its cached checkpoints cost.
  int cached = std::atoi(w.Get("m-crash", "{.status.checkpoints.cached}").c_str());
  EXPECT_GE(cached, 3) << w.Get("m-crash", "{.status}");
  const std::string saved_q = R"(sum(max without (instance, pod) (flowrun_saved_usd_total{flow="crash"})))";
  EXPECT_TRUE(Eventually([&] { return Cents(p.Scalar(saved_q), cached * kUsdPerCall); }, std::chrono::seconds(30)))
      << "saved " << p.Scalar(saved_q) << ", cached checkpoints " << cached;
  EXPECT_EQ(p.Scalar(R"(sum(max without (instance, pod) (flowrun_saved_llm_calls_total{flow="crash"})))"), cached);
  EXPECT_EQ(p.Scalar(R"(sum(max without (instance, pod) (flowrun_checkpoints_total{flow="crash", source="cache"})))"),
            cached);
  EXPECT_GE(p.Scalar(R"(sum(max without (instance, pod) (flowrun_retries_total{flow="crash", reason="interrupted"})))"), 1);

  // Runs by phase: kubectl's view.
  std::map<std::string, double> kubectl_phases;
  std::istringstream phases(w.Kubectl({"get", "flowruns", "-o", "jsonpath={range .items[*]}{.status.phase}{\"\\n\"}{end}"}));
  for (std::string line; std::getline(phases, line);)
    if (!line.empty()) kubectl_phases[line] += 1;
  const std::string by_phase = "sum by (phase) (max without (instance, pod) (flowrun_runs)) > 0";
  EXPECT_TRUE(Eventually([&] { return p.ByLabel(by_phase, "phase") == kubectl_phases; }, std::chrono::seconds(30)));
  EXPECT_EQ(p.ByLabel(by_phase, "phase"), kubectl_phases);
  EXPECT_EQ(kubectl_phases["Waiting"], 1);
  EXPECT_EQ(kubectl_phases["Failed"], 1);

  // Waits: one open, one answered by a human, one timed out.
  EXPECT_EQ(p.Scalar("sum(max without (instance, pod) (flowrun_waits_open))"), 1);
  EXPECT_GE(p.Scalar("sum(max without (instance, pod) (flowrun_wait_response_seconds_count))"), 1);
  EXPECT_EQ(p.Scalar("sum(max without (instance, pod) (flowrun_wait_timeouts_total))"), 1);

  // Every dashboard expression runs; all but the budget panels have data now.
  json dash = json::parse(ReadFile(std::string(FLOWRUN_SOURCE_DIR) + "/helm/flowrun/files/grafana-dashboard.json"));
  int ran = 0;
  for (const auto& panel : dash["panels"])
    for (const auto& t : panel.value("targets", json::array())) {
      if (t.contains("rawSql")) {
        std::string sql = t["rawSql"];
        sql = std::regex_replace(sql, std::regex(R"(\$__timeFilter\(([a-z.]+)\))"), "$1 > now() - interval '1 day'");
        sql = std::regex_replace(sql, std::regex(R"(\$\{(namespace|flow):regex\})"), ".*");
        std::string rows = w.Psql(sql);
        EXPECT_NE(rows, "") << panel["title"];
        // The most expensive call first.
        EXPECT_NE(rows.substr(0, rows.find('\n')).find("|0.01"), std::string::npos) << rows;
        ++ran;
        continue;
      }
      std::string q = Bind(t["expr"]);
      json r = p.Query(q);
      ASSERT_TRUE(r.is_object()) << q;
      EXPECT_EQ(r.value("status", ""), "success") << panel["title"] << ": " << q << " -> " << r.dump();
      bool budget = q.find("budget_suspensions") != std::string::npos;
      if (!budget) EXPECT_FALSE(r["data"]["result"].empty()) << panel["title"] << ": " << q;
      ++ran;
    }
  // Every variable's label_values() query resolves to at least one value.
  for (const auto& v : dash["templating"]["list"]) {
    if (v["type"] != "query") continue;
    std::smatch m;
    std::string def = Bind(v["definition"]);
    ASSERT_TRUE(std::regex_match(def, m, std::regex(R"(label_values\((.*), *([a-z_]+)\))"))) << def;
    EXPECT_FALSE(p.ByLabel("group by (" + m[2].str() + ") (" + m[1].str() + ")", m[2]).empty()) << def;
  }
  EXPECT_GE(ran, 45);

  // Every alert expression runs; the failed run fires FlowRunsFailed, nothing
  // else that this scenario cannot trigger fires.
  std::string rules = ReadFile(std::string(FLOWRUN_SOURCE_DIR) + "/helm/flowrun/files/prometheus-rules.yaml");
  std::regex alert_re(R"(- alert: (\w+)\n\s+expr: (\|\n((?:\s{10}.*\n)+)|(.*)\n))");
  std::map<std::string, bool> fired;
  for (auto it = std::sregex_iterator(rules.begin(), rules.end(), alert_re); it != std::sregex_iterator(); ++it) {
    std::string name = (*it)[1], expr = (*it)[3].matched ? (*it)[3].str() : (*it)[4].str();
    json r = p.Query(expr);
    ASSERT_TRUE(r.is_object()) << name;
    EXPECT_EQ(r.value("status", ""), "success") << name << ": " << r.dump();
    fired[name] = !r["data"]["result"].empty();
  }
  EXPECT_EQ(fired.size(), 8u);
  EXPECT_TRUE(fired["FlowRunsFailed"]) << p.Query(R"(flowrun_runs_finished_total{status="failed"}[10m])").dump();
  for (const char* quiet : {"FlowRunBudgetExceeded", "FlowRunWaitingTooLong", "FlowRunSpendRateHigh",
                            "FlowRunControllerDown", "FlowRunControllerNotLeading", "FlowRunMetricsStale"})
    EXPECT_FALSE(fired[quiet]) << quiet;
  // Health metrics are there with controller-runtime's names.
  for (const char* q : {"controller_runtime_reconcile_total", "workqueue_adds_total{name=\"flowruns\"}",
                        "rest_client_requests_total{code=\"200\"}", "leader_election_master_status",
                        "flowrun_db_query_duration_seconds_count{operation=\"get_run\"}", "flowrun_build_info"})
    EXPECT_FALSE(p.Query(q)["data"]["result"].empty()) << q;
}

TEST(MetricsE2e, RestartMidRunAndDeletionNeitherDropNorDoubleCounters) {
  Suite& s = S();
  E2eWorld& w = *s.w;
  Prometheus& p = *s.prom;
  // Its own precondition (it stops the controller itself): one is running.
  if (!w.ControllerRunning()) w.StartController({.args = s.controller_args});
  std::string yaml = w.TestAgentRunYaml("m-restart", R"({"scenario": "chain", "steps": 6, "sleep_ms": 400, "prefix": "restartstep"})");
  yaml = std::regex_replace(yaml, std::regex("flow: e2e"), "flow: restart");
  w.ApplyYaml("m-restart.yaml", yaml);
  ASSERT_TRUE(w.WaitPhase("m-restart", "Running", "120s"));
  std::string uid = w.Uid("m-restart");
  ASSERT_TRUE(Eventually([&] {
    return std::atoi(w.Psql("SELECT count(*) FROM flowrun.llm_calls WHERE run_uid = '" + uid + "'").c_str()) >= 2;
  }, std::chrono::seconds(60)));
  // Prometheus saw the spend so far; then the controller goes away mid-run.
  ASSERT_TRUE(Eventually([&] { return p.Scalar(R"(sum(max without (instance, pod) (flowrun_cost_usd_total{flow="restart"})))") >= 2 * kUsdPerCall - 1e-9; },
                         std::chrono::seconds(30)));
  // The leader goes (SIGTERM releases the Lease): the second replica takes
  // over and finishes the run; the first comes back as a follower.
  auto st = w.StopController();
  ASSERT_TRUE(st.has_value());
  // Prometheus notices: a scrape of the stopped replica fails (up = 0) before
  // it comes back, so the counters really had a gap to survive.
  EXPECT_TRUE(Eventually([&] { return p.Scalar(R"(up{pod="flowrun-controller-0"})") == 0; }, std::chrono::seconds(60)))
      << "up of the stopped replica: " << p.Scalar(R"(up{pod="flowrun-controller-0"})");
  w.StartController({.args = s.controller_args});
  ASSERT_TRUE(w.WaitPhase("m-restart", "Succeeded", "180s"));
  EXPECT_EQ(w.Psql("SELECT count(*) FROM flowrun.llm_calls WHERE run_uid = '" + uid + "'"), "6");

  double db = DbSpend(w);
  EXPECT_TRUE(Eventually([&] { return Cents(p.Scalar(kTotalSpend), db); }, std::chrono::seconds(30)))
      << "prometheus " << p.Scalar(kTotalSpend) << " database " << db;
  EXPECT_TRUE(Cents(p.Scalar(R"(sum(max without (instance, pod) (flowrun_cost_usd_total{flow="restart"})))"), 6 * kUsdPerCall));

  // Delete two finished runs (retention=delete removes their rows): the
  // totals stay where they were.
  double saved_before = p.Scalar("sum(max without (instance, pod) (flowrun_saved_usd_total))");
  w.Kubectl({"delete", "flowrun", "m-crash", "m-restart", "--timeout=60s"});
  ASSERT_TRUE(Eventually([&] { return w.Psql("SELECT count(*) FROM flowrun.runs WHERE name IN ('m-crash', 'm-restart')") == "0"; },
                         std::chrono::seconds(60)));
  EXPECT_TRUE(Cents(DbSpend(w), db)) << "the rollup keeps the deleted runs' spend";
  // A few scrapes of both replicas after the deletion (on Prometheus's own
  // clock: each one's latest successful scrape is 3 s newer than the
  // deletion), so what follows checks totals read after it, not before.
  const double deleted_at = p.Scalar("vector(time())");  // Scalar() reads instant vectors
  const std::string scraped_since =
      R"(count(timestamp(up{job="flowrun-controller"} == 1) > )" + std::to_string(deleted_at + 3) + ")";
  EXPECT_TRUE(Eventually([&] { return p.Scalar(scraped_since) == 2; }, std::chrono::seconds(60)))
      << "latest scrapes " << p.Query(R"(timestamp(up{job="flowrun-controller"}))").dump() << " deleted at "
      << deleted_at;
  EXPECT_TRUE(Cents(p.Scalar(kTotalSpend), db)) << p.Scalar(kTotalSpend) << " vs " << db;
  EXPECT_TRUE(Cents(p.Scalar("sum(max without (instance, pod) (flowrun_saved_usd_total))"), saved_before));

  // Over the whole test no counter series ever went down, and no value ever
  // exceeded the final total (no double counting while two processes lived).
  for (const char* counter : {"flowrun_cost_usd_total", "flowrun_llm_calls_total", "flowrun_tokens_total",
                              "flowrun_saved_usd_total", "flowrun_saved_tokens_total", "flowrun_checkpoints_total",
                              "flowrun_attempts_total", "flowrun_retries_total", "flowrun_runs_finished_total",
                              "flowrun_waits_asked_total", "flowrun_wait_response_seconds_count"}) {
    json resets = p.Query(std::string("max(resets(") + counter + "[15m]))");
    ASSERT_EQ(resets.value("status", ""), "success") << resets.dump();
    ASSERT_FALSE(resets["data"]["result"].empty()) << counter;
    EXPECT_EQ(resets["data"]["result"][0]["value"][1], "0") << counter << " went down: " << resets.dump();
  }
  EXPECT_TRUE(Eventually([&] { return p.Scalar(R"(sum(leader_election_master_status{name="flowrun-controller"}))") == 1; },
                         std::chrono::seconds(30)));
  EXPECT_EQ(p.Scalar("count(flowrun_build_info)"), 2);
  double peak = p.Scalar(std::string("max_over_time((") + kTotalSpend + ")[15m:1s])");
  EXPECT_TRUE(Cents(peak, db)) << "peak " << peak << " final " << db;
}

}  // namespace
}  // namespace flowrun::testing
