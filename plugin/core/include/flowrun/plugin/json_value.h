// JSON values typed on the command line, shared by every command that takes
// them (answer -f, replay --output/--answer): strict JSON text, from the
// argument itself or from a file named with '@'. Strict on purpose: a value
// that is not JSON is refused with a hint (quote a string) rather than
// guessed, because a guessed type ("true" the string or true the boolean)
// would silently become a checkpoint's output or a wait's answer.
//
// Pure: reading a file goes through the caller's `read_file`.
#pragma once

#include <functional>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>

#include "flowrun/status.h"

namespace flowrun::plugin {

// Reads a file's text (the CLI's: a path, or "-" for stdin); kNotFound when unreadable.
using ReadFileFn = std::function<StatusOr<std::string>(const std::string& path)>;

// `text` parsed as one JSON document. kInvalidArgument naming `where` and,
// for a bare word, how to write it as a JSON string.
StatusOr<nlohmann::json> ParseJsonText(const std::string& text, const std::string& where);

// "name=<json>" or "name=@file.json" (the file's JSON; "@-" reads stdin).
// `flag` names the option in errors ("--output"). kInvalidArgument for a
// missing name or '=', or a value that is not JSON.
StatusOr<std::pair<std::string, nlohmann::json>> ParseNamedJson(const std::string& word, const std::string& flag,
                                                                const ReadFileFn& read_file);

// Bytes of the value's compact JSON text (what size caps count).
size_t CompactJsonBytes(const nlohmann::json& value);

}  // namespace flowrun::plugin
