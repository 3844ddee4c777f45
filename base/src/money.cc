#include "flowrun/money.h"

#include <cmath>
#include <cstdint>
#include <cstdio>

namespace flowrun {

namespace {

constexpr double kNanosPerUsd = 1e9;
// Whole nano-dollars fit an int64 (and are exact in a double up to 2^53, i.e.
// about 9e6 USD; beyond that the rounding step is the double's own).
constexpr double kMaxNanos = 9.2e18;

// |usd| in whole nano-dollars, rounded half away from zero and clamped.
uint64_t AbsNanos(double usd) {
  if (!std::isfinite(usd)) return 0;
  const double scaled = std::round(std::fabs(usd) * kNanosPerUsd);
  return static_cast<uint64_t>(scaled >= kMaxNanos ? kMaxNanos : scaled);
}

}  // namespace

double RoundUsd(double usd) {
  const uint64_t nanos = AbsNanos(usd);
  if (nanos == 0) return 0;
  const double v = static_cast<double>(nanos) / kNanosPerUsd;  // correctly rounded: the double nearest n/1e9
  return usd < 0 ? -v : v;
}

std::string UsdDecimal(double usd, int min_decimals) {
  const uint64_t nanos = AbsNanos(usd);
  const uint64_t whole = nanos / 1000000000ULL;
  char digits[16];
  std::snprintf(digits, sizeof digits, "%09llu", static_cast<unsigned long long>(nanos % 1000000000ULL));
  std::string frac(digits);
  const size_t keep = min_decimals < 0 ? 0 : min_decimals > kUsdDecimals ? kUsdDecimals : min_decimals;
  while (frac.size() > keep && frac.back() == '0') frac.pop_back();
  std::string out = usd < 0 && nanos != 0 ? "-" : "";
  out += std::to_string(whole);
  if (!frac.empty()) out += "." + frac;
  return out;
}

}  // namespace flowrun
