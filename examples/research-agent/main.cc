// The research agent: research -> wait for a human's approval -> analysis.
//
// Run it in a local Kubernetes with scripts/demo.sh (as a FlowRun), or as a plain
// process with scripts/demo-local.sh. Every start runs the flow from the top:
// "research" comes from the cache after the first execution, the approval is
// asked once, and the analysis runs once.
#include <flowrun/flowrun.h>

int main() {
  return flowrun::run_flow([](flowrun::Flow& flow) -> nlohmann::json {
    auto topic = flow.parameters().value("topic", std::string("durable AI agents"));

    auto research = flow.checkpoint("research", [&] {
      return flow.llm().chat("Research the topic '" + topic + "'. List the three most important facts.");
    }, {.inputs = nlohmann::json{{"topic", topic}}});
    flow.save_artifact("research-notes", {{"topic", topic}, {"notes", research}});

    bool go = flow.wait<bool>("proceed", "Research on '" + topic + "' is complete. Proceed to analysis?");
    if (!go) return {{"status", "stopped"}, {"topic", topic}};

    auto analysis = flow.checkpoint("analyze", [&] {
      return flow.llm().chat("Analyze these research notes and give a recommendation: " + research);
    });
    return {{"status", "done"}, {"topic", topic}, {"analysis", analysis}};
  });
}
