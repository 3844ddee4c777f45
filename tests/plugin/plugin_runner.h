// Running the real kubectl-flowrun binary in the plugin's cluster tests:
// stdout and stderr kept apart (JSON on stdout must parse), optional stdin,
// the command line and its output echoed to the test log.
#pragma once

#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

#include "e2e/e2e_world.h"

namespace flowrun::testing {

struct PluginResult {
  int exit_code = -1;
  std::string out, err;
};

inline std::string ShellQuote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// `sh -c <cmd>` with stdin from `stdin_text`, stdout and stderr collected apart.
inline PluginResult Shell(E2eWorld& w, const std::string& cmd, const std::string& stdin_text = "") {
  static int n = 0;
  std::string base = w.dir + "/sh-" + std::to_string(++n);
  WriteFile(base + ".in", stdin_text);
  CommandResult r = RunCommand({"sh", "-c", "(" + cmd + ") <" + ShellQuote(base + ".in") + " >" + ShellQuote(base + ".out") +
                                                " 2>" + ShellQuote(base + ".err")});
  auto slurp = [](const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  };
  return {r.exit_code, slurp(base + ".out"), slurp(base + ".err")};
}

// kubectl-flowrun <args> --kubeconfig <kc> -n <world's namespace>. Completion
// (`__complete`, `completion`) reads every word after it as the line being
// completed, so there the kubeconfig comes from $KUBECONFIG, as when kubectl
// runs the plugin.
inline PluginResult Plugin(E2eWorld& w, const std::string& kubeconfig, const std::vector<std::string>& args,
                           const std::string& stdin_text = "") {
  bool completing = !args.empty() && (args[0] == "__complete" || args[0] == "completion");
  std::string cmd = (completing ? "KUBECONFIG=" + ShellQuote(kubeconfig) + " " : "") + ShellQuote(KUBECTL_FLOWRUN_BIN);
  for (const auto& a : args) cmd += " " + ShellQuote(a);
  if (!completing) cmd += " --kubeconfig " + ShellQuote(kubeconfig) + " -n " + ShellQuote(w.options.ns);
  PluginResult res = Shell(w, cmd, stdin_text);
  std::cerr << "$ kubectl-flowrun";
  for (const auto& a : args) std::cerr << " " << a;
  std::cerr << "   → exit " << res.exit_code << "\n" << res.out.substr(0, 4000) << res.err;
  return res;
}

}  // namespace flowrun::testing
