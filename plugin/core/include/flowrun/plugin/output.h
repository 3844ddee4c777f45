// Machine output (-o json|yaml) and the output flag itself. JSON is printed
// with two-space indentation; YAML is block style with strings quoted when
// YAML would read them as something else ("true", "1.5", "null", "").
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "flowrun/status.h"

namespace flowrun::plugin {

enum class OutputFormat { kTable, kWide, kJson, kYaml };

// "" (table), "wide", "json", "yaml"; kInvalidArgument for anything else.
StatusOr<OutputFormat> ParseOutputFormat(const std::string& flag);
bool IsMachine(OutputFormat f);

std::string ToJsonText(const nlohmann::json& j);
std::string ToYamlText(const nlohmann::json& j);
// json or yaml text of `j` for a machine format ("" for table formats).
std::string MachineText(const nlohmann::json& j, OutputFormat f);

}  // namespace flowrun::plugin
