// Formatting for people: ages and durations the way kubectl prints them,
// money from the read API's decimal text, short text. Pure functions of
// their arguments (no clock: callers pass `now`).
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace flowrun::plugin {

using TimePoint = std::chrono::system_clock::time_point;

// kubectl's AGE style: "45s", "12m", "3h4m", "5d", "2y"; negative spans "0s".
std::string FormatAge(std::chrono::seconds age);
// Age of an RFC 3339 timestamp at `now`; "<unknown>" when it does not parse, "" when empty.
std::string AgeOf(const std::string& rfc3339, TimePoint now);
// A deadline relative to `now`: "in 3h4m", "overdue by 5m", "none" when empty.
std::string DeadlineOf(const std::string& rfc3339, TimePoint now);
// Milliseconds as "812ms", "1.5s", "2m3s"; "-" for null.
std::string FormatMillis(const nlohmann::json& ms);

// Money for people from decimal text ("0.00001905", "1.50") or a JSON number
// (status.cost.usd): "$0.000019" (two significant digits under $1), "$1.50",
// "$12.35" (cents from $1), "$0"; "-" for null/absent.
std::string FormatUsd(const nlohmann::json& usd);
// The exact decimal text of a JSON money value: strings as given, numbers
// printed with up to 9 decimals and trailing zeros cut ("0.0123", UsdDecimal in
// flowrun/money.h). "" for null.
std::string ExactUsd(const nlohmann::json& usd);
// Parses "1.5", "$2", "0" into a value >= 0; nullopt for anything else.
std::optional<double> ParseUsd(const std::string& text);

// `s` cut to `max` UTF-8 bytes at a character boundary, ending in "..." when cut;
// newlines become spaces.
std::string OneLine(const std::string& s, size_t max);

}  // namespace flowrun::plugin
