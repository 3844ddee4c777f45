// LlmClient: an OpenAI-compatible chat-completions client that records every
// call's usage (model, tokens, latency) through an LlmCallSink — inside a
// flow, the Flow itself, which prices and stores it and enforces the budget.
//
// Transient failures (transport errors, 429 honouring Retry-After, 5xx) are
// retried with exponential backoff a bounded number of times. The API key is
// sent only in the Authorization header and never logged.
// Thread safety: Chat() may be called concurrently if the sink allows it.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "flowrun/clock.h"
#include "flowrun/http_transport.h"
#include "flowrun/llm_usage.h"
#include "flowrun/status.h"

namespace flowrun {

struct ChatMessage {
  std::string role;  // system, user, assistant
  std::string content;
};

struct ChatRequest {
  std::string model;  // "" = the client's default model
  std::vector<ChatMessage> messages;
  std::optional<double> temperature;
  std::optional<int> max_tokens;
  nlohmann::json extra = nlohmann::json::object();  // merged into the request body
};

struct ChatResponse {
  std::string content;
  std::string model;
  std::string finish_reason;
  LlmCall usage;
  nlohmann::json raw;  // the provider's full response
};

// Receives each call. BeforeLlmCall runs before the request is sent (the
// Flow checks the budget — and may end the process there — and records the
// call as started); it returns a token naming the call. Exactly one of
// AfterLlmCall (a response arrived, with its usage) or LlmCallFailed (no
// response after the client's retries) follows with that token, unless the
// process dies first. Any of them may throw; the client lets it propagate.
class LlmCallSink {
 public:
  virtual ~LlmCallSink() = default;
  virtual int64_t BeforeLlmCall(const std::string& model, int64_t estimated_input_tokens) = 0;
  virtual void AfterLlmCall(int64_t token, const LlmCall& call) = 0;
  virtual void LlmCallFailed(int64_t token, const Status& error) = 0;
};

// A rough count of the input tokens of `request` (about 4 characters a
// token), recorded with a started call before its usage is known.
int64_t EstimateInputTokens(const ChatRequest& request);

struct LlmClientOptions {
  std::string base_url = "https://api.openai.com/v1";
  std::string api_key;  // secret
  std::string default_model = "gpt-4o-mini";
  int max_attempts = 4;
  std::chrono::milliseconds initial_backoff{500};
  std::chrono::milliseconds request_timeout{120000};
};

// Thrown by LlmClient::Chat when the call finally fails. Inside a checkpoint
// this fails the checkpoint's try like any other exception.
class LlmError : public std::runtime_error {
 public:
  LlmError(Status status) : std::runtime_error(status.ToString()), status_(std::move(status)) {}
  const Status& status() const { return status_; }

 private:
  Status status_;
};

class LlmClient {
 public:
  // transport, clock and sink are not owned and must outlive the client; sink may be null.
  LlmClient(LlmClientOptions options, HttpTransport* transport, Clock* clock, LlmCallSink* sink);

  // The full request/response. Throws LlmError on final failure.
  ChatResponse Chat(const ChatRequest& request);
  // One user message with the default model; returns the reply's text.
  std::string chat(const std::string& prompt);

  const std::string& default_model() const { return options_.default_model; }

 private:
  StatusOr<ChatResponse> SendOnce(const ChatRequest& request, std::chrono::milliseconds* retry_after);

  LlmClientOptions options_;
  HttpTransport* transport_;
  Clock* clock_;
  LlmCallSink* sink_;
};

}  // namespace flowrun
