#include "flowrun/schema_validator.h"

#include <algorithm>
#include <vector>

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

  // valijson reports each violation with a chain of parent errors ("failed
  // to validate against schema associated with property ..."). Keep the
  // deepest ones: an error whose context is a prefix of another's is a parent.
  struct Violation {
    std::vector<std::string> context;
    std::string description;
  };
  std::vector<Violation> all;
  valijson::ValidationResults::Error error;
  while (results.popError(error)) all.push_back({error.context, error.description});
  auto is_prefix = [](const std::vector<std::string>& a, const std::vector<std::string>& b) {
    return a.size() < b.size() && std::equal(a.begin(), a.end(), b.begin());
  };
  std::string reasons;
  for (const Violation& v : all) {
    bool parent = std::any_of(all.begin(), all.end(), [&](const Violation& o) { return is_prefix(v.context, o.context); });
    if (parent) continue;
    // valijson's context is "<root>", "[name]", "[0]", ...: render a JSON pointer (RFC 6901).
    std::string pointer;
    for (const auto& c : v.context) {
      if (c == "<root>") continue;
      std::string token = (c.size() >= 2 && c.front() == '[' && c.back() == ']') ? c.substr(1, c.size() - 2) : c;
      std::string escaped;
      for (char ch : token) {
        if (ch == '~') escaped += "~0";
        else if (ch == '/') escaped += "~1";
        else escaped += ch;
      }
      pointer += "/" + escaped;
    }
    if (pointer.empty()) pointer = "/";
    if (!reasons.empty()) reasons += "; ";
    reasons += pointer + ": " + v.description;
  }
  if (reasons.empty()) reasons = "value does not match the schema";
  return InvalidArgument(reasons);
}

}  // namespace flowrun
