// Money as people and the read API show it: decimal text in US dollars,
// rounded half away from zero to 9 decimal places, trailing zeros removed but
// at least 2 decimals ("0.00001905", "1.50", "0.00", "-0.0077"). Never the
// float noise a double prints (1.9050000000000002e-05). docs/read-api.md.
// The rounding itself is base's (flowrun/money.h), shared with FlowRun status.
#pragma once

#include <string>

#include "flowrun/money.h"

namespace flowrun::query {

// Non-finite input (NaN, inf) gives "0.00": money in the database is finite.
inline std::string FormatUsd(double usd) { return UsdDecimal(usd, 2); }

}  // namespace flowrun::query
