// The read API's HTTPS transport with real certificates (openssl) and a real
// client (curl): the front-proxy client certificate is the only thing that
// makes X-Remote-* headers count — no certificate, one from another CA, or an
// unlisted CN, and a forged X-Remote-User gets 401; the serving certificate
// and the client CA are reloaded when they change.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <thread>

#include <nlohmann/json.hpp>

#include "flowrun/query/api_status.h"
#include "flowrun/query/authentication.h"
#include "flowrun/query/tls_server.h"
#include "support/eventually.h"

namespace flowrun::query {
namespace {

std::string Shell(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  pclose(p);
  return out;
}

class Pki {
 public:
  Pki() {
    char tmpl[] = "/tmp/flowrun-query-tls.XXXXXX";
    dir = mkdtemp(tmpl);
    Ca("serving-ca");
    Ca("proxy-ca");
    Ca("rogue-ca");
    Issue("serving", "serving-ca", "/CN=flowrun-query", "serverAuth", "subjectAltName=IP:127.0.0.1,DNS:localhost");
    Issue("proxy", "proxy-ca", "/CN=front-proxy-client", "clientAuth");
    Issue("proxy-other-cn", "proxy-ca", "/CN=someone-else", "clientAuth");
    Issue("rogue", "rogue-ca", "/CN=front-proxy-client", "clientAuth");
  }
  ~Pki() { Shell("rm -rf '" + dir + "'"); }
  void Ca(const std::string& name) {
    Sh("openssl ecparam -name prime256v1 -genkey -noout -out " + name + ".key && openssl req -x509 -new -key " + name +
       ".key -sha256 -days 2 -subj /CN=" + name +
       " -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign -out " + name + ".crt");
  }
  void Issue(const std::string& name, const std::string& ca, const std::string& subj, const std::string& eku,
             const std::string& extra = "") {
    std::ofstream(dir + "/" + name + ".ext") << "basicConstraints=critical,CA:FALSE\n"
                                                "keyUsage=critical,digitalSignature,keyEncipherment\n"
                                                "extendedKeyUsage=" << eku << "\n" << extra << "\n";
    Sh("openssl ecparam -name prime256v1 -genkey -noout -out " + name + ".key && openssl req -new -key " + name +
       ".key -subj " + subj + " -out " + name + ".csr && openssl x509 -req -in " + name + ".csr -CA " + ca +
       ".crt -CAkey " + ca + ".key -set_serial 0x$(openssl rand -hex 8) -days 2 -sha256 -extfile " + name +
       ".ext -out " + name + ".crt");
  }
  void Sh(const std::string& cmd) {
    ASSERT_EQ(std::system(("cd '" + dir + "' && (" + cmd + ") >/dev/null 2>&1").c_str()), 0) << cmd;
  }
  std::string Read(const std::string& file) const {
    std::ifstream f(dir + "/" + file);
    return std::string(std::istreambuf_iterator<char>(f), {});
  }
  std::string dir;
};

class TlsServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config.client_ca_pem = pki.Read("proxy-ca.crt");
    config.allowed_names = {"front-proxy-client"};
    TlsServerOptions o;
    o.addr = "127.0.0.1:0";
    o.cert_file = pki.dir + "/serving.crt";
    o.key_file = pki.dir + "/serving.key";
    o.reload_interval = std::chrono::seconds(1);
    o.client_ca_pem = [this] { return Config().client_ca_pem; };
    o.handler = [this](const HttpRequest& req, const std::optional<std::string>& cn) {
      auto who = Authenticate(Config(), cn, req);
      if (!who.ok()) return StatusResponse(who.status());
      HttpResponse r;
      r.body = nlohmann::json{{"user", who->user}, {"groups", who->groups}, {"path", req.path}, {"query", req.query}}.dump();
      return r;
    };
    server = std::make_unique<TlsServer>(std::move(o));
    ASSERT_TRUE(server->Start().ok());
  }

  // curl's status code and body; cert "" = no client certificate.
  std::pair<int, std::string> Curl(const std::string& cert, const std::string& path = "/apis/x?a=1&b=two%20words",
                                   const std::string& ca = "serving-ca.crt", const std::string& extra = "") {
    std::string cmd = "curl -sS --max-time 20 -o - -w '\\n%{http_code}' --cacert '" + pki.dir + "/" + ca + "' ";
    if (!cert.empty()) cmd += "--cert '" + pki.dir + "/" + cert + ".crt' --key '" + pki.dir + "/" + cert + ".key' ";
    cmd += "-H 'X-Remote-User: alice' -H 'X-Remote-Group: team-a' -H 'X-Remote-Group: system:authenticated' " + extra +
           " 'https://127.0.0.1:" + std::to_string(server->port()) + path + "' 2>&1";
    std::string out = Shell(cmd);
    auto nl = out.rfind('\n');
    if (nl == std::string::npos) return {0, out};
    return {std::atoi(out.c_str() + nl + 1), out.substr(0, nl)};
  }

