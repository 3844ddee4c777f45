#include "flowrun/schema_validator.h"

#include <valijson/adapters/nlohmann_json_adapter.hpp>
#include <valijson/schema.hpp>
#include <valijson/schema_parser.hpp>
#include <valijson/validation_results.hpp>
#include <valijson/validator.hpp>

namespace flowrun {

Status ValidateAgainstSchema(const nlohmann::json& schema, const nlohmann::json& value) {
  valijson::Schema parsed;
  try {
    valijson::SchemaParser parser;
    valijson::adapters::NlohmannJsonAdapter schema_adapter(schema);
    parser.populateSchema(schema_adapter, parsed);
  } catch (const std::exception& e) {
    return InvalidArgument(std::string("invalid schema: ") + e.what());
  }
  valijson::Validator validator;
  valijson::ValidationResults results;
  valijson::adapters::NlohmannJsonAdapter value_adapter(value);
  if (validator.validate(parsed, value_adapter, &results)) return Status::Ok();

  std::string reasons;
  valijson::ValidationResults::Error error;
  while (results.popError(error)) {
    // valijson reports a chain of context errors per violation; keep the leaf
    // ones (their context is the deepest), which name the actual reason.
    std::string pointer;
    for (const auto& c : error.context) {
      if (c == "<root>") continue;
      pointer += c;
    }
    if (pointer.empty()) pointer = "/";
    if (!reasons.empty()) reasons += "; ";
    reasons += pointer + ": " + error.description;
  }
  if (reasons.empty()) reasons = "value does not match the schema";
  return InvalidArgument(reasons);
}

}  // namespace flowrun
