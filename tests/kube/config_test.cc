// Unit tests without a cluster (label kube-unit): kubeconfig parsing, the
// error model, 401/429 handling and watch decoding over a fake transport.
#include <stdlib.h>
#include <unistd.h>

#include <deque>
#include <future>
#include <filesystem>
#include <fstream>
#include <mutex>

#include <gtest/gtest.h>

#include "flowrun/kube/client.h"
#include "support/eventually.h"
#include "support/fake_clock.h"

namespace flowrun::kube {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

class TempDir {
 public:
  TempDir() {
    std::string t = (fs::temp_directory_path() / "kubecfg-XXXXXX").string();
    path_ = mkdtemp(t.data());
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string Write(const std::string& rel, const std::string& content) const {
    fs::path p = fs::path(path_) / rel;
    fs::create_directories(p.parent_path());
    std::ofstream(p) << content;
    return p.string();
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::string B64(const std::string& s) {
  static const char* c = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < s.size(); i += 3) {
    uint32_t v = (uint8_t(s[i]) << 16) | (uint8_t(s[i + 1]) << 8) | uint8_t(s[i + 2]);
    out += {c[v >> 18], c[(v >> 12) & 63], c[(v >> 6) & 63], c[v & 63]};
  }
  if (i + 1 == s.size()) {
    uint32_t v = uint8_t(s[i]) << 16;
    out += {c[v >> 18], c[(v >> 12) & 63], '=', '='};
  } else if (i + 2 == s.size()) {
    uint32_t v = (uint8_t(s[i]) << 16) | (uint8_t(s[i + 1]) << 8);
    out += {c[v >> 18], c[(v >> 12) & 63], c[(v >> 6) & 63], '='};
  }
  return out;
}

const char* kTwoContexts = R"(apiVersion: v1
kind: Config
current-context: files
clusters:
- name: c-files
  cluster:
    server: https://10.1.2.3:6443/
    certificate-authority: pki/ca.crt
- name: c-data
  cluster:
    server: https://example.test:443
    certificate-authority-data: CADATA
    insecure-skip-tls-verify: true
users:
- name: u-files
  user:
    client-certificate: pki/user.crt
    client-key: /ABSKEY
- name: u-data
  user:
    client-certificate-data: CERTDATA
    client-key-data: KEYDATA
- name: u-token
  user:
    token: abc.def
- name: u-tokenfile
  user:
    tokenFile: secrets/token
- name: u-exec
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1
      command: ./bin/plugin
      args: ["--a", "b"]
      env:
      - name: FOO
        value: bar
contexts:
- name: files
  context: {cluster: c-files, user: u-files, namespace: team-a}
- name: data
  context: {cluster: c-data, user: u-data}
- name: token
  context: {cluster: c-files, user: u-token}
- name: tokenfile
  context: {cluster: c-files, user: u-tokenfile}
- name: exec
  context: {cluster: c-files, user: u-exec}
- name: broken
  context: {cluster: nowhere, user: u-token}
)";

class KubeconfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_.Write("pki/ca.crt", "CA-PEM\n");
    dir_.Write("pki/user.crt", "USER-CERT\n");
    key_ = dir_.Write("abs/user.key", "USER-KEY\n");
    std::string text = kTwoContexts;
    auto sub = [&](const std::string& from, const std::string& to) { text.replace(text.find(from), from.size(), to); };
    sub("/ABSKEY", key_);
    sub("CADATA", B64("CA-FROM-DATA"));
    sub("CERTDATA", B64("CERT-FROM-DATA"));
    sub("KEYDATA", B64("KEY-FROM-DATA!"));
    path_ = dir_.Write("conf/../kubeconfig", text);
    path_ = dir_.path() + "/kubeconfig";
  }
  TempDir dir_;
  std::string path_, key_;
};