  RequestHeaderConfig Config() {
    std::lock_guard<std::mutex> l(mu);
    return config;
  }
  void SetClientCa(const std::string& pem) {
    std::lock_guard<std::mutex> l(mu);
    config.client_ca_pem = pem;
  }

  Pki pki;
  std::mutex mu;
  RequestHeaderConfig config;  // guarded by mu once the server runs
  std::unique_ptr<TlsServer> server;
};

TEST_F(TlsServerTest, OnlyTheVerifiedFrontProxyMayNameTheUser) {
  auto [code, body] = Curl("proxy");
  ASSERT_EQ(code, 200) << body;
  auto j = nlohmann::json::parse(body);
  EXPECT_EQ(j["user"], "alice");
  EXPECT_EQ(j["groups"], nlohmann::json({"team-a", "system:authenticated"}));
  EXPECT_EQ(j["query"]["b"], "two words");

  auto anonymous = Curl("");
  EXPECT_EQ(anonymous.first, 401) << anonymous.second;
  EXPECT_EQ(nlohmann::json::parse(anonymous.second)["reason"], "Unauthorized");
  auto rogue = Curl("rogue");
  EXPECT_EQ(rogue.first, 401) << "same CN, other CA: " << rogue.second;
  auto other_cn = Curl("proxy-other-cn");
  EXPECT_EQ(other_cn.first, 401) << other_cn.second;
  EXPECT_NE(other_cn.second.find("not a requestheader allowed name"), std::string::npos) << other_cn.second;
}

TEST_F(TlsServerTest, KeepAliveHeadAndBounds) {
  // Two requests on one connection (curl reuses it).
  std::string out = Shell("curl -sS --max-time 20 -w '%{http_code} %{num_connects}\\n' --cacert '" + pki.dir +
                        "/serving-ca.crt' --cert '" + pki.dir + "/proxy.crt' --key '" + pki.dir +
                        "/proxy.key' -H 'X-Remote-User: bob' -o /dev/null 'https://127.0.0.1:" +
                        std::to_string(server->port()) + "/a' -o /dev/null 'https://127.0.0.1:" +
                        std::to_string(server->port()) + "/b' 2>&1");
  EXPECT_EQ(out, "200 1\n200 0\n") << "the second request reused the connection";
  auto head = Shell("curl -sS -I --max-time 20 --cacert '" + pki.dir + "/serving-ca.crt' 'https://127.0.0.1:" +
                  std::to_string(server->port()) + "/x' 2>&1");
  EXPECT_NE(head.find("HTTP/1.1 401"), std::string::npos) << head;
  auto huge = Curl("proxy", "/x", "serving-ca.crt", "-H 'X-Big: " + std::string(70000, 'a') + "'");
  EXPECT_EQ(huge.first, 431) << huge.second.substr(0, 200);
}

TEST_F(TlsServerTest, RotatedServingCertificateAndClientCaAreReloaded) {
  pki.Ca("serving-ca-2");
  pki.Issue("serving-2", "serving-ca-2", "/CN=flowrun-query", "serverAuth", "subjectAltName=IP:127.0.0.1");
  pki.Sh("cp serving-2.key serving.key.new && cp serving-2.crt serving.crt.new && mv serving.key.new serving.key && "
         "mv serving.crt.new serving.crt");
  int code = 0;
  flowrun::testing::Eventually([&] { return (code = Curl("proxy", "/x", "serving-ca-2.crt").first) == 200; });
  EXPECT_EQ(code, 200) << "the new serving certificate is used";
  // A new requestheader CA: the old proxy certificate stops counting.
  pki.Ca("proxy-ca-2");
  pki.Issue("proxy-2", "proxy-ca-2", "/CN=front-proxy-client", "clientAuth");
  SetClientCa(pki.Read("proxy-ca-2.crt"));
  code = 0;
  flowrun::testing::Eventually([&] { return (code = Curl("proxy-2", "/x", "serving-ca-2.crt").first) == 200; });
  EXPECT_EQ(code, 200);
  EXPECT_EQ(Curl("proxy", "/x", "serving-ca-2.crt").first, 401);
}

}  // namespace
}  // namespace flowrun::query
