#include "flowrun/plugin/answer_input.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>

#include "flowrun/schema_validator.h"

namespace flowrun::plugin {

using nlohmann::json;

namespace {

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

bool AllDigits(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); });
}

// The types a schema admits, in the order text is tried: null, boolean,
// integer, number, array, object, string. Empty: the schema does not say.
std::vector<std::string> TypesOf(const json& schema) {
  std::vector<std::string> types;
  if (!schema.is_object()) return types;
  auto add = [&](const json& t) {
    if (t.is_string()) types.push_back(t.get<std::string>());
    else if (t.is_array())
      for (const auto& x : t)
        if (x.is_string()) types.push_back(x.get<std::string>());
  };
  if (schema.contains("type")) add(schema["type"]);
  for (const char* k : {"anyOf", "oneOf"})
    if (schema.contains(k) && schema[k].is_array())
      for (const auto& branch : schema[k])
        for (const auto& t : TypesOf(branch)) types.push_back(t);
  if (types.empty() && schema.contains("properties")) types.push_back("object");
  if (types.empty() && schema.contains("items")) types.push_back("array");
  static const std::vector<std::string> order = {"null", "boolean", "integer", "number", "array", "object", "string"};
  std::vector<std::string> sorted;
  for (const auto& o : order)
    if (std::find(types.begin(), types.end(), o) != types.end()) sorted.push_back(o);
  return sorted;
}

std::optional<json> AsBool(const std::string& text) {
  std::string l = Lower(text);
  if (l == "true" || l == "yes" || l == "y" || l == "on") return json(true);
  if (l == "false" || l == "no" || l == "n" || l == "off") return json(false);
  return std::nullopt;
}

std::optional<json> AsInteger(const std::string& text) {
  std::string t = text;
  size_t start = (!t.empty() && (t[0] == '-' || t[0] == '+')) ? 1 : 0;
  if (!AllDigits(t.substr(start))) return std::nullopt;
  errno = 0;
  long long v = std::strtoll(t.c_str(), nullptr, 10);
  if (errno == ERANGE) return std::nullopt;
  return json(static_cast<int64_t>(v));
}

std::optional<json> AsNumber(const std::string& text) {
  if (text.empty() || std::isspace(static_cast<unsigned char>(text[0]))) return std::nullopt;
  if (auto i = AsInteger(text)) return i;
  char* end = nullptr;
  double v = std::strtod(text.c_str(), &end);
  if (end != text.c_str() + text.size() || !std::isfinite(v)) return std::nullopt;
  // strtod accepts "inf", "nan", hex: JSON numbers only.
  if (text.find_first_not_of("0123456789+-.eE") != std::string::npos) return std::nullopt;
  return json(v);
}

std::optional<json> AsJson(const std::string& text, json::value_t want) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || j.type() != want) return std::nullopt;
  return j;
}

std::string TypeWord(const std::string& t) {
  if (t == "integer") return "an integer";
  if (t == "object") return "a JSON object";
  if (t == "array") return "an array (JSON, or comma-separated)";
  if (t == "boolean") return "a boolean (true/false, yes/no)";
  return "a " + t;
}

std::string EnumList(const json& values) {
  std::string s;
  for (const auto& v : values) s += (s.empty() ? "" : ", ") + (v.is_string() ? v.get<std::string>() : v.dump());
  return s;
}

// Sets `value` at `path` in `root`, creating objects (or arrays for numeric
// segments) on the way. An existing scalar in the way is an error.
Status SetAt(json& root, const std::vector<std::string>& path, json value, const std::string& shown) {
  json* cur = &root;
  for (size_t i = 0; i < path.size(); ++i) {
    const std::string& seg = path[i];
    bool last = i + 1 == path.size();
    if (cur->is_null()) *cur = AllDigits(seg) ? json::array() : json::object();
    if (cur->is_array()) {
      if (!AllDigits(seg)) return InvalidArgument(shown + ": '" + seg + "' is not an array index");
      size_t idx = std::stoul(seg);
      if (idx > 10000) return InvalidArgument(shown + ": index " + seg + " is too large");
      while (cur->size() <= idx) cur->push_back(nullptr);
      cur = &(*cur)[idx];
    } else if (cur->is_object()) {
      cur = &(*cur)[seg];
    } else {
      return InvalidArgument(shown + ": cannot set '" + seg + "' inside " + cur->dump());
    }
    if (last) *cur = std::move(value);
  }
  return Status::Ok();
}

