// RFC 3339 timestamps, as Kubernetes (metav1.Time) and flowrun's termination
// message write them. The one implementation in flowrun: the runtime, the
// controller core and the Kubernetes client all use it.
#pragma once

#include <chrono>
#include <optional>
#include <string>

namespace flowrun {

// "2026-11-26T10:06:27Z", optionally with fractional seconds or a numeric
// offset ("+02:00"). nullopt for anything else (never throws).
std::optional<std::chrono::system_clock::time_point> ParseTime(const std::string& text);
// Second precision (the fraction is dropped), UTC, "Z".
std::string FormatTime(std::chrono::system_clock::time_point t);

}  // namespace flowrun
