// Lenient readers of JSON objects whose shape flowrun does not control (API
// objects, termination messages, config): a missing or mistyped field reads
// as absent, never throws, and nothing is copied but the value returned. The
// one copy: the runtime, the controller core, the Kubernetes client, the
// adapters and the metrics use these instead of their own.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace flowrun {

// o[key], or a null value when `o` is not an object or has no such key.
inline const nlohmann::json& JsonField(const nlohmann::json& o, const char* key) {
  static const nlohmann::json kNull;
  if (!o.is_object()) return kNull;
  auto it = o.find(key);
  return it == o.end() ? kNull : *it;
}

// o[key] when it is a string, else "".
inline std::string JsonString(const nlohmann::json& o, const char* key) {
  const nlohmann::json& f = JsonField(o, key);
  return f.is_string() ? f.get<std::string>() : std::string();
}

// o[key][sub] when it is a string, else "": one level down, the shape of
// Kubernetes objects (JsonString(obj, "metadata", "name")).
inline std::string JsonString(const nlohmann::json& o, const char* key, const char* sub) {
  return JsonString(JsonField(o, key), sub);
}

// o[key] when it is an integer (or a float with an exact integer value, as
// YAML and JavaScript clients write them), else `fallback`.
inline int64_t JsonInt(const nlohmann::json& o, const char* key, int64_t fallback = 0) {
  const nlohmann::json& f = JsonField(o, key);
  if (f.is_number_integer()) return f.get<int64_t>();
  if (f.is_number_float()) {
    double d = f.get<double>();
    if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9e15) return static_cast<int64_t>(d);
  }
  return fallback;
}

// o[key] when it is a number, else `fallback`.
inline double JsonNumber(const nlohmann::json& o, const char* key, double fallback = 0) {
  const nlohmann::json& f = JsonField(o, key);
  return f.is_number() ? f.get<double>() : fallback;
}

}  // namespace flowrun
