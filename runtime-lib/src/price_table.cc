#include "flowrun/price_table.h"

#include <fstream>
#include <sstream>

#include <yaml-cpp/yaml.h>

namespace flowrun {

namespace {

// yaml-cpp's non-const operator[] inserts missing keys: read through const refs only.
StatusOr<double> ReadPrice(const YAML::Node& entry, const char* key, const std::string& where,
                           std::optional<double> fallback) {
  const YAML::Node& v = entry[key];
  if (!v) {
    if (fallback) return *fallback;
    return InvalidArgument(where + ": missing '" + key + "' (USD per million tokens)");
  }
  try {
    double d = v.as<double>();
    if (!(d >= 0)) return InvalidArgument(where + ": '" + key + "' must be a non-negative number");
    return d;
  } catch (const YAML::Exception&) {
    return InvalidArgument(where + ": '" + key + "' is not a number");
  }
}

}  // namespace

StatusOr<PriceTable> PriceTable::LoadFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return InvalidArgument("price table " + path + ": cannot be read");
  std::stringstream ss;
  ss << in.rdbuf();
  return Parse(ss.str(), path);
}

StatusOr<PriceTable> PriceTable::Parse(const std::string& yaml_text, const std::string& source) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    return InvalidArgument("price table " + source + " does not parse: " + e.what());
  }
  const YAML::Node& croot = root;
  if (!croot.IsMap()) return InvalidArgument("price table " + source + ": expected a mapping with key 'models'");
  const YAML::Node& models = croot["models"];
  if (!models || !models.IsMap())
    return InvalidArgument("price table " + source + ": 'models' must be a mapping of model name to prices");
  PriceTable table;
  for (const auto& kv : models) {
    std::string model;
    try {
      model = kv.first.as<std::string>();
    } catch (const YAML::Exception&) {
      return InvalidArgument("price table " + source + ": a model name is not a string");
    }
    std::string where = "price table " + source + ", model '" + model + "'";
    const YAML::Node& entry = kv.second;
    if (!entry.IsMap()) return InvalidArgument(where + ": expected {input, output, cached_input}");
    ModelPrice p;
    FLOWRUN_ASSIGN_OR_RETURN(p.input_per_million, ReadPrice(entry, "input", where, std::nullopt));
    FLOWRUN_ASSIGN_OR_RETURN(p.output_per_million, ReadPrice(entry, "output", where, std::nullopt));
    FLOWRUN_ASSIGN_OR_RETURN(p.cached_input_per_million,
                             ReadPrice(entry, "cached_input", where, p.input_per_million));
    table.prices_[model] = p;
  }
  return table;
}

std::optional<std::pair<std::string, ModelPrice>> PriceTable::Find(const std::string& model) const {
  if (auto it = prices_.find(model); it != prices_.end()) return *it;
  const std::pair<const std::string, ModelPrice>* best = nullptr;
  for (const auto& kv : prices_) {
    const std::string& pattern = kv.first;
    if (pattern.empty() || pattern.back() != '*') continue;
    std::string_view prefix(pattern.data(), pattern.size() - 1);
    if (model.compare(0, prefix.size(), prefix) == 0 &&
        (best == nullptr || pattern.size() > best->first.size()))
      best = &kv;
  }
  if (best) return *best;
  return std::nullopt;
}

PricedLlmCall PriceTable::Price(const LlmCall& call) const {
  PricedLlmCall priced{call, std::nullopt, "unknown"};
  if (call.cost_usd) {
    priced.cost_usd = call.cost_usd;
    priced.price_source = "reported";
    return priced;
  }
  if (auto found = Find(call.model)) {
    const ModelPrice& p = found->second;
    int64_t cached = std::min(call.cached_tokens, call.input_tokens);
    double usd = (static_cast<double>(call.input_tokens - cached) * p.input_per_million +
                  static_cast<double>(cached) * p.cached_input_per_million +
                  static_cast<double>(call.output_tokens) * p.output_per_million) / 1e6;
    priced.cost_usd = usd;
    priced.price_source = "price-table:" + found->first;
  }
  return priced;
}

}  // namespace flowrun
