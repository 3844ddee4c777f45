// Money in US dollars as flowrun writes it for machines and people: whole
// nano-dollars (kUsdDecimals = 9 decimal places, 1e-9 USD), rounded half away
// from zero. Spend is summed from doubles (PostgreSQL double precision), so a
// raw sum can carry float noise (3 x 6.35e-06 = 1.9050000000000002e-05); every
// figure in FlowRun status, the read API and the plugin goes through here
// first, so none ever shows it. Display formats with fewer digits (the COST
// column, messages) round further from these values.
#pragma once

#include <string>

namespace flowrun {

inline constexpr int kUsdDecimals = 9;

// `usd` rounded to the nearest 1e-9 (half away from zero), as the double
// closest to that decimal: its shortest text (JSON) has at most 9 decimals for
// any |usd| < 1e6, e.g. RoundUsd(1.9050000000000002e-05) == 1.905e-05.
// Non-finite input gives 0; magnitudes beyond 9.2e9 USD are clamped there.
double RoundUsd(double usd);

// `usd` as plain decimal text (never an exponent), rounded like RoundUsd,
// trailing zeros removed but at least `min_decimals` (0..9) kept:
// UsdDecimal(1.9050000000000002e-05) == "0.00001905", UsdDecimal(12.5) ==
// "12.5", UsdDecimal(3) == "3", UsdDecimal(1.5, 2) == "1.50",
// UsdDecimal(-0.0077) == "-0.0077"; a value that rounds to 0 is "0" (or "0.00"
// with 2), never "-0". Non-finite input is 0.
std::string UsdDecimal(double usd, int min_decimals = 0);

}  // namespace flowrun
