// The controller's YAML configuration file, read through CLI11's config-file
// mechanism: `flowrun-controller --config controller.yaml`. Every key is a
// flag's long name without the dashes (`workers: 8`, `health-addr: ":8081"`,
// `leader-elect: true`); flags given on the command line win over the file.
// Unknown keys, nested mappings and YAML syntax errors are refused with the
// file position (CLI::ConfigError), so a typo never silently means "default".
#pragma once

#include <istream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace flowrun::controller {

class YamlConfigFormat : public CLI::Config {
 public:
  // `app` (not owned, outlives this) names the valid keys: its long options.
  explicit YamlConfigFormat(const CLI::App* app) : app_(app) {}

  // Reads a YAML mapping of flag names to scalars (or sequences of scalars
  // for options that take several values). Throws CLI::ConfigError.
  std::vector<CLI::ConfigItem> from_config(std::istream& input) const override;
  // Writes the app's options with their current values as YAML (for
  // `--print-config`-style output); `default_also` includes unset options
  // that have a default.
  std::string to_config(const CLI::App* app, bool default_also, bool write_description,
                        std::string prefix) const override;

 private:
  const CLI::App* app_;
};

// Adds `--config FILE` (YAML, the format above) to `app`; unknown keys are errors.
void AddYamlConfigOption(CLI::App& app);

}  // namespace flowrun::controller
