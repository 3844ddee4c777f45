// FakeLlm runs tests/support/fake_llm_server.py, a deterministic
// OpenAI-compatible chat-completions server, as a child process on
// 127.0.0.1 and talks to its admin API.
//
// Point the code under test at base_url() ("http://127.0.0.1:N/v1") and
// api_key(). A chat request answers "reply to: <last user message>"
// (truncated to 200 chars) with deterministic usage:
//   prompt_tokens     = (sum of all message content lengths) / 4 + 1
//   completion_tokens = content length / 4 + 1
//   cached_tokens     = 0
// unless overridden through Configure(). See the script's docstring for the
// full wire contract.
//
// Ownership: the object owns the python process and a temp directory; the
// destructor sends SIGTERM, waits up to 5 s, then SIGKILLs, and removes the
// directory. The process also gets SIGTERM when the thread that called
// Start() exits (parent-death signal), so start it from a thread that
// outlives it, normally the main thread.
//
// Thread safety: every method may be called concurrently; each admin call is
// an independent HTTP request and the server serialises its state.
//
// Errors: Start() throws std::runtime_error if python3 is missing, the script
// fails, or no port file appears within 10 s (the message has its output).
// Admin calls throw std::runtime_error on connection failure or a non-2xx
// answer.
#ifndef FLOWRUN_TESTS_SUPPORT_FAKE_LLM_H_
#define FLOWRUN_TESTS_SUPPORT_FAKE_LLM_H_

#include <cstdint>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "support/child_process.h"

namespace flowrun::testing {

class FakeLlm {
 public:
  // Starts the server. With a non-empty api_key, chat requests must carry
  // "Authorization: Bearer <api_key>" (else 401).
  static std::unique_ptr<FakeLlm> Start(std::string api_key = "");

  FakeLlm(const FakeLlm&) = delete;
  FakeLlm& operator=(const FakeLlm&) = delete;
  ~FakeLlm();

  // OpenAI base URL, "http://127.0.0.1:N/v1" (append "/chat/completions").
  std::string base_url() const;
  int port() const { return port_; }
  const std::string& api_key() const { return api_key_; }

  // {"total", "succeeded", "failed", "by_prompt": {prompt: n}, "by_model":
  // {model: n}}. total counts every chat request, including failed ones;
  // by_prompt/by_model count successful ones only.
  nlohmann::json Stats();
  // Successful chat requests whose last user message was exactly `prompt`.
  int64_t CountForPrompt(const std::string& prompt);
  // Successful chat requests for `model`.
  int64_t CountForModel(const std::string& model);
  // All chat requests received (successful and failed).
  int64_t Total();
  // Chat requests answered with an error (injected, 401 or malformed).
  int64_t Failed();
  // The last (up to 200) chat request bodies, oldest first:
  // [{"body": {...}, "authorization_present": bool}, ...].
  nlohmann::json Requests();

  // Zeroes the counters, forgets requests and clears all configuration.
  void Reset();
  // Merges `config` into the server's configuration and returns the result.
  // Keys: fail_next (int), fail_status (int, default 500), retry_after
  // (seconds, sent as Retry-After on injected failures), latency_ms (applied
  // to every model request), chunk_delay_ms (between streamed events), usage
  // {prompt_tokens, completion_tokens, cached_tokens, cache_creation_tokens}
  // (null removes an override). Unknown keys are rejected. (The server also
  // streams, and serves /v1/responses, /v1/embeddings and Anthropic's
  // /v1/messages for the Python SDK's tests; the counters above then count
  // those requests too: see the script's docstring.)
  nlohmann::json Configure(const nlohmann::json& config);

 private:
  FakeLlm(std::unique_ptr<ChildProcess> process, std::string dir, int port, std::string api_key);

  // One admin request; returns the parsed JSON body.
  nlohmann::json Admin(const std::string& method, const std::string& path,
                       const nlohmann::json* body);

  std::unique_ptr<ChildProcess> process_;
  const std::string dir_;  // temp dir holding the port file
  const int port_;
  const std::string api_key_;
};

}  // namespace flowrun::testing

#endif  // FLOWRUN_TESTS_SUPPORT_FAKE_LLM_H_