StatusOr<std::pair<std::string, std::string>> SplitAssignment(const std::string& word) {
  auto eq = word.find('=');
  if (eq == std::string::npos || eq == 0) return InvalidArgument("'" + word + "' is not key=value");
  return std::make_pair(word.substr(0, eq), word.substr(eq + 1));
}

}  // namespace

bool IsObjectSchema(const json& schema) {
  if (!schema.is_object()) return false;
  auto types = TypesOf(schema);
  return types.size() == 1 && types[0] == "object";
}

json SchemaAt(const json& schema, const std::vector<std::string>& path) {
  json cur = schema;
  for (const auto& seg : path) {
    if (!cur.is_object()) return nullptr;
    if (cur.contains("properties") && cur["properties"].is_object() && cur["properties"].contains(seg)) {
      cur = cur["properties"][seg];
      continue;
    }
    if (AllDigits(seg)) {
      size_t idx = std::stoul(seg);
      for (const char* k : {"prefixItems", "items"})
        if (cur.contains(k) && cur[k].is_array()) {
          if (idx < cur[k].size()) {
            cur = cur[k][idx];
            goto next;
          }
        }
      if (cur.contains("items") && cur["items"].is_object()) {
        cur = cur["items"];
        continue;
      }
      return nullptr;
    }
    if (cur.contains("additionalProperties") && cur["additionalProperties"].is_object()) {
      cur = cur["additionalProperties"];
      continue;
    }
    return nullptr;
  next:;
  }
  return cur;
}

