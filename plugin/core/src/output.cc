#include "flowrun/plugin/output.h"

#include <yaml-cpp/yaml.h>

namespace flowrun::plugin {

using nlohmann::json;

StatusOr<OutputFormat> ParseOutputFormat(const std::string& flag) {
  if (flag.empty()) return OutputFormat::kTable;
  if (flag == "wide") return OutputFormat::kWide;
  if (flag == "json") return OutputFormat::kJson;
  if (flag == "yaml") return OutputFormat::kYaml;
  return InvalidArgument("unknown output format '" + flag + "' (use json, yaml or wide)");
}

bool IsMachine(OutputFormat f) { return f == OutputFormat::kJson || f == OutputFormat::kYaml; }

std::string ToJsonText(const json& j) { return j.dump(2, ' ', false, json::error_handler_t::replace) + "\n"; }

namespace {

void Emit(YAML::Emitter& out, const json& j) {
  switch (j.type()) {
    case json::value_t::object:
      out << YAML::BeginMap;
      for (auto it = j.begin(); it != j.end(); ++it) {
        out << YAML::Key << it.key() << YAML::Value;
        Emit(out, *it);
      }
      out << YAML::EndMap;
      break;
    case json::value_t::array:
      out << YAML::BeginSeq;
      for (const auto& x : j) Emit(out, x);
      out << YAML::EndSeq;
      break;
    case json::value_t::string: {
      const std::string s = j.get<std::string>();
      // A plain scalar that YAML would read as another type gets quotes.
      bool ambiguous = s.empty();
      if (!ambiguous) {
        try {
          YAML::Node n = YAML::Load(s);
          ambiguous = !n.IsScalar() || n.Tag() != "?" || s == "null" || s == "~" || s == "true" || s == "false" ||
                      s == "yes" || s == "no" || s == "on" || s == "off" ||
                      s.find_first_not_of("0123456789+-.eE") == std::string::npos;
        } catch (const std::exception&) {
          ambiguous = true;
        }
      }
      if (ambiguous) out << YAML::DoubleQuoted << s;
      else out << s;
      break;
    }
    case json::value_t::boolean: out << (j.get<bool>() ? "true" : "false"); break;
    case json::value_t::null: out << YAML::Null; break;
    default: out << j.dump(); break;  // numbers as JSON prints them
  }
}

}  // namespace

std::string ToYamlText(const json& j) {
  YAML::Emitter out;
  Emit(out, j);
  return std::string(out.c_str()) + "\n";
}

std::string MachineText(const json& j, OutputFormat f) {
  if (f == OutputFormat::kJson) return ToJsonText(j);
  if (f == OutputFormat::kYaml) return ToYamlText(j);
  return "";
}

}  // namespace flowrun::plugin
