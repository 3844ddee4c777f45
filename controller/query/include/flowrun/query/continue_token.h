// The read API's `continue` tokens: opaque to clients, a keyset position to
// the server. A token names its list, its sort and its run, so one taken
// from another list, sort or run is refused (400) instead of silently
// returning the wrong page. Encoding: hex of a small JSON document (URL-safe,
// no escaping needed in a query string).
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "flowrun/status.h"

namespace flowrun::query {

struct ContinueToken {
  std::string list;  // "calls", "checkpoints", "artifacts"
  std::string sort;  // "time", "cost", "" (lists without a sort)
  std::string uid;   // the run
  nlohmann::json key = nlohmann::json::array();  // the last row's keyset position
};

std::string EncodeContinue(const ContinueToken& t);
// kInvalidArgument for a malformed token, or one of another list/sort/run.
StatusOr<ContinueToken> DecodeContinue(const std::string& text, const std::string& list, const std::string& sort,
                                       const std::string& uid);

}  // namespace flowrun::query
