// One LLM call as flowrun records it, and what it cost.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace flowrun {

struct LlmCall {
  std::string model;
  int64_t input_tokens = 0;
  int64_t output_tokens = 0;
  int64_t cached_tokens = 0;  // part of input_tokens served from the provider's prompt cache
  std::chrono::milliseconds latency{0};
  // USD as reported by the caller. When empty, flowrun prices the call with
  // the price table; when the model is not in it, the cost stays unknown
  // (NULL in the database), never a silent zero.
  std::optional<double> cost_usd;
};

// A call after pricing: what is stored.
struct PricedLlmCall {
  LlmCall call;
  std::optional<double> cost_usd;
  std::string price_source;  // "reported", "price-table:<model>", or "unknown"
};

}  // namespace flowrun
