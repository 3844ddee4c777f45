#include "flowrun/llm_client.h"

#include <algorithm>

namespace flowrun {

LlmClient::LlmClient(LlmClientOptions options, HttpTransport* transport, Clock* clock, LlmCallSink* sink)
    : options_(std::move(options)), transport_(transport), clock_(clock), sink_(sink) {
  while (!options_.base_url.empty() && options_.base_url.back() == '/') options_.base_url.pop_back();
}

std::string LlmClient::chat(const std::string& prompt) {
  ChatRequest req;
  req.messages.push_back({"user", prompt});
  return Chat(req).content;
}

ChatResponse LlmClient::Chat(const ChatRequest& request) {
  ChatRequest req = request;
  if (req.model.empty()) req.model = options_.default_model;
  // May end the process (budget); records the call as started otherwise.
  int64_t token = sink_ ? sink_->BeforeLlmCall(req.model, EstimateInputTokens(req)) : 0;

  std::chrono::milliseconds backoff = options_.initial_backoff;
  Status last;
  for (int attempt = 1; attempt <= options_.max_attempts; ++attempt) {
    std::chrono::milliseconds retry_after{0};
    auto started = clock_->MonotonicNow();
    StatusOr<ChatResponse> resp = SendOnce(req, &retry_after);
    if (resp.ok()) {
      resp->usage.latency =
          std::chrono::duration_cast<std::chrono::milliseconds>(clock_->MonotonicNow() - started);
      if (sink_) sink_->AfterLlmCall(token, resp->usage);
      return std::move(resp).value();
    }
    last = resp.status();
    bool transient = last.code() == StatusCode::kUnavailable ||
                     last.code() == StatusCode::kDeadlineExceeded ||
                     last.code() == StatusCode::kResourceExhausted;
    if (!transient || attempt == options_.max_attempts) break;
    clock_->SleepFor(std::max(backoff, retry_after));
    backoff *= 2;
  }
  if (sink_) sink_->LlmCallFailed(token, last);
  throw LlmError(last);
}

int64_t EstimateInputTokens(const ChatRequest& request) {
  size_t chars = 0;
  for (const auto& m : request.messages) chars += m.content.size() + m.role.size();
  return static_cast<int64_t>((chars + 3) / 4) + 3 * static_cast<int64_t>(request.messages.size());
}

StatusOr<ChatResponse> LlmClient::SendOnce(const ChatRequest& req, std::chrono::milliseconds* retry_after) {
  nlohmann::json body = req.extra.is_object() ? req.extra : nlohmann::json::object();
  body["model"] = req.model;
  body["messages"] = nlohmann::json::array();
  for (const auto& m : req.messages) body["messages"].push_back({{"role", m.role}, {"content", m.content}});
  if (req.temperature) body["temperature"] = *req.temperature;
  if (req.max_tokens) body["max_tokens"] = *req.max_tokens;

  HttpRequest http;
  http.method = "POST";
  http.url = options_.base_url + "/chat/completions";
  http.timeout = options_.request_timeout;
  http.headers.emplace_back("Content-Type", "application/json");
  if (!options_.api_key.empty()) http.headers.emplace_back("Authorization", "Bearer " + options_.api_key);
  http.body = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);

  FLOWRUN_ASSIGN_OR_RETURN(HttpResponse resp, transport_->Send(http));
  if (resp.status != 200) {
    std::string detail = resp.body.substr(0, 500);
    auto err = nlohmann::json::parse(resp.body, nullptr, false);
    if (!err.is_discarded() && err.contains("error") && err["error"].is_object() &&
        err["error"].contains("message") && err["error"]["message"].is_string())
      detail = err["error"]["message"].get<std::string>();
    std::string msg = "chat completion returned HTTP " + std::to_string(resp.status) + ": " + detail;
    if (resp.status == 429) {
      std::string ra = resp.Header("Retry-After");
      if (!ra.empty()) {
        try { *retry_after = std::chrono::seconds(std::stoi(ra)); } catch (...) {}
      }
      return ResourceExhausted(msg);
    }
    if (resp.status >= 500) return Unavailable(msg);
    return InvalidArgument(msg);
  }
  auto j = nlohmann::json::parse(resp.body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Unavailable("chat completion returned invalid JSON");
  ChatResponse out;
  out.raw = j;
  out.model = j.value("model", req.model);
  try {
    const auto& choice = j.at("choices").at(0);
    const auto& content = choice.at("message").at("content");
    out.content = content.is_string() ? content.get<std::string>() : content.dump();
    out.finish_reason = choice.value("finish_reason", "");
  } catch (const nlohmann::json::exception&) {
    return Unavailable("chat completion response has no choices[0].message.content");
  }
  out.usage.model = out.model;
  if (j.contains("usage") && j["usage"].is_object()) {
    const auto& u = j["usage"];
    out.usage.input_tokens = u.value("prompt_tokens", int64_t{0});
    out.usage.output_tokens = u.value("completion_tokens", int64_t{0});
    if (u.contains("prompt_tokens_details") && u["prompt_tokens_details"].is_object())
      out.usage.cached_tokens = u["prompt_tokens_details"].value("cached_tokens", int64_t{0});
  }
  return out;
}

}  // namespace flowrun
