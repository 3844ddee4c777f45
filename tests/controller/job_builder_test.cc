// BuildJob and Job names: the environment contract, defaults, labels, Pod Security "restricted".
#include "core_world.h"

using namespace core_test;

namespace {

// ---------------------------------------------------------------------------
// BuildJob

std::map<std::string, json> EnvByName(const json& job) {
  std::map<std::string, json> m;
  for (const auto& e : job["spec"]["template"]["spec"]["containers"][0]["env"]) m[e["name"]] = e;
  return m;
}

TEST(BuildJob, EnvironmentContract) {
  World w;
  w.flowrun["spec"]["budgetUSD"] = 1.5;
  w.flowrun["spec"]["waitTimeoutSeconds"] = 86400;
  w.flowrun["spec"]["onWaitTimeout"] = "default";
  w.flowrun["spec"]["database"] = {{"secretRef", {{"name", "flowrun-db"}}}};
  w.flowrun["spec"]["template"]["env"] = {{{"name", "FLOWRUN_LLM_MODEL"}, {"value", "gpt-4o-mini"}},
                                          {{"name", "FLOWRUN_ATTEMPT"}, {"value", "99"}}};
  w.config.price_table_path = "/etc/flowrun/prices.yaml";
  w.config.openai_base_url_secret = fc::SecretKeyRef{"llm", "base-url"};
  auto job = fc::BuildJob(w.flowrun, 2, w.config);
  ASSERT_TRUE(job.ok()) << job.status();
  auto env = EnvByName(*job);
  auto literal = [&](const std::string& n) { return env.at(n).at("value").get<std::string>(); };
  EXPECT_EQ(literal("FLOWRUN_RUN_UID"), kUid);
  EXPECT_EQ(literal("FLOWRUN_RUN_NAME"), "research-1");
  EXPECT_EQ(literal("FLOWRUN_RUN_NAMESPACE"), "team-a");
  EXPECT_EQ(literal("FLOWRUN_FLOW"), "research");
  EXPECT_EQ(literal("FLOWRUN_ATTEMPT"), "2") << "the template cannot override the contract";
  EXPECT_EQ(literal("FLOWRUN_PARAMETERS"), R"({"topic":"durable execution"})");
  EXPECT_EQ(literal("FLOWRUN_BUDGET_USD"), "1.5");
  EXPECT_EQ(literal("FLOWRUN_WAIT_TIMEOUT_SECONDS"), "86400");
  EXPECT_EQ(literal("FLOWRUN_WAIT_ON_TIMEOUT"), "default");
  EXPECT_EQ(literal("FLOWRUN_TERMINATION_MESSAGE_PATH"), "/dev/termination-log");
  EXPECT_EQ(literal("FLOWRUN_PRICE_TABLE"), "/etc/flowrun/prices.yaml");
  EXPECT_EQ(literal("FLOWRUN_LLM_MODEL"), "gpt-4o-mini");
  const json& db = env.at("FLOWRUN_DATABASE_URL");
  EXPECT_FALSE(db.contains("value")) << "never a literal secret";
  EXPECT_EQ(db["valueFrom"]["secretKeyRef"], json({{"name", "flowrun-db"}, {"key", "url"}}));
  EXPECT_EQ(env.at("OPENAI_BASE_URL")["valueFrom"]["secretKeyRef"]["name"], "llm");
  size_t attempts = 0;
  for (const auto& e : (*job)["spec"]["template"]["spec"]["containers"][0]["env"])
    attempts += e["name"] == "FLOWRUN_ATTEMPT";
  EXPECT_EQ(attempts, 1u);
  // The runtime reads what the controller writes.
  std::map<std::string, std::string> vars;
  for (const auto& [k, v] : env)
    if (v.contains("value")) vars[k] = v["value"];
  vars["FLOWRUN_DATABASE_URL"] = "host=db";
  auto parsed = flowrun::ReadRunEnvironment([&](const std::string& k) -> std::optional<std::string> {
    auto it = vars.find(k);
    return it == vars.end() ? std::nullopt : std::optional<std::string>(it->second);
  });
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->run.uid, kUid);
  EXPECT_EQ(parsed->attempt, 2);
  EXPECT_EQ(parsed->initial_budget_usd, 1.5);
  EXPECT_EQ(parsed->parameters["topic"], "durable execution");
  EXPECT_EQ(parsed->default_on_timeout, flowrun::OnTimeout::kUseDefault);
}

