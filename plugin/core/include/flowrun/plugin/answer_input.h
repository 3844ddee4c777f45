// Building an answer to a wait from what a person types, driven by the
// wait's JSON Schema (status.wait.schema): `key=value` words, `--set
// path=value`, a JSON file, or interactive prompts. Values are converted to
// the schema's types ("true" → true for a boolean, "3" → 3 for an integer,
// "a,b" → ["a","b"] for an array of strings, JSON text for objects) and the
// result is validated with the same validator the controller uses
// (flowrun::ValidateAgainstSchema), so an answer refused here would have been
// refused by the controller too.
//
// Pure: no I/O except the streams handed to PromptAnswer.
#pragma once

#include <istream>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "flowrun/status.h"

namespace flowrun::plugin {

struct AnswerInput {
  // Positional words after the run (and the wait, when named): "key=value"
  // (key a property path of an object answer, or the wait's name for the
  // whole answer) or one bare value for a non-object answer ("true").
  std::vector<std::string> words;
  std::vector<std::string> sets;    // --set path=value (path: a.b, a[0], a.0)
  std::optional<nlohmann::json> file;  // -f answer.json: the whole answer, then words/sets on top
};

// True when the schema asks for an object (type "object" or has "properties").
bool IsObjectSchema(const nlohmann::json& schema);
// The sub-schema for a property path ("review", "comment"; "items", "0"),
// following properties, additionalProperties, items and prefix items; null
// when the schema does not say (then any JSON is accepted as typed).
nlohmann::json SchemaAt(const nlohmann::json& schema, const std::vector<std::string>& path);
// "a.b[0].c" → {"a","b","0","c"}. kInvalidArgument for an empty segment.
StatusOr<std::vector<std::string>> SplitPath(const std::string& path);

// Converts typed text to JSON for `schema`. `where` names the value in
// errors ("review.score: 'x' is not an integer"). Without type information
// the text is read as JSON when it parses, else as a string.
StatusOr<nlohmann::json> ConvertValue(const std::string& text, const nlohmann::json& schema, const std::string& where);

// The answer from `in` for the wait `wait_name` asking `schema`.
// kInvalidArgument with a reason a person can act on (no input, a bare value
// for an object answer, a type that does not convert).
StatusOr<nlohmann::json> BuildAnswer(const nlohmann::json& schema, const std::string& wait_name, const AnswerInput& in);

// The schema's own check (the controller's validator): OK, or
// kInvalidArgument whose message lists one violation per line
// ("  /comment: String should be no longer than 200 characters").
Status ValidateAnswer(const nlohmann::json& schema, const nlohmann::json& answer);

// One line describing what the schema asks for: "boolean", "one of: a, b",
// "object {approve: boolean (required), comment: string}".
std::string DescribeSchema(const nlohmann::json& schema);

// Asks for the answer on `in`/`out`: the question, then one prompt per
// property of an object schema (type, enum, default, description; empty
// input takes the default or skips an optional property; a value that does
// not convert is asked again), or one prompt for any other schema.
// kInvalidArgument at end of input before the answer is complete.
StatusOr<nlohmann::json> PromptAnswer(const nlohmann::json& schema, const std::string& wait_name,
                                      const std::string& question, std::istream& in, std::ostream& out);

}  // namespace flowrun::plugin
