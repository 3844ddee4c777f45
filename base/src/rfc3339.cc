#include "flowrun/rfc3339.h"

#include <cctype>
#include <cstdint>
#include <cstdio>
#include <ctime>

namespace flowrun {

std::optional<std::chrono::system_clock::time_point> ParseTime(const std::string& text) {
  // YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)
  int Y, M, D, h, m, s;
  int consumed = 0;
  if (text.size() < 20) return std::nullopt;
  if (std::sscanf(text.c_str(), "%4d-%2d-%2d%*1[Tt ]%2d:%2d:%2d%n", &Y, &M, &D, &h, &m, &s, &consumed) != 6 ||
      consumed != 19)
    return std::nullopt;
  if (M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || s > 60) return std::nullopt;
  size_t i = 19;
  std::chrono::nanoseconds frac{0};
  if (i < text.size() && text[i] == '.') {
    ++i;
    int64_t ns = 0;
    int digits = 0;
    while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
      if (digits < 9) {
        ns = ns * 10 + (text[i] - '0');
        ++digits;
      }
      ++i;
    }
    if (digits == 0) return std::nullopt;
    for (int d = digits; d < 9; ++d) ns *= 10;
    frac = std::chrono::nanoseconds(ns);
  }
  int offset_minutes = 0;
  if (i < text.size() && (text[i] == 'Z' || text[i] == 'z')) {
    ++i;
  } else if (i + 6 == text.size() && (text[i] == '+' || text[i] == '-') && text[i + 3] == ':') {
    int oh = 0, om = 0;
    if (std::sscanf(text.c_str() + i + 1, "%2d:%2d", &oh, &om) != 2) return std::nullopt;
    offset_minutes = (oh * 60 + om) * (text[i] == '-' ? -1 : 1);
    i += 6;
  } else {
    return std::nullopt;
  }
  if (i != text.size()) return std::nullopt;
  std::tm tm{};
  tm.tm_year = Y - 1900;
  tm.tm_mon = M - 1;
  tm.tm_mday = D;
  tm.tm_hour = h;
  tm.tm_min = m;
  tm.tm_sec = s;
  std::time_t t = timegm(&tm);
  auto tp = std::chrono::system_clock::from_time_t(t) - std::chrono::minutes(offset_minutes);
  return tp + std::chrono::duration_cast<std::chrono::system_clock::duration>(frac);
}

namespace {

// `digits` fractional digits (0: none), truncated toward the past.
std::string Format(std::chrono::system_clock::time_point t, int digits) {
  auto secs = std::chrono::floor<std::chrono::seconds>(t);
  std::time_t tt = std::chrono::system_clock::to_time_t(secs);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[48];
  size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  if (digits > 0) {
    int64_t scale = 1;
    for (int d = 0; d < digits; ++d) scale *= 10;
    auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t - secs).count();  // in [0, 1e9)
    int64_t frac = ns / (1000000000 / scale);
    n += std::snprintf(buf + n, sizeof buf - n, ".%0*lld", digits, static_cast<long long>(frac));
  }
  std::snprintf(buf + n, sizeof buf - n, "Z");
  return buf;
}

}  // namespace

std::string FormatTime(std::chrono::system_clock::time_point t) { return Format(t, 0); }
std::string FormatTimeMillis(std::chrono::system_clock::time_point t) { return Format(t, 3); }
std::string FormatTimeMicros(std::chrono::system_clock::time_point t) { return Format(t, 6); }

}  // namespace flowrun
