#include "flowrun/plugin/format.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "flowrun/money.h"
#include "flowrun/rfc3339.h"
#include "flowrun/utf8.h"

namespace flowrun::plugin {

std::string FormatAge(std::chrono::seconds age) {
  int64_t s = age.count();
  if (s < 0) s = 0;
  if (s < 120) return std::to_string(s) + "s";
  int64_t m = s / 60;
  if (m < 10) return std::to_string(m) + "m" + (s % 60 ? std::to_string(s % 60) + "s" : "");
  if (m < 180) return std::to_string(m) + "m";
  int64_t h = m / 60;
  if (h < 8) return std::to_string(h) + "h" + (m % 60 ? std::to_string(m % 60) + "m" : "");
  if (h < 48) return std::to_string(h) + "h";
  int64_t d = h / 24;
  if (d < 8) return std::to_string(d) + "d" + (h % 24 ? std::to_string(h % 24) + "h" : "");
  if (d < 730) return std::to_string(d) + "d";
  return std::to_string(d / 365) + "y";
}

std::string AgeOf(const std::string& rfc3339, TimePoint now) {
  if (rfc3339.empty()) return "";
  auto t = ParseTime(rfc3339);
  if (!t) return "<unknown>";
  return FormatAge(std::chrono::duration_cast<std::chrono::seconds>(now - *t));
}

std::string DeadlineOf(const std::string& rfc3339, TimePoint now) {
  if (rfc3339.empty()) return "none";
  auto t = ParseTime(rfc3339);
  if (!t) return "<unknown>";
  auto d = std::chrono::duration_cast<std::chrono::seconds>(*t - now);
  if (d.count() >= 0) return "in " + FormatAge(d);
  return "overdue by " + FormatAge(-d);
}

std::string FormatMillis(const nlohmann::json& ms) {
  if (!ms.is_number()) return "-";
  double v = ms.get<double>();
  char buf[64];
  if (v < 1000) {
    std::snprintf(buf, sizeof buf, "%.0fms", v);
  } else if (v < 60000) {
    std::snprintf(buf, sizeof buf, "%.1fs", v / 1000);
  } else {
    int64_t s = static_cast<int64_t>(v / 1000);
    return FormatAge(std::chrono::seconds(s));
  }
  return buf;
}

namespace {

// Decimal text of a JSON money value, or nullopt when it is not one.
std::optional<std::string> DecimalText(const nlohmann::json& usd) {
  if (usd.is_string()) {
    std::string s = usd.get<std::string>();
    if (!s.empty() && s[0] == '$') s = s.substr(1);
    if (s.empty()) return std::nullopt;
    return s;
  }
  if (usd.is_number()) return UsdDecimal(usd.get<double>());  // 9 decimals, as status and the read API
  return std::nullopt;
}

}  // namespace

std::string ExactUsd(const nlohmann::json& usd) { return DecimalText(usd).value_or(""); }

std::string FormatUsd(const nlohmann::json& usd) {
  auto text = DecimalText(usd);
  if (!text) return "-";
  char* end = nullptr;
  double v = std::strtod(text->c_str(), &end);
  if (end == text->c_str()) return "$" + *text;
  bool negative = v < 0;
  double a = std::fabs(v);
  std::string sign = negative ? "-" : "";
  char buf[64];
  if (a == 0) return "$0";
  if (a >= 1) {
    std::snprintf(buf, sizeof buf, "%.2f", a);
    return sign + "$" + buf;
  }
  // Two significant digits: decimals = 1 - floor(log10(a)).
  int decimals = 1 - static_cast<int>(std::floor(std::log10(a)));
  if (decimals > 12) decimals = 12;
  std::snprintf(buf, sizeof buf, "%.*f", decimals, a);
  std::string s = buf;
  // "0.10" keeps two digits; "0.00" can only come from rounding up to 1.
  return sign + "$" + s;
}

std::optional<double> ParseUsd(const std::string& text) {
  std::string s = text;
  if (!s.empty() && s[0] == '$') s = s.substr(1);
  if (s.empty() || s.find_first_not_of("0123456789.") != std::string::npos) return std::nullopt;
  if (std::count(s.begin(), s.end(), '.') > 1 || s == ".") return std::nullopt;
  double v = std::strtod(s.c_str(), nullptr);
  if (!std::isfinite(v) || v < 0) return std::nullopt;
  return v;
}

std::string OneLine(const std::string& s, size_t max) {
  std::string flat;
  flat.reserve(s.size());
  for (char c : s) flat += (c == '\n' || c == '\r' || c == '\t') ? ' ' : c;
  return TruncateUtf8(flat, max);
}

}  // namespace flowrun::plugin