TEST(BuildJob, DefaultsFromTheControllerConfig) {
  World w;
  auto job = fc::BuildJob(w.flowrun, 1, w.config);
  ASSERT_TRUE(job.ok());
  auto env = EnvByName(*job);
  EXPECT_EQ(env.at("FLOWRUN_DATABASE_URL")["valueFrom"]["secretKeyRef"],
            json({{"name", "flowrun-database"}, {"key", "url"}}));
  EXPECT_EQ(env.count("FLOWRUN_BUDGET_USD"), 0u);
  EXPECT_EQ(env.count("FLOWRUN_WAIT_TIMEOUT_SECONDS"), 0u);
  EXPECT_EQ(env.at("FLOWRUN_WAIT_ON_TIMEOUT")["value"], "fail");
  EXPECT_EQ((*job)["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"], "IfNotPresent");
  w.config.default_wait_timeout_seconds = 600;
  EXPECT_EQ(EnvByName(*fc::BuildJob(w.flowrun, 1, w.config)).at("FLOWRUN_WAIT_TIMEOUT_SECONDS")["value"], "600");
}

TEST(BuildJob, JobShapeLabelsAndOwner) {
  World w;
  w.flowrun["spec"]["attemptDeadlineSeconds"] = 1800;
  w.flowrun["spec"]["template"]["command"] = {"/usr/local/bin/research-agent"};
  w.flowrun["spec"]["template"]["resources"] = {{"limits", {{"memory", "512Mi"}}}};
  w.flowrun["spec"]["template"]["nodeSelector"] = {{"pool", "agents"}};
  w.flowrun["spec"]["template"]["imagePullSecrets"] = {{{"name", "regcred"}}};
  json job = *fc::BuildJob(w.flowrun, 3, w.config);
  EXPECT_EQ(job["metadata"]["name"], "research-1-a3");
  EXPECT_EQ(job["metadata"]["namespace"], "team-a");
  json labels = {{"flowrun.dev/run", "research-1"},
                 {"flowrun.dev/run-uid", kUid},
                 {"flowrun.dev/attempt", "3"},
                 {"flowrun.dev/flow", "research"},
                 {"app.kubernetes.io/managed-by", "flowrun-controller"}};
  EXPECT_EQ(job["metadata"]["labels"], labels);
  EXPECT_EQ(job["spec"]["template"]["metadata"]["labels"], labels);
  const json& owner = job["metadata"]["ownerReferences"][0];
  EXPECT_EQ(owner, json({{"apiVersion", "flowrun.dev/v1alpha1"}, {"kind", "FlowRun"}, {"name", "research-1"},
                         {"uid", kUid}, {"controller", true}, {"blockOwnerDeletion", true}}));
  EXPECT_EQ(job["spec"]["backoffLimit"], 0);
  EXPECT_EQ(job["spec"]["podReplacementPolicy"], "Failed");
  EXPECT_EQ(job["spec"]["activeDeadlineSeconds"], 1800);
  const json& pod = job["spec"]["template"]["spec"];
  EXPECT_EQ(pod["restartPolicy"], "Never");
  EXPECT_EQ(pod["nodeSelector"]["pool"], "agents");
  EXPECT_EQ(pod["imagePullSecrets"][0]["name"], "regcred");
  const json& c = pod["containers"][0];
  EXPECT_EQ(c["name"], "agent");
  EXPECT_EQ(c["image"], "flowrun/research-agent:0.1.0");
  EXPECT_EQ(c["command"][0], "/usr/local/bin/research-agent");
  EXPECT_EQ(c["resources"]["limits"]["memory"], "512Mi");
  EXPECT_EQ(c["terminationMessagePath"], "/dev/termination-log");
  EXPECT_EQ(c["terminationMessagePolicy"], "FallbackToLogsOnError");
  // Deterministic.
  EXPECT_EQ(job, *fc::BuildJob(w.flowrun, 3, w.config));
}

