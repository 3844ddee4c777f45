// Validates a JSON value against a JSON Schema (draft 7 subset that valijson
// supports). Used when an answer to a wait is recorded, by the runtime and by
// the controller alike, so both reject exactly the same answers.
#pragma once

#include <nlohmann/json.hpp>

#include "flowrun/status.h"

namespace flowrun {

// OK, or InvalidArgument whose message lists every violation as
// "<json pointer>: <reason>" separated by "; ". A schema that is itself not
// valid JSON Schema gives InvalidArgument("invalid schema: ...").
Status ValidateAgainstSchema(const nlohmann::json& schema, const nlohmann::json& value);

}  // namespace flowrun
