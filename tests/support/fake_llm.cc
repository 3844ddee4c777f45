#include "support/fake_llm.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <thread>

// Not exposed in the header; U() is turned off so headers included by users
// of this library's sources (gtest) are unaffected.
#define _TURN_OFF_PLATFORM_STRING
#include <cpprest/http_client.h>

#ifndef FLOWRUN_FAKE_LLM_SCRIPT
#error "FLOWRUN_FAKE_LLM_SCRIPT must be defined by the build (tests/support/CMakeLists.txt)"
#endif

namespace flowrun::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr auto kStartTimeout = seconds(10);
constexpr auto kAdminTimeout = seconds(10);

std::string MakeTempDir() {
  std::string base = "/tmp";
  if (const char* t = std::getenv("TMPDIR"); t != nullptr && *t != '\0') base = t;
  std::string templ = base + "/flowrun-fakellm-XXXXXX";
  if (mkdtemp(templ.data()) == nullptr) {
    throw std::runtime_error("FakeLlm: mkdtemp in " + base + ": " + std::strerror(errno));
  }
  return templ;
}

// The port file is written via rename, so a readable file is complete.
int ReadPortFile(const std::string& path) {
  std::ifstream in(path);
  int port = 0;
  if (in >> port && port > 0 && port < 65536) return port;
  return 0;
}

}  // namespace

std::unique_ptr<FakeLlm> FakeLlm::Start(std::string api_key) {
  std::string dir = MakeTempDir();
  std::string port_file = dir + "/port";
  std::vector<std::string> argv = {"python3", FLOWRUN_FAKE_LLM_SCRIPT, "--port", "0",
                                   "--port-file", port_file};
  if (!api_key.empty()) {
    argv.push_back("--api-key");
    argv.push_back(api_key);
  }
  ChildProcess::Options opts;
  opts.die_with_parent = true;
  opts.parent_death_signal = SIGTERM;
  std::unique_ptr<ChildProcess> process;
  try {
    // Unbuffered so a traceback reaches the capture file before a timeout.
    process = ChildProcess::Spawn(argv, {{"PYTHONUNBUFFERED", "1"}, {"PYTHONDONTWRITEBYTECODE", "1"}},
                                  opts);
  } catch (const std::exception& e) {
    std::filesystem::remove_all(dir);
    throw std::runtime_error(std::string("FakeLlm: cannot start python3: ") + e.what());
  }

  const auto deadline = std::chrono::steady_clock::now() + kStartTimeout;
  for (;;) {
    if (int port = ReadPortFile(port_file); port != 0) {
      return std::unique_ptr<FakeLlm>(
          new FakeLlm(std::move(process), dir, port, std::move(api_key)));
    }
    std::string problem;
    if (auto status = process->Wait(milliseconds(0))) {
      problem = "fake_llm_server.py exited (" + status->ToString() + ")";
    } else if (std::chrono::steady_clock::now() > deadline) {
      problem = "fake_llm_server.py wrote no port file within 10 s";
    }
    if (!problem.empty()) {
      std::string output = process->Output();
      process.reset();  // kills and reaps
      std::filesystem::remove_all(dir);
      throw std::runtime_error("FakeLlm: " + problem + "; output:\n" + output);
    }
    std::this_thread::sleep_for(milliseconds(20));
  }
}

FakeLlm::FakeLlm(std::unique_ptr<ChildProcess> process, std::string dir, int port,
                 std::string api_key)
    : process_(std::move(process)), dir_(std::move(dir)), port_(port), api_key_(std::move(api_key)) {}

FakeLlm::~FakeLlm() {
  process_->Kill(SIGTERM);
  process_->Wait(seconds(5));
  process_.reset();  // SIGKILLs if SIGTERM was not enough
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

std::string FakeLlm::base_url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/v1"; }

nlohmann::json FakeLlm::Admin(const std::string& method, const std::string& path,
                              const nlohmann::json* body) {
  namespace http = web::http;
  const std::string root = "http://127.0.0.1:" + std::to_string(port_);
  try {
    http::client::http_client_config cfg;
    cfg.set_timeout(kAdminTimeout);
    http::client::http_client client(utility::conversions::to_string_t(root), cfg);
    http::http_request req(utility::conversions::to_string_t(method));
    req.set_request_uri(utility::conversions::to_string_t(path));
    if (body != nullptr) {
      req.set_body(body->dump(), "application/json");
    }
    http::http_response resp = client.request(req).get();
    std::string text = resp.extract_utf8string(true).get();
    if (resp.status_code() < 200 || resp.status_code() >= 300) {
      throw std::runtime_error("HTTP " + std::to_string(resp.status_code()) + ": " + text);
    }
    return nlohmann::json::parse(text);
  } catch (const std::exception& e) {
    throw std::runtime_error("FakeLlm admin " + method + " " + root + path + " failed: " + e.what());
  }
}

nlohmann::json FakeLlm::Stats() { return Admin("GET", "/__fake/stats", nullptr); }

int64_t FakeLlm::CountForPrompt(const std::string& prompt) {
  return Stats()["by_prompt"].value(prompt, int64_t{0});
}

int64_t FakeLlm::CountForModel(const std::string& model) {
  return Stats()["by_model"].value(model, int64_t{0});
}

int64_t FakeLlm::Total() { return Stats()["total"].get<int64_t>(); }

int64_t FakeLlm::Failed() { return Stats()["failed"].get<int64_t>(); }

nlohmann::json FakeLlm::Requests() { return Admin("GET", "/__fake/requests", nullptr); }

void FakeLlm::Reset() { Admin("POST", "/__fake/reset", nullptr); }

nlohmann::json FakeLlm::Configure(const nlohmann::json& config) {
  return Admin("POST", "/__fake/config", &config);
}

}  // namespace flowrun::testing