StatusOr<std::vector<std::string>> SplitPath(const std::string& path) {
  std::vector<std::string> out;
  std::string cur;
  for (size_t i = 0; i < path.size(); ++i) {
    char c = path[i];
    if (c == '\\' && i + 1 < path.size()) {
      cur += path[++i];
    } else if (c == '.') {
      if (cur.empty() && !(i > 0 && path[i - 1] == ']')) return InvalidArgument("path '" + path + "' has an empty segment");
      if (!cur.empty()) out.push_back(cur);
      cur.clear();
    } else if (c == '[') {
      auto close = path.find(']', i);
      if (close == std::string::npos) return InvalidArgument("path '" + path + "' has an unclosed '['");
      if (!cur.empty()) out.push_back(cur);
      cur.clear();
      std::string idx = path.substr(i + 1, close - i - 1);
      if (!AllDigits(idx)) return InvalidArgument("path '" + path + "': '[" + idx + "]' is not an array index");
      out.push_back(idx);
      i = close;
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) out.push_back(cur);
  else if (!path.empty() && path.back() == '.') return InvalidArgument("path '" + path + "' has an empty segment");
  if (out.empty()) return InvalidArgument("empty path");
  return out;
}

StatusOr<json> ConvertValue(const std::string& text, const json& schema, const std::string& where) {
  const std::string prefix = where.empty() ? "" : where + ": ";
  // An enum or const: the text names one of its values.
  json allowed = nullptr;
  if (schema.is_object() && schema.contains("enum") && schema["enum"].is_array()) allowed = schema["enum"];
  if (schema.is_object() && schema.contains("const")) allowed = json::array({schema["const"]});
  if (allowed.is_array()) {
    for (const auto& v : allowed)
      if (v.is_string() && v.get<std::string>() == text) return v;
    for (const auto& v : allowed) {
      if (v.is_string()) continue;
      json parsed = json::parse(text, nullptr, false);
      if (!parsed.is_discarded() && parsed == v) return v;
      if (v.is_boolean())
        if (auto b = AsBool(text); b && *b == v) return v;
    }
    return InvalidArgument(prefix + "'" + text + "' is not one of: " + EnumList(allowed));
  }
  auto types = TypesOf(schema);
  if (types.empty()) {
    json parsed = json::parse(text, nullptr, false);
    if (!parsed.is_discarded()) return parsed;
    return json(text);
  }
  for (const auto& t : types) {
    if (t == "null" && text == "null") return json(nullptr);
    if (t == "boolean")
      if (auto v = AsBool(text)) return *v;
    if (t == "integer") {
      if (auto v = AsInteger(text)) return *v;
      // 3.0 is an integer in JSON Schema.
      if (auto n = AsNumber(text); n && n->is_number_float() && std::floor(n->get<double>()) == n->get<double>() &&
                                   std::fabs(n->get<double>()) < 9e15)
        return json(static_cast<int64_t>(n->get<double>()));
    }
    if (t == "number")
      if (auto v = AsNumber(text)) return *v;
    if (t == "object")
      if (auto v = AsJson(text, json::value_t::object)) return *v;
    if (t == "array") {
      if (auto v = AsJson(text, json::value_t::array)) return *v;
      // "a,b,c": each element converted for the item schema.
      json item = SchemaAt(schema, {"0"});
      if (item.is_null() && schema.contains("items") && schema["items"].is_object()) item = schema["items"];
      json arr = json::array();
      bool ok = true;
      if (!text.empty()) {
        size_t start = 0;
        while (true) {
          size_t comma = text.find(',', start);
          std::string part = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
          auto v = ConvertValue(part, item, where + "[" + std::to_string(arr.size()) + "]");
          if (!v.ok()) {
            ok = false;
            if (types.size() == 1) return v.status();
            break;
          }
          arr.push_back(*v);
          if (comma == std::string::npos) break;
          start = comma + 1;
        }
      }
      if (ok) return arr;
    }
    if (t == "string") return json(text);
  }
  std::string want;
  for (size_t i = 0; i < types.size(); ++i)
    want += (i == 0 ? "" : (i + 1 == types.size() ? " or " : ", ")) + TypeWord(types[i]);
  return InvalidArgument(prefix + "'" + text + "' is not " + want);
}

StatusOr<json> BuildAnswer(const json& schema, const std::string& wait_name, const AnswerInput& in) {
  const bool object = IsObjectSchema(schema);
  json answer = in.file ? *in.file : json(nullptr);
  bool given = in.file.has_value();
  auto set_path = [&](const std::string& key, const std::string& value, const std::string& flag) -> Status {
    FLOWRUN_ASSIGN_OR_RETURN(auto path, SplitPath(key));
    // "<wait>=<value>": the whole answer, unless the wait's name is also a property.
    bool whole = path.size() == 1 && path[0] == wait_name && SchemaAt(schema, path).is_null();
    if (!object && !whole)
      return InvalidArgument(flag + "'" + key + "=…': the wait '" + wait_name + "' asks for " + DescribeSchema(schema) +
                             ", which has no property '" + key + "'; answer with '" + wait_name +
                             "=<value>' or the bare value");
    if (whole) {
      FLOWRUN_ASSIGN_OR_RETURN(answer, ConvertValue(value, schema, wait_name));
      return Status::Ok();
    }
    if (!answer.is_null() && !answer.is_object())
      return InvalidArgument(flag + "'" + key + "': the answer so far is " + answer.dump() + ", not an object");
    FLOWRUN_ASSIGN_OR_RETURN(json v, ConvertValue(value, SchemaAt(schema, path), key));
    return SetAt(answer, path, std::move(v), key);
  };
  for (const auto& w : in.words) {
    given = true;
    if (w.find('=') == std::string::npos || w[0] == '=') {
      if (object)
        return InvalidArgument("'" + w + "': the wait '" + wait_name + "' asks for " + DescribeSchema(schema) +
                               "; give its properties as key=value (or -f answer.json)");
      FLOWRUN_ASSIGN_OR_RETURN(answer, ConvertValue(w, schema, wait_name));
      continue;
    }
    FLOWRUN_ASSIGN_OR_RETURN(auto kv, SplitAssignment(w));
    FLOWRUN_RETURN_IF_ERROR(set_path(kv.first, kv.second, ""));
  }
  for (const auto& s : in.sets) {
    given = true;
    FLOWRUN_ASSIGN_OR_RETURN(auto kv, SplitAssignment(s));
    FLOWRUN_RETURN_IF_ERROR(set_path(kv.first, kv.second, "--set "));
  }
  if (!given)
    return InvalidArgument("no answer given: the wait '" + wait_name + "' asks for " + DescribeSchema(schema) +
                           " (give key=value words, --set path=value, -f answer.json or -i)");
  // Defaults of an object schema fill properties the person left out.
  if (object && answer.is_object() && schema.contains("properties") && schema["properties"].is_object())
    for (auto it = schema["properties"].begin(); it != schema["properties"].end(); ++it)
      if (!answer.contains(it.key()) && it->is_object() && it->contains("default")) answer[it.key()] = (*it)["default"];
  return answer;
}

Status ValidateAnswer(const json& schema, const json& answer) {
  Status s = ValidateAgainstSchema(schema.is_null() ? json::object() : schema, answer);
  if (s.ok()) return s;
  std::string lines;
  const std::string& m = s.message();
  size_t start = 0;
  while (start <= m.size()) {
    size_t sep = m.find("; ", start);
    std::string part = m.substr(start, sep == std::string::npos ? std::string::npos : sep - start);
    if (!part.empty()) lines += "  " + part + "\n";
    if (sep == std::string::npos) break;
    start = sep + 2;
  }
  if (!lines.empty()) lines.pop_back();
  return InvalidArgument(lines);
}

std::string DescribeSchema(const json& schema) {
  if (!schema.is_object() || schema.empty()) return "any JSON value";
  if (schema.contains("enum") && schema["enum"].is_array()) return "one of: " + EnumList(schema["enum"]);
  if (schema.contains("const")) return "exactly " + schema["const"].dump();
  auto types = TypesOf(schema);
  if (types.size() == 1 && types[0] == "object" && schema.contains("properties") && schema["properties"].is_object()) {
    std::vector<std::string> required;
    if (schema.contains("required") && schema["required"].is_array())
      for (const auto& r : schema["required"])
        if (r.is_string()) required.push_back(r.get<std::string>());
    std::string s = "object {";
    bool first = true;
    for (auto it = schema["properties"].begin(); it != schema["properties"].end(); ++it) {
      s += (first ? "" : ", ") + it.key() + ": " + DescribeSchema(*it);
      if (std::find(required.begin(), required.end(), it.key()) != required.end()) s += " (required)";
      first = false;
    }
    return s + "}";
  }
  if (types.size() == 1 && types[0] == "array") {
    json item = schema.contains("items") && schema["items"].is_object() ? schema["items"] : json(nullptr);
    return item.is_null() ? "array" : "array of " + DescribeSchema(item);
  }
  if (types.empty()) return "any JSON value";
  std::string s;
  for (size_t i = 0; i < types.size(); ++i) s += (i == 0 ? "" : " or ") + types[i];
  return s;
}

namespace {

// One value read from `in` until it converts; nullopt on EOF. An empty line
// returns json "skip" marker through `empty`.
StatusOr<json> PromptOne(const std::string& label, const json& schema, bool required, std::istream& in,
                         std::ostream& out) {
  bool has_default = schema.is_object() && schema.contains("default");
  for (;;) {
    out << label << " (" << DescribeSchema(schema);
    if (required) out << ", required";
    if (has_default) out << ", default " << schema["default"].dump();
    out << ")";
    if (schema.is_object() && schema.contains("description") && schema["description"].is_string())
      out << " — " << schema["description"].get<std::string>();
    out << ": " << std::flush;
    std::string line;
    if (!std::getline(in, line)) return InvalidArgument("end of input before '" + label + "' was answered");
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) {
      if (has_default) return schema["default"];
      if (!required) return json(json::value_t::discarded);
      out << "  '" << label << "' is required\n";
      continue;
    }
    auto v = ConvertValue(line, schema, label);
    if (v.ok()) return v;
    out << "  " << v.status().message() << "\n";
  }
}

}  // namespace

