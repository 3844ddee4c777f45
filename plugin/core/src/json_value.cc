#include "flowrun/plugin/json_value.h"

namespace flowrun::plugin {

using nlohmann::json;

StatusOr<json> ParseJsonText(const std::string& text, const std::string& where) {
  std::string why;
  try {
    return json::parse(text);
  } catch (const json::parse_error& e) {
    why = e.what();  // "[json.exception.parse_error.101] parse error at line 1, column 2: ..."
    if (auto p = why.find("parse error"); p != std::string::npos) why = why.substr(p);
  }
  const bool short_word = text.size() <= 60 && text.find('\n') == std::string::npos;
  std::string msg = where + ": " + (short_word ? "'" + text + "' " : std::string()) + "is not JSON (" + why + ")";
  if (short_word && !text.empty() && text.find_first_of("{}[]\"") == std::string::npos)
    msg += "; a string needs JSON quotes, e.g. '\"" + text + "\"' (the outer quotes are for the shell)";
  return InvalidArgument(msg);
}

StatusOr<std::pair<std::string, json>> ParseNamedJson(const std::string& word, const std::string& flag,
                                                      const ReadFileFn& read_file) {
  auto eq = word.find('=');
  if (eq == std::string::npos || eq == 0)
    return InvalidArgument(flag + " '" + word + "': want name=<json> or name=@file.json");
  std::string name = word.substr(0, eq), value = word.substr(eq + 1);
  if (!value.empty() && value[0] == '@') {
    std::string path = value.substr(1);
    if (path.empty()) return InvalidArgument(flag + " " + name + "=@: name the file after '@'");
    FLOWRUN_ASSIGN_OR_RETURN(std::string text, read_file(path));
    FLOWRUN_ASSIGN_OR_RETURN(json j, ParseJsonText(text, flag + " " + name + " (" + path + ")"));
    return std::make_pair(name, std::move(j));
  }
  FLOWRUN_ASSIGN_OR_RETURN(json j, ParseJsonText(value, flag + " " + name));
  return std::make_pair(name, std::move(j));
}

size_t CompactJsonBytes(const json& value) { return value.dump(-1, ' ', false, json::error_handler_t::replace).size(); }

}  // namespace flowrun::plugin