TEST_F(KubeconfigTest, FilesRelativeToTheKubeconfigAndCurrentContext) {
  auto c = LoadKubeconfig(path_);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->context_name, "files");
  EXPECT_EQ(c->server, "https://10.1.2.3:6443");  // trailing slash dropped
  EXPECT_EQ(c->ca_pem, "CA-PEM\n");                // pki/ca.crt next to the kubeconfig
  EXPECT_EQ(c->client_cert_pem, "USER-CERT\n");
  EXPECT_EQ(c->client_key_pem, "USER-KEY\n");      // absolute path
  EXPECT_EQ(c->namespace_, "team-a");
  EXPECT_FALSE(c->insecure_skip_tls_verify);
  EXPECT_TRUE(c->bearer_token.empty());
  EXPECT_FALSE(c->exec.has_value());
}

TEST_F(KubeconfigTest, DataFieldsAreBase64Decoded) {
  auto c = LoadKubeconfig(path_, "data");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->ca_pem, "CA-FROM-DATA");
  EXPECT_EQ(c->client_cert_pem, "CERT-FROM-DATA");
  EXPECT_EQ(c->client_key_pem, "KEY-FROM-DATA!");
  EXPECT_TRUE(c->insecure_skip_tls_verify);
  EXPECT_EQ(c->namespace_, "default");
}

TEST_F(KubeconfigTest, TokensTokenFilesAndExec) {
  auto t = LoadKubeconfig(path_, "token");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->bearer_token, "abc.def");
  auto tf = LoadKubeconfig(path_, "tokenfile");
  ASSERT_TRUE(tf.ok()) << tf.status();
  EXPECT_EQ(tf->token_file, dir_.path() + "/secrets/token");
  auto e = LoadKubeconfig(path_, "exec");
  ASSERT_TRUE(e.ok()) << e.status();
  ASSERT_TRUE(e->exec.has_value());
  EXPECT_EQ(e->exec->command, dir_.path() + "/./bin/plugin");
  EXPECT_EQ(e->exec->args, (std::vector<std::string>{"--a", "b"}));
  EXPECT_EQ(e->exec->env.at("FOO"), "bar");
  EXPECT_EQ(e->exec->api_version, "client.authentication.k8s.io/v1");
}

TEST_F(KubeconfigTest, KubeconfigEnvironmentVariable) {
  std::string old = getenv("KUBECONFIG") ? getenv("KUBECONFIG") : "";
  setenv("KUBECONFIG", (dir_.path() + "/missing:" + path_).c_str(), 1);
  auto c = LoadKubeconfig("", "token");
  if (old.empty()) unsetenv("KUBECONFIG"); else setenv("KUBECONFIG", old.c_str(), 1);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->bearer_token, "abc.def");
}

