// flowrun-controller's --config YAML file (controller/app/include/flowrun/controller/app/yaml_config_format.h),
// through a CLI11 app shaped like the controller's flags.
#include <cstdio>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "flowrun/controller/app/yaml_config_format.h"

namespace flowrun::controller {
namespace {

struct Flags {
  int workers = 4;
  bool leader_elect = false;
  std::string health_addr;
  std::string retention = "delete";
};

class YamlConfig : public ::testing::Test {
 protected:
  void SetUp() override {
    app_.add_option("--workers", f_.workers)->check(CLI::Range(1, 256));
    app_.add_flag("--leader-elect", f_.leader_elect);
    app_.add_option("--health-addr", f_.health_addr);
    app_.add_option("--retention", f_.retention)->check(CLI::IsMember({"delete", "keep"}));
    AddYamlConfigOption(app_);
    char tmpl[] = "/tmp/flowrun-yaml-config-XXXXXX";
    int fd = mkstemp(tmpl);
    ASSERT_GE(fd, 0);
    close(fd);
    path_ = tmpl;
  }
  void TearDown() override { std::remove(path_.c_str()); }

  // Parses argv (after the program name) with the file holding `yaml`;
  // returns the error's message, "" on success.
  std::string Parse(const std::string& yaml, std::vector<std::string> args = {}) {
    std::ofstream(path_) << yaml;
    args.insert(args.begin(), {"--config", path_});
    std::vector<std::string> argv = {"flowrun-controller"};
    argv.insert(argv.end(), args.begin(), args.end());
    std::vector<const char*> cargv;
    for (const auto& a : argv) cargv.push_back(a.c_str());
    try {
      app_.parse(static_cast<int>(cargv.size()), cargv.data());
      return "";
    } catch (const CLI::ParseError& e) {
      return e.what();
    }
  }

  CLI::App app_;
  Flags f_;
  std::string path_;
};

TEST_F(YamlConfig, SetsFlagsByName) {
  EXPECT_EQ(Parse("workers: 8\nleader-elect: true\nhealth-addr: \":8081\"\nretention: keep\n"), "");
  EXPECT_EQ(f_.workers, 8);
  EXPECT_TRUE(f_.leader_elect);
  EXPECT_EQ(f_.health_addr, ":8081");
  EXPECT_EQ(f_.retention, "keep");
}

TEST_F(YamlConfig, CommandLineWinsOverTheFile) {
  EXPECT_EQ(Parse("workers: 8\nretention: keep\n", {"--workers", "2"}), "");
  EXPECT_EQ(f_.workers, 2);
  EXPECT_EQ(f_.retention, "keep");
}

TEST_F(YamlConfig, EmptyFileChangesNothing) {
  EXPECT_EQ(Parse(""), "");
  EXPECT_EQ(f_.workers, 4);
  EXPECT_FALSE(f_.leader_elect);
}

TEST_F(YamlConfig, UnknownKeyIsAnError) {
  std::string err = Parse("workers: 2\nwokers: 8\n");
  EXPECT_NE(err.find("unknown key 'wokers'"), std::string::npos) << err;
  EXPECT_NE(err.find("line 2"), std::string::npos) << err;
  EXPECT_NE(Parse("config: /etc/other.yaml\n").find("unknown key 'config'"), std::string::npos);
  EXPECT_EQ(f_.workers, 4);
}

TEST_F(YamlConfig, ValuesAreCheckedLikeFlags) {
  EXPECT_NE(Parse("workers: 0\n"), "");
  EXPECT_NE(Parse("retention: forever\n"), "");
}

TEST_F(YamlConfig, MalformedYamlNamesTheLine) {
  std::string err = Parse("workers: 8\nhealth-addr: [unclosed\n");
  EXPECT_NE(err.find("not valid YAML"), std::string::npos) << err;
  EXPECT_NE(err.find("line"), std::string::npos) << err;
}

TEST_F(YamlConfig, NestedMappingsAndEmptyValuesAreRefused) {
  std::string nested = Parse("health-addr:\n  port: 8081\n");
  EXPECT_NE(nested.find("nested mappings are not supported"), std::string::npos) << nested;
  std::string empty = Parse("workers:\n");
  EXPECT_NE(empty.find("has no value"), std::string::npos) << empty;
  std::string list = Parse("- workers\n");
  EXPECT_NE(list.find("must be a YAML mapping"), std::string::npos) << list;
}

TEST_F(YamlConfig, MissingFileIsAnError) {
  std::remove(path_.c_str());
  std::vector<const char*> argv = {"flowrun-controller", "--config", "/nonexistent/flowrun.yaml"};
  EXPECT_THROW(app_.parse(static_cast<int>(argv.size()), argv.data()), CLI::ParseError);
}

TEST_F(YamlConfig, WritesWhatItReads) {
  ASSERT_EQ(Parse("workers: 8\nhealth-addr: \":8081\"\n"), "");
  std::string yaml = app_.config_to_str(false, false);
  EXPECT_NE(yaml.find("workers: 8"), std::string::npos) << yaml;
  // Read back, it sets the same values.
  f_ = Flags{};
  ASSERT_EQ(Parse(yaml), "") << yaml;
  EXPECT_EQ(f_.workers, 8);
  EXPECT_EQ(f_.health_addr, ":8081") << yaml;
}

}  // namespace
}  // namespace flowrun::controller
