// PriceTable: USD per million tokens, per model, from a YAML file.
//
//   models:
//     gpt-4o-mini: {input: 0.15, output: 0.60, cached_input: 0.075}
//     claude-sonnet-4: {input: 3.00, output: 15.00}
//
// cached_input defaults to input. A model name may end in "*" to match a
// prefix (the longest match wins). Immutable after load; thread-safe to read.
#pragma once

#include <map>
#include <optional>
#include <string>

#include "flowrun/llm_usage.h"
#include "flowrun/status.h"

namespace flowrun {

struct ModelPrice {
  double input_per_million = 0;
  double output_per_million = 0;
  double cached_input_per_million = 0;
};

class PriceTable {
 public:
  PriceTable() = default;  // empty: every model is unknown
  static StatusOr<PriceTable> LoadFile(const std::string& path);
  static StatusOr<PriceTable> Parse(const std::string& yaml_text, const std::string& source_name);

  // The entry for `model`, exact match first, then the longest prefix pattern.
  std::optional<std::pair<std::string, ModelPrice>> Find(const std::string& model) const;

  // Prices a call: the reported cost if given, else the table's, else unknown.
  PricedLlmCall Price(const LlmCall& call) const;

  size_t size() const { return prices_.size(); }

 private:
  std::map<std::string, ModelPrice> prices_;
};

}  // namespace flowrun