StatusOr<json> PromptAnswer(const json& schema, const std::string& wait_name, const std::string& question,
                            std::istream& in, std::ostream& out) {
  out << "Question (" << wait_name << "): " << question << "\n";
  if (!IsObjectSchema(schema) || !schema.contains("properties") || !schema["properties"].is_object()) {
    FLOWRUN_ASSIGN_OR_RETURN(json v, PromptOne(wait_name, schema, true, in, out));
    return v;
  }
  std::vector<std::string> required;
  if (schema.contains("required") && schema["required"].is_array())
    for (const auto& r : schema["required"])
      if (r.is_string()) required.push_back(r.get<std::string>());
  // Required properties first (in the schema's order of "required"), then the others.
  std::vector<std::string> order = required;
  for (auto it = schema["properties"].begin(); it != schema["properties"].end(); ++it)
    if (std::find(order.begin(), order.end(), it.key()) == order.end()) order.push_back(it.key());
  json answer = json::object();
  for (const auto& name : order) {
    json sub = SchemaAt(schema, {name});
    bool req = std::find(required.begin(), required.end(), name) != required.end();
    FLOWRUN_ASSIGN_OR_RETURN(json v, PromptOne(name, sub, req, in, out));
    if (!v.is_discarded()) answer[name] = std::move(v);
  }
  return answer;
}

}  // namespace flowrun::plugin
