#include "flowrun/controller/app/yaml_config_format.h"

#include <memory>
#include <sstream>

#include <yaml-cpp/yaml.h>

namespace flowrun::controller {
namespace {

std::string Where(const YAML::Node& n) {
  const YAML::Mark m = n.Mark();
  if (m.is_null()) return "";
  return " (line " + std::to_string(m.line + 1) + ")";
}

}  // namespace

std::vector<CLI::ConfigItem> YamlConfigFormat::from_config(std::istream& input) const {
  YAML::Node root;
  try {
    root = YAML::Load(input);
  } catch (const YAML::Exception& e) {
    throw CLI::ConfigError("the configuration file is not valid YAML: " + e.msg + " (line " +
                           std::to_string(e.mark.line + 1) + ")");
  }
  std::vector<CLI::ConfigItem> items;
  if (!root || root.IsNull()) return items;  // an empty file sets nothing
  if (!root.IsMap())
    throw CLI::ConfigError("the configuration file must be a YAML mapping of flag names to values, e.g. \"workers: 8\"");
  for (const auto& kv : root) {
    const std::string key = kv.first.Scalar();
    const YAML::Node& v = kv.second;
    const CLI::Option* opt = app_->get_option_no_throw("--" + key);
    if (!opt || !opt->get_configurable())
      throw CLI::ConfigError("unknown key '" + key + "' in the configuration file" + Where(kv.first) +
                             ": keys are the flags' names without dashes, e.g. \"workers: 8\" (see --help)");
    CLI::ConfigItem item;
    item.name = key;
    if (v.IsScalar()) {
      item.inputs.push_back(v.Scalar());
    } else if (v.IsSequence()) {
      for (const auto& e : v) {
        if (!e.IsScalar())
          throw CLI::ConfigError("configuration key '" + key + "'" + Where(e) + ": list items must be plain values");
        item.inputs.push_back(e.Scalar());
      }
    } else if (v.IsNull()) {
      throw CLI::ConfigError("configuration key '" + key + "'" + Where(v) +
                             " has no value; remove it to keep the default");
    } else {
      throw CLI::ConfigError("configuration key '" + key + "'" + Where(v) +
                             ": nested mappings are not supported; use the flag's name, e.g. \"health-addr: ':8081'\"");
    }
    items.push_back(std::move(item));
  }
  return items;
}

std::string YamlConfigFormat::to_config(const CLI::App* app, bool default_also, bool write_description,
                                        std::string /*prefix*/) const {
  YAML::Emitter out;
  out << YAML::BeginMap;
  for (const CLI::Option* opt : app->get_options()) {
    if (opt->get_lnames().empty() || !opt->get_configurable()) continue;
    const std::string& name = opt->get_lnames().front();
    std::vector<std::string> values = opt->reduced_results();
    if (values.empty() && default_also && !opt->get_default_str().empty()) values = {opt->get_default_str()};
    if (values.empty()) continue;
    if (write_description && !opt->get_description().empty()) out << YAML::Comment(opt->get_description());
    out << YAML::Key << name << YAML::Value;
    if (values.size() == 1) {
      out << values.front();
    } else {
      out << YAML::Flow << values;
    }
  }
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

void AddYamlConfigOption(CLI::App& app) {
  app.config_formatter(std::make_shared<YamlConfigFormat>(&app));
  app.set_config("--config", "", "YAML file of flag values (flag: value); flags on the command line win");
  app.allow_config_extras(CLI::config_extras_mode::error);
}

}  // namespace flowrun::controller
