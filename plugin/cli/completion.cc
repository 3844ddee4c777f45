// Shell completion. `kubectl-flowrun __complete <words...>` prints one
// candidate per line and then cobra's directive line (":4", no file
// completion) — the protocol kubectl (>= 1.26) uses for plugins through an
// executable `kubectl_complete-flowrun` on PATH (installed beside the
// plugin), and that the bash and zsh scripts of `completion bash|zsh` use for
// the plain `kubectl-flowrun` command. Candidates: subcommands, the flags of
// the subcommand, and FlowRun names of the namespace in effect.
#include <set>

#include "command.h"
#include "flowrun/json_fields.h"

namespace flowrun::plugin {

using nlohmann::json;

namespace {

const char kBash[] = R"SH(# bash completion for kubectl-flowrun (source it, or put it in /etc/bash_completion.d/)
_kubectl_flowrun() {
  local cur words
  cur="${COMP_WORDS[COMP_CWORD]}"
  words=("${COMP_WORDS[@]:1:COMP_CWORD}")
  local out
  out=$(kubectl-flowrun __complete "${words[@]}" 2>/dev/null | grep -v '^:')
  COMPREPLY=($(compgen -W "$out" -- "$cur"))
}
complete -F _kubectl_flowrun kubectl-flowrun
)SH";

const char kZsh[] = R"SH(#compdef kubectl-flowrun
# zsh completion for kubectl-flowrun (put it on $fpath as _kubectl-flowrun, or source it after compinit)
_kubectl_flowrun() {
  local -a candidates
  candidates=(${(f)"$(kubectl-flowrun __complete ${words[2,CURRENT]} 2>/dev/null | grep -v '^:')"})
  compadd -- $candidates
}
compdef _kubectl_flowrun kubectl-flowrun
)SH";

bool TakesRun(const std::string& cmd) {
  static const std::set<std::string> with_run = {"status", "answer", "budget", "cancel", "logs", "checkpoints",
                                                 "costs", "artifacts", "artifact", "diff", "replay"};
  return with_run.count(cmd) > 0;
}

}  // namespace

void AddCompletionCommands(CLI::App& app, Env& env, int& exit_code) {
  {
    auto shell = std::make_shared<std::string>();
    auto* c = app.add_subcommand("completion", "print a shell completion script (bash or zsh)");
    c->add_option("shell", *shell, "bash or zsh")->required()->check(CLI::IsMember({"bash", "zsh"}));
    c->footer("Examples:\n"
              "  source <(kubectl-flowrun completion bash)\n"
              "  kubectl-flowrun completion zsh > \"${fpath[1]}/_kubectl-flowrun\"\n"
              "With kubectl >= 1.26, `kubectl flowrun <TAB>` completes through kubectl_complete-flowrun,\n"
              "installed beside the plugin.");
    c->callback([&, shell] {
      *env.out << (*shell == "bash" ? kBash : kZsh);
      exit_code = kExitOk;
    });
  }
  auto* c = app.add_subcommand("__complete", "")->group("");  // hidden
  c->prefix_command();
  c->allow_extras();
  c->callback([&, c] {
    std::vector<std::string> words = c->remaining();
    std::string cur = words.empty() ? "" : words.back();
    if (!words.empty()) words.pop_back();
    std::vector<std::string> out;
    std::string sub;
    std::string ns, kubeconfig, context;
    size_t positionals = 0;
    for (size_t i = 0; i < words.size(); ++i) {
      const std::string& w = words[i];
      if ((w == "-n" || w == "--namespace") && i + 1 < words.size()) ns = words[++i];
      else if (w == "--kubeconfig" && i + 1 < words.size()) kubeconfig = words[++i];
      else if (w == "--context" && i + 1 < words.size()) context = words[++i];
      else if (!w.empty() && w[0] == '-') continue;
      else if (sub.empty()) sub = w;
      else ++positionals;
    }
    if (sub.empty()) {
      for (auto* s : app.get_subcommands([](CLI::App* a) { return !a->get_group().empty(); }))
        out.push_back(s->get_name());
    } else if (!cur.empty() && cur[0] == '-') {
      CLI::App* s = nullptr;
      try {
        s = app.get_subcommand(sub);
      } catch (const CLI::OptionNotFound&) {
      }
      if (s != nullptr)
        for (const auto* opt : s->get_options()) {
          for (const auto& l : opt->get_lnames()) out.push_back("--" + l);
          for (const auto& sn : opt->get_snames()) out.push_back("-" + sn);
        }
    } else if (TakesRun(sub) && (positionals == 0 || (sub == "diff" && positionals == 1))) {
      auto s = Session::Open({kubeconfig, context, ns});
      if (s.ok()) {
        auto l = (*s)->client().List(kube::resources::FlowRuns(), (*s)->ns(), {.limit = 500, .drop_managed_fields = true});
        if (l.ok())
          for (const auto& fr : l->items) out.push_back(JsonString(fr, "metadata", "name"));
      }
    } else if (sub == "costs" && words.size() && words.back() == "--by") {
      out = {"model", "checkpoint", "call"};
    }
    for (const auto& o : out)
      if (o.rfind(cur, 0) == 0) *env.out << o << "\n";
    *env.out << ":4\n";
    exit_code = kExitOk;
  });
}

}  // namespace flowrun::plugin
