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
// Second precision (the fraction is dropped), UTC, "Z":
// "2026-11-26T10:06:27Z" (metav1.Time, Event timestamps, flowrunctl).
std::string FormatTime(std::chrono::system_clock::time_point t);
// Millisecond precision, always three digits: "2026-11-26T10:06:27.042Z"
// (the "ts" of log lines, controller and agent alike).
std::string FormatTimeMillis(std::chrono::system_clock::time_point t);
// Microsecond precision, always six digits: "2026-11-26T10:06:27.042000Z"
// (metav1.MicroTime: Lease acquireTime / renewTime).
std::string FormatTimeMicros(std::chrono::system_clock::time_point t);
// All three truncate toward the past (never round up into the next second)
// and parse back with ParseTime.

}  // namespace flowrun
