#include "flowrun/query/money.h"

#include <cmath>
#include <cstdint>
#include <cstdio>

namespace flowrun::query {

std::string FormatUsd(double usd) {
  if (!std::isfinite(usd)) return "0.00";
  // Whole nano-dollars: exact integers up to 9e9 USD in an int64's range
  // (|usd| * 1e9 < 2^63 for |usd| < 9.2e9).
  const bool negative = usd < 0;
  const double scaled = std::round(std::fabs(usd) * 1e9);
  if (scaled >= 9.2e18) return negative ? "-9200000000.00" : "9200000000.00";
  auto nanos = static_cast<uint64_t>(scaled);
  const uint64_t whole = nanos / 1000000000ULL;
  uint64_t frac = nanos % 1000000000ULL;
  char digits[16];
  std::snprintf(digits, sizeof digits, "%09llu", static_cast<unsigned long long>(frac));
  std::string f(digits);
  while (f.size() > 2 && f.back() == '0') f.pop_back();
  std::string out = (negative && nanos != 0) ? "-" : "";
  out += std::to_string(whole);
  out += '.';
  out += f;
  return out;
}

}  // namespace flowrun::query