TEST_F(KubeconfigTest, ClearErrors) {
  auto missing_ctx = LoadKubeconfig(path_, "nope");
  EXPECT_EQ(missing_ctx.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(missing_ctx.status().message().find("nope"), std::string::npos) << missing_ctx.status();
  auto broken = LoadKubeconfig(path_, "broken");
  EXPECT_EQ(broken.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(broken.status().message().find("nowhere"), std::string::npos) << broken.status();

  auto nofile = LoadKubeconfig(dir_.path() + "/does-not-exist");
  EXPECT_EQ(nofile.status().code(), StatusCode::kNotFound) << nofile.status();

  std::string bad = dir_.Write("bad.yaml", "clusters: [\n  - name: x\n  cluster: {server: \n");
  auto malformed = LoadKubeconfig(bad);
  EXPECT_EQ(malformed.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(malformed.status().message().find("malformed YAML"), std::string::npos) << malformed.status();
  EXPECT_NE(malformed.status().message().find(bad), std::string::npos) << "names the file";

  std::string scalar = dir_.Write("scalar.yaml", "just a string\n");
  EXPECT_EQ(LoadKubeconfig(scalar).status().code(), StatusCode::kInvalidArgument);

  std::string missing_ca = dir_.Write("missing-ca.yaml", R"(
clusters: [{name: c, cluster: {server: "https://x", certificate-authority: nothere.crt}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
)");
  auto ca = LoadKubeconfig(missing_ca);
  EXPECT_EQ(ca.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(ca.status().message().find("nothere.crt"), std::string::npos) << ca.status();

  std::string bad_b64 = dir_.Write("bad-b64.yaml", R"(
clusters: [{name: c, cluster: {server: "https://x", certificate-authority-data: "!!notbase64"}}]
contexts: [{name: x, context: {cluster: c}}]
current-context: x
)");
  auto b = LoadKubeconfig(bad_b64);
  EXPECT_EQ(b.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(b.status().message().find("certificate-authority-data"), std::string::npos) << b.status();

  std::string no_current = dir_.Write("nocur.yaml", "clusters: []\n");
  EXPECT_EQ(LoadKubeconfig(no_current).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(KubeconfigTest, NewKubeClientRejectsBadPem) {
  auto c = LoadKubeconfig(path_);  // its "PEM" files are not PEM
  ASSERT_TRUE(c.ok());
  auto client = NewKubeClient(*c);
  EXPECT_EQ(client.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(client.status().message().find("certificate-authority"), std::string::npos) << client.status();
}

TEST(InClusterConfigTest, ReadsServiceAccountFiles) {
  TempDir d;
  d.Write("sa/token", "tok\n");
  d.Write("sa/ca.crt", "CA");
  d.Write("sa/namespace", "flowrun-system\n");
  setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1", 1);
  setenv("KUBERNETES_SERVICE_PORT", "443", 1);
  auto c = InClusterConfig(d.path() + "/sa");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->server, "https://10.0.0.1:443");
  EXPECT_EQ(c->token_file, d.path() + "/sa/token");
  EXPECT_EQ(c->ca_pem, "CA");
  EXPECT_EQ(c->namespace_, "flowrun-system");
  setenv("KUBERNETES_SERVICE_HOST", "fd00::1", 1);
  EXPECT_EQ(InClusterConfig(d.path() + "/sa")->server, "https://[fd00::1]:443");
  unsetenv("KUBERNETES_SERVICE_HOST");
  EXPECT_EQ(InClusterConfig(d.path() + "/sa").status().code(), StatusCode::kFailedPrecondition);
  unsetenv("KUBERNETES_SERVICE_PORT");
}

// ---- error model ----

TEST(ErrorsTest, MapsStatusesAndPayloads) {
  auto st = [](int code, const std::string& reason, json details = nullptr) {
    json s = {{"kind", "Status"}, {"apiVersion", "v1"}, {"status", "Failure"}, {"message", "msg " + reason},
              {"reason", reason}, {"code", code}};
    if (!details.is_null()) s["details"] = details;
    return s.dump();
  };
  EXPECT_TRUE(IsNotFound(StatusFromResponse(404, st(404, "NotFound"), "")));
  Status exists = StatusFromResponse(409, st(409, "AlreadyExists"), "");
  EXPECT_TRUE(IsAlreadyExists(exists));
  EXPECT_FALSE(IsConflict(exists));
  Status conflict = StatusFromResponse(409, st(409, "Conflict"), "");
  EXPECT_TRUE(IsConflict(conflict));
  EXPECT_FALSE(IsAlreadyExists(conflict));
  EXPECT_NE(conflict.message().find("msg Conflict"), std::string::npos);
  EXPECT_TRUE(IsGone(StatusFromResponse(410, st(410, "Expired"), "")));
  EXPECT_EQ(StatusFromResponse(410, st(410, "Expired"), "").code(), StatusCode::kFailedPrecondition);
  EXPECT_TRUE(IsForbidden(StatusFromResponse(403, st(403, "Forbidden"), "")));
  EXPECT_EQ(StatusFromResponse(401, st(401, "Unauthorized"), "").code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(StatusFromResponse(503, "upstream down", "").code(), StatusCode::kUnavailable);
  EXPECT_EQ(StatusFromResponse(500, st(500, "InternalError"), "").code(), StatusCode::kUnavailable);
  EXPECT_EQ(StatusFromResponse(504, st(504, "Timeout"), "").code(), StatusCode::kDeadlineExceeded);
  EXPECT_EQ(StatusFromResponse(400, st(400, "BadRequest"), "").code(), StatusCode::kInvalidArgument);

  Status invalid = StatusFromResponse(
      422, st(422, "Invalid", {{"causes", {{{"field", "metadata.name"}, {"reason", "FieldValueInvalid"}, {"message", "bad"}}}}}), "");
  EXPECT_EQ(invalid.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(HttpStatusOf(invalid), 422);
  ASSERT_EQ(CausesOf(invalid).size(), 1u);
  EXPECT_EQ(CausesOf(invalid)[0].field, "metadata.name");
  EXPECT_EQ(CausesOf(invalid)[0].message, "bad");

  Status slow = StatusFromResponse(429, st(429, "TooManyRequests", {{"retryAfterSeconds", 2}}), "");
  EXPECT_EQ(slow.code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(RetryAfterOf(slow), std::chrono::seconds(2));
  EXPECT_EQ(RetryAfterOf(StatusFromResponse(429, "", "7")), std::chrono::seconds(7));  // header wins
  EXPECT_FALSE(RetryAfterOf(StatusFromResponse(429, "", "")).has_value());

  Status watch_gone = StatusFromWatchError(json::parse(st(410, "Expired")));
  EXPECT_TRUE(IsGone(watch_gone));
  EXPECT_EQ(HttpStatusOf(watch_gone), 410);
  EXPECT_EQ(HttpStatusOf(Status::Ok()), 0);
}

// ---- the client over a fake transport ----

class FakeStream : public HttpStream {
 public:
  FakeStream(int status, std::string body) : status_(status), body_(std::move(body)) {}
  int status() const override { return status_; }
  const std::vector<std::pair<std::string, std::string>>& headers() const override { return headers_; }
  StatusOr<bool> ReadLine(std::string* line, size_t max_bytes) override {
    if (pos_ >= body_.size()) return false;
    size_t nl = body_.find('\n', pos_);
    size_t end = nl == std::string::npos ? body_.size() : nl;
    if (end - pos_ > max_bytes) return ResourceExhausted("line too long");
    *line = body_.substr(pos_, end - pos_);
    pos_ = end + 1;
    return true;
  }
  void Cancel() override {}

 private:
  int status_;
  std::string body_;
  size_t pos_ = 0;
  std::vector<std::pair<std::string, std::string>> headers_;
};

class FakeTransport : public HttpTransport {
 public:
  struct Reply {
    int status;
    std::string body;
    std::vector<std::pair<std::string, std::string>> headers;
  };
  StatusOr<HttpResponse> Send(const HttpRequest& r) override {
    std::lock_guard<std::mutex> lock(mu);
    requests.push_back(r);
    if (replies.empty()) return Unavailable("no reply queued");
    Reply rep = replies.front();
    replies.pop_front();
    HttpResponse resp;
    resp.status = rep.status;
    resp.body = rep.body;
    resp.headers = rep.headers;
    return resp;
  }
  StatusOr<std::unique_ptr<HttpStream>> OpenStream(const HttpRequest& r) override {
    std::lock_guard<std::mutex> lock(mu);
    requests.push_back(r);
    Reply rep = replies.front();
    replies.pop_front();
    return std::unique_ptr<HttpStream>(std::make_unique<FakeStream>(rep.status, rep.body));
  }
  std::mutex mu;
  std::deque<Reply> replies;
  std::vector<HttpRequest> requests;
};

ClusterConfig FakeConfig() {
  ClusterConfig c;
  c.server = "https://fake:6443";
  c.bearer_token = "T";
  return c;
}

std::string Header(const HttpRequest& r, const std::string& name) {
  for (const auto& [k, v] : r.headers)
    if (k == name) return v;
  return "";
}

TEST(FakeClientTest, RetriesOn429HonouringRetryAfter) {
  auto t = std::make_shared<FakeTransport>();
  t->replies = {{429, R"({"kind":"Status","code":429,"reason":"TooManyRequests","message":"slow down"})", {{"Retry-After", "1"}}},
                {200, R"({"metadata":{"name":"x"}})", {}}};
  ClientOptions o;
  o.max_attempts_on_429 = 3;
  flowrun::testing::FakeClock clock;
  o.clock = &clock;
  auto c = NewKubeClientWithTransport(FakeConfig(), o, t);
  ASSERT_TRUE(c.ok());
  auto r = (*c)->Get(resources::ConfigMaps(), "ns", "x");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(t->requests.size(), 2u);
  EXPECT_EQ(clock.Sleeps(), std::vector<std::chrono::nanoseconds>{std::chrono::seconds(1)}) << "waited Retry-After on its clock";
  EXPECT_EQ(t->requests[0].url, "https://fake:6443/api/v1/namespaces/ns/configmaps/x");
  EXPECT_EQ(Header(t->requests[0], "Authorization"), "Bearer T");
  EXPECT_EQ(Header(t->requests[0], "Accept"), "application/json");

  // Attempts run out: the 429 is the answer.
  t->replies = {{429, "", {{"Retry-After", "0"}}}, {429, "", {{"Retry-After", "0"}}}, {429, "", {{"Retry-After", "0"}}}};
  t->requests.clear();
  auto r2 = (*c)->Get(resources::ConfigMaps(), "ns", "x");
  EXPECT_EQ(r2.status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(t->requests.size(), 3u);
}

// A 429 wait ends as soon as cancel_retries fires (a shutdown does not wait
// out a 30 s Retry-After); a cancelled token stops the next wait at once.
TEST(FakeClientTest, CancellingRetriesInterruptsA429Wait) {
  auto t = std::make_shared<FakeTransport>();
  t->replies = {{429, "", {{"Retry-After", "30"}}}, {200, "{}", {}}};
  ClientOptions o;
  o.cancel_retries = std::make_shared<CancelToken>();
  auto c = NewKubeClientWithTransport(FakeConfig(), o, t);
  ASSERT_TRUE(c.ok());
  auto fut = std::async(std::launch::async, [&] { return (*c)->Get(resources::ConfigMaps(), "ns", "x"); });
  ASSERT_TRUE(flowrun::testing::Eventually([&] {
    std::lock_guard<std::mutex> lock(t->mu);
    return t->requests.size() == 1;
  }, std::chrono::seconds(30)));
  o.cancel_retries->Cancel();
  ASSERT_EQ(fut.wait_for(std::chrono::seconds(20)), std::future_status::ready) << "the 429 wait ignored the cancellation";
  auto r = fut.get();
  EXPECT_EQ(r.status().code(), StatusCode::kAborted) << r.status();
  EXPECT_EQ(t->requests.size(), 1u) << "not retried after the cancellation";

  t->replies = {{429, "", {{"Retry-After", "30"}}}};
  auto again = (*c)->Get(resources::ConfigMaps(), "ns", "x");
  EXPECT_EQ(again.status().code(), StatusCode::kAborted);
}

TEST(FakeClientTest, VerbsBuildTheRightRequests) {
  auto t = std::make_shared<FakeTransport>();
  auto c = NewKubeClientWithTransport(FakeConfig(), {}, t);
  ASSERT_TRUE(c.ok());
  for (int i = 0; i < 5; ++i) t->replies.push_back({200, "{}", {}});
  ASSERT_TRUE((*c)->Apply(resources::FlowRuns(), "ns", "run1", {{"spec", {{"a", 1}}}}, "flowrun", true, true).ok());
  const HttpRequest& ap = t->requests.back();
  EXPECT_EQ(ap.method, "PATCH");
  EXPECT_EQ(ap.url, "https://fake:6443/apis/flowrun.dev/v1alpha1/namespaces/ns/flowruns/run1/status?fieldManager=flowrun&force=true");
  EXPECT_EQ(Header(ap, "Content-Type"), "application/apply-patch+yaml");
  json body = json::parse(ap.body);
  EXPECT_EQ(body["apiVersion"], "flowrun.dev/v1alpha1");
  EXPECT_EQ(body["kind"], "FlowRun");
  EXPECT_EQ(body["metadata"]["name"], "run1");

  DeleteOptions d;
  d.propagation_policy = "Background";
  d.precondition_uid = "u1";
  ASSERT_TRUE((*c)->Delete(resources::Jobs(), "ns", "j", d).ok());
  json del = json::parse(t->requests.back().body);
  EXPECT_EQ(t->requests.back().method, "DELETE");
  EXPECT_EQ(del["propagationPolicy"], "Background");
  EXPECT_EQ(del["preconditions"]["uid"], "u1");

  ListOptions lo;
  lo.label_selector = "a=b,c in (d)";
  lo.limit = 500;
  lo.continue_token = "tok/+=";
  ASSERT_TRUE((*c)->List(resources::Pods(), "", lo).ok());
  EXPECT_EQ(t->requests.back().url,
            "https://fake:6443/api/v1/pods?labelSelector=a%3Db%2Cc%20in%20%28d%29&limit=500&continue=tok%2F%2B%3D");

  ASSERT_TRUE((*c)->MergePatch(resources::Leases(), "ns", "l", {{"spec", {{"x", 1}}}}).ok());
  EXPECT_EQ(Header(t->requests.back(), "Content-Type"), "application/merge-patch+json");
}

TEST(FakeClientTest, WatchDecodesEventsAndGone) {
  auto t = std::make_shared<FakeTransport>();
  auto c = NewKubeClientWithTransport(FakeConfig(), {}, t);
  ASSERT_TRUE(c.ok());
  // Events, a bookmark, then the stream ends: OK with the bookmark's RV.
  t->replies.push_back({200,
                        R"({"type":"ADDED","object":{"metadata":{"name":"a","resourceVersion":"5"}}})"
                        "\n\n"
                        R"({"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"9"}}})"
                        "\n",
                        {}});
  std::vector<std::string> types;
  WatchOptions wo;
  wo.resource_version = "3";
  wo.timeout = std::chrono::seconds(42);
  auto rv = (*c)->Watch(resources::ConfigMaps(), "ns", wo, [&](const WatchEvent& e) { types.push_back(e.type); return true; }, nullptr);
  ASSERT_TRUE(rv.ok()) << rv.status();
  EXPECT_EQ(*rv, "9");
  EXPECT_EQ(types, (std::vector<std::string>{"ADDED", "BOOKMARK"}));
  EXPECT_EQ(t->requests.back().url,
            "https://fake:6443/api/v1/namespaces/ns/configmaps?watch=1&resourceVersion=3&allowWatchBookmarks=true&timeoutSeconds=42");
  EXPECT_GT(t->requests.back().timeout, std::chrono::seconds(42)) << "idle timeout above the watch timeout";

  // 410 as an ERROR event.
  t->replies.push_back({200, R"({"type":"ERROR","object":{"kind":"Status","code":410,"reason":"Expired","message":"too old"}})" "\n", {}});
  auto gone = (*c)->Watch(resources::ConfigMaps(), "ns", wo, [](const WatchEvent&) { return true; }, nullptr);
  EXPECT_TRUE(IsGone(gone.status())) << gone.status();
  // 410 as the HTTP status.
  t->replies.push_back({410, R"({"kind":"Status","code":410,"reason":"Gone","message":"gone"})", {}});
  auto gone2 = (*c)->Watch(resources::ConfigMaps(), "ns", wo, [](const WatchEvent&) { return true; }, nullptr);
  EXPECT_TRUE(IsGone(gone2.status())) << gone2.status();
  // A line over max_event_bytes.
  t->replies.push_back({200, std::string(100, 'x') + "\n", {}});
  wo.max_event_bytes = 50;
  auto big = (*c)->Watch(resources::ConfigMaps(), "ns", wo, [](const WatchEvent&) { return true; }, nullptr);
  EXPECT_EQ(big.status().code(), StatusCode::kResourceExhausted);
}

TEST(FakeClientTest, TokenFileIsReReadAfter401) {
  TempDir d;
  std::string tf = d.Write("token", "old\n");
  ClusterConfig cfg = FakeConfig();
  cfg.bearer_token.clear();
  cfg.token_file = tf;
  auto t = std::make_shared<FakeTransport>();
  auto c = NewKubeClientWithTransport(cfg, {}, t);
  ASSERT_TRUE(c.ok());
  t->replies = {{200, "{}", {}}};
  ASSERT_TRUE((*c)->Raw("GET", "/version").ok());
  EXPECT_EQ(Header(t->requests.back(), "Authorization"), "Bearer old");
  d.Write("token", "new-rotated\n");  // the kubelet rotates it
  t->replies = {{401, R"({"kind":"Status","code":401,"reason":"Unauthorized"})", {}}, {200, "{}", {}}};
  ASSERT_TRUE((*c)->Raw("GET", "/version").ok());
  EXPECT_EQ(Header(t->requests.back(), "Authorization"), "Bearer new-rotated");
}

}  // namespace
}  // namespace flowrun::kube