// Pod Security Standards "restricted" (v1.30): the checks that apply to a pod
// without volumes other than configMap, host namespaces, ports or probes.
void ExpectRestricted(const json& pod) {
  for (const char* host : {"hostNetwork", "hostPID", "hostIPC"}) EXPECT_FALSE(pod.value(host, false)) << host;
  const json& psc = pod.value("securityContext", json::object());
  for (const auto& c : pod["containers"]) {
    const json& sc = c.at("securityContext");
    EXPECT_EQ(sc.at("allowPrivilegeEscalation"), false);
    EXPECT_FALSE(sc.value("privileged", false));
    EXPECT_EQ(sc.at("capabilities").at("drop"), json::array({"ALL"}));
    EXPECT_FALSE(sc.at("capabilities").contains("add"));
    bool non_root = sc.value("runAsNonRoot", psc.value("runAsNonRoot", false));
    EXPECT_TRUE(non_root);
    EXPECT_NE(sc.value("runAsUser", psc.value("runAsUser", 1)), 0);
    std::string seccomp = sc.contains("seccompProfile") ? sc["seccompProfile"]["type"].get<std::string>()
                                                        : psc.value("seccompProfile", json::object()).value("type", "");
    EXPECT_TRUE(seccomp == "RuntimeDefault" || seccomp == "Localhost") << seccomp;
  }
  if (pod.contains("volumes")) {
    for (const auto& v : pod["volumes"]) {
      EXPECT_TRUE(v.contains("configMap")) << v;
    }
  }
}

TEST(BuildJob, PassesPodSecurityRestricted) {
  World w;
  json job = *fc::BuildJob(w.flowrun, 1, w.config);
  const json& pod = job["spec"]["template"]["spec"];
  ExpectRestricted(pod);
  EXPECT_EQ(pod["automountServiceAccountToken"], false);
  EXPECT_FALSE(pod.contains("serviceAccountName"));
  EXPECT_EQ(pod["enableServiceLinks"], false);

  w.flowrun["spec"]["template"]["serviceAccountName"] = "agent-sa";
  w.config.run_as_user = 65532;
  w.config.price_table_path = "/etc/flowrun/prices.yaml";
  w.config.price_table_config_map = "flowrun-prices";
  json job2 = *fc::BuildJob(w.flowrun, 1, w.config);
  const json& pod2 = job2["spec"]["template"]["spec"];
  ExpectRestricted(pod2);
  EXPECT_EQ(pod2["serviceAccountName"], "agent-sa");
  EXPECT_FALSE(pod2.contains("automountServiceAccountToken"));
  EXPECT_EQ(pod2["securityContext"]["runAsUser"], 65532);
  EXPECT_EQ(pod2["containers"][0]["volumeMounts"][0]["mountPath"], "/etc/flowrun");
  EXPECT_EQ(pod2["volumes"][0]["configMap"]["items"][0]["key"], "prices.yaml");
}

// ---------------------------------------------------------------------------
// Names

bool ValidLabelValue(const std::string& v) {
  if (v.empty()) return true;
  if (v.size() > 63 || !std::isalnum(static_cast<unsigned char>(v.front())) ||
      !std::isalnum(static_cast<unsigned char>(v.back())))
    return false;
  for (char c : v)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') return false;
  return true;
}

