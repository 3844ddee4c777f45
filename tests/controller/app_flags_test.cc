// Flags → the core's ControllerConfig (controller/app/flags.h) and the health
// server's endpoints (health_server.h).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <algorithm>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <gtest/gtest.h>

#include "flowrun/controller/app/flags.h"
#include "flowrun/controller/app/health_server.h"

namespace {

using namespace flowrun;
using namespace flowrun::controller;
using namespace flowrun::controller::app;

TEST(AppFlags, ParseSecretRef) {
  EXPECT_FALSE(ParseSecretRef("", "url"));
  auto a = ParseSecretRef("db", "url");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->name, "db");
  EXPECT_EQ(a->key, "url");
  auto b = ParseSecretRef("openai/token", "api-key");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->name, "openai");
  EXPECT_EQ(b->key, "token");
}

TEST(AppFlags, ToControllerConfig) {
  Flags f;
  f.database_secret = "pg/conn";
  f.openai_api_key_secret = "openai";
  f.retention = "keep";
  f.run_as_user = 1000;
  f.pod_start_grace_seconds = 30;
  f.ns = "team-a";
  ControllerConfig c = ToControllerConfig(f);
  EXPECT_EQ(c.database_secret.name, "pg");
  EXPECT_EQ(c.database_secret.key, "conn");
  ASSERT_TRUE(c.openai_api_key_secret);
  EXPECT_EQ(c.openai_api_key_secret->key, "api-key");
  EXPECT_EQ(c.retention, Retention::kKeep);
  EXPECT_EQ(c.run_as_user, 1000);
  EXPECT_EQ(c.pod_start_grace, std::chrono::seconds(30));
  EXPECT_EQ(c.default_namespace, "team-a");

  ControllerConfig d = ToControllerConfig(Flags{});
  EXPECT_EQ(d.database_secret.name, "flowrun-database");
  EXPECT_EQ(d.database_secret.key, "url");
  EXPECT_FALSE(d.openai_api_key_secret);
  EXPECT_EQ(d.retention, Retention::kDelete);
  EXPECT_FALSE(d.run_as_user);
}

TEST(AppFlags, AddFlagsParsesAndChecks) {
  Flags f;
  CLI::App cli;
  AddFlags(cli, f);
  std::vector<std::string> args = {"--retention", "keep", "--workers", "3", "--namespace", "team-a", "--leader-elect"};
  std::reverse(args.begin(), args.end());  // CLI11 takes them last-first
  ASSERT_NO_THROW(cli.parse(args));
  EXPECT_EQ(f.retention, "keep");
  EXPECT_EQ(f.workers, 3);
  EXPECT_EQ(f.ns, "team-a");
  EXPECT_TRUE(f.leader_elect);
  EXPECT_EQ(f.log_level, "info");  // default kept

  Flags g;
  CLI::App cli2;
  AddFlags(cli2, g);
  std::vector<std::string> bad = {"sometimes", "--retention"};
  EXPECT_THROW(cli2.parse(bad), CLI::ValidationError);
  Flags h;
  CLI::App cli3;
  AddFlags(cli3, h);
  std::vector<std::string> zero = {"0", "--workers"};
  EXPECT_THROW(cli3.parse(zero), CLI::ValidationError);
}

// One request on a fresh connection; returns the status line.
std::string StatusLine(int port, const std::string& path) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
  if (connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    close(fd);
    return "connect failed";
  }
  std::string req = "GET " + path + " HTTP/1.0\r\n\r\n";
  (void)!send(fd, req.data(), req.size(), MSG_NOSIGNAL);
  std::string resp;
  char buf[512];
  ssize_t n;
  while ((n = recv(fd, buf, sizeof buf, 0)) > 0) resp.append(buf, static_cast<size_t>(n));
  close(fd);
  return resp.substr(0, resp.find("\r\n"));
}

TEST(AppHealthServer, EndpointsFollowReadiness) {
  std::atomic<bool> ready{false};
  HealthServer hs([&] { return ready.load(); });
  ASSERT_TRUE(hs.Start("127.0.0.1:0").ok());
  ASSERT_GT(hs.port(), 0);
  EXPECT_EQ(StatusLine(hs.port(), "/healthz"), "HTTP/1.0 200 OK");
  EXPECT_EQ(StatusLine(hs.port(), "/readyz"), "HTTP/1.0 503 Service Unavailable");
  ready = true;
  EXPECT_EQ(StatusLine(hs.port(), "/readyz"), "HTTP/1.0 200 OK");
  EXPECT_EQ(StatusLine(hs.port(), "/nope"), "HTTP/1.0 404 Not Found");
  hs.Stop();
  hs.Stop();  // idempotent
}

TEST(AppHealthServer, BadAddressIsInvalidArgument) {
  HealthServer hs([] { return true; });
  EXPECT_EQ(hs.Start("no-port").code(), StatusCode::kInvalidArgument);
  HealthServer hs2([] { return true; });
  EXPECT_EQ(hs2.Start("not-an-ip:0").code(), StatusCode::kInvalidArgument);
}

}  // namespace