TEST(Names, JobNamesStayWithin63Characters) {
  EXPECT_EQ(fc::JobName("research-1", 1), "research-1-a1");
  std::string n58(58, 'r');
  EXPECT_EQ(fc::JobName(n58, 9), n58 + "-a9");  // exactly 61
  EXPECT_EQ(fc::JobName(std::string(60, 'r'), 1), std::string(60, 'r') + "-a1");  // exactly 63
  for (size_t len : {61u, 62u, 63u, 64u, 100u, 253u}) {
    for (int attempt : {1, 9, 10, 100, 99999}) {
      std::string base = std::string(len - 1, 'b') + "x";
      std::string name = fc::JobName(base, attempt);
      EXPECT_LE(name.size(), 63u) << len << " " << attempt;
      EXPECT_TRUE(ValidLabelValue(name)) << name;
      EXPECT_EQ(name.substr(name.size() - std::to_string(attempt).size() - 2), "-a" + std::to_string(attempt));
      EXPECT_EQ(name, fc::JobName(base, attempt)) << "deterministic";
    }
  }
  // Long names that share a prefix get different Jobs.
  std::string a = std::string(80, 'p') + "-alpha", b = std::string(80, 'p') + "-beta";
  EXPECT_NE(fc::JobName(a, 1), fc::JobName(b, 1));
  // A cut at a '.' or '-' does not leave it dangling.
  std::string dotted = std::string(49, 'd') + ".-" + std::string(30, 'e');
  EXPECT_TRUE(ValidLabelValue(fc::JobName(dotted, 1))) << fc::JobName(dotted, 1);
}

TEST(Names, LongFlowRunNamesWork) {
  World w;
  std::string name(200, 'n');
  w.flowrun["metadata"]["name"] = name;
  json job = *fc::BuildJob(w.flowrun, 1, w.config);
  EXPECT_LE(job["metadata"]["name"].get<std::string>().size(), 63u);
  for (auto& [k, v] : job["metadata"]["labels"].items()) EXPECT_TRUE(ValidLabelValue(v)) << k << "=" << v;
  EXPECT_EQ(EnvByName(job).at("FLOWRUN_RUN_NAME")["value"], name);
}

TEST(Names, LabelValues) {
  EXPECT_EQ(fc::LabelValue("research"), "research");
  EXPECT_TRUE(ValidLabelValue(fc::LabelValue("-bad value!")));
  EXPECT_TRUE(ValidLabelValue(fc::LabelValue(std::string(100, 'x'))));
  EXPECT_TRUE(ValidLabelValue(fc::LabelValue("!!!")));
}

// ---------------------------------------------------------------------------
// Helpers

TEST(Helpers, TimeParsesKubernetesFormats) {
  EXPECT_EQ(fc::ParseTime("2026-11-26T10:00:00Z"), kT0);
  EXPECT_EQ(fc::ParseTime("2026-11-26T10:00:01.500Z"), kT0 + milliseconds(1500));
  EXPECT_EQ(fc::ParseTime("2026-11-26T12:00:00+02:00"), kT0);
  EXPECT_FALSE(fc::ParseTime("2026-11-26 garbage").has_value());
  EXPECT_FALSE(fc::ParseTime("").has_value());
  EXPECT_FALSE(fc::ParseTime("2026-11-26T10:00:00").has_value());
  EXPECT_EQ(fc::FormatTime(kT0 + milliseconds(1999)), "2026-11-26T10:00:01Z");
}

TEST(Helpers, MergePatchRoundTrip) {
  json from = {{"a", 1}, {"b", {{"c", 2}, {"d", 3}}}, {"e", {1, 2}}};
  json to = {{"a", 1}, {"b", {{"c", 5}}}, {"e", {1}}, {"f", "new"}};
  json patch = fc::MergePatchDiff(from, to);
  EXPECT_EQ(patch, json({{"b", {{"c", 5}, {"d", nullptr}}}, {"e", {1}}, {"f", "new"}}));
  json applied = from;
  fc::ApplyMergePatch(applied, patch);
  EXPECT_EQ(applied, to);
  EXPECT_TRUE(fc::MergePatchDiff(to, to).empty());
}

TEST(Helpers, TruncateKeepsUtf8Whole) {
  std::string s = "ab\xC3\xA9\xC3\xA9";  // "abéé"
  std::string t = fc::TruncateUtf8(s, 5);
  EXPECT_EQ(t, "ab...");
  EXPECT_EQ(fc::TruncateUtf8("short", 10), "short");
}

}  // namespace
