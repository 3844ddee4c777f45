// The agent of the plugin's cluster test: drafts (one LLM call), asks for a
// review whose answer is an object with a schema — approve (boolean), score
// (integer 1..5), comment (string ≤ 200), nothing else — then finalizes
// (one LLM call) and returns the review.
#include <flowrun/flowrun.h>

int main() {
  return flowrun::run_flow([](flowrun::Flow& flow) -> nlohmann::json {
    auto draft = flow.checkpoint("draft", [&] { return flow.llm().chat("Draft about " + flow.run().name); });
    nlohmann::json schema = {
        {"type", "object"},
        {"properties",
         {{"approve", {{"type", "boolean"}, {"description", "publish the draft?"}}},
          {"score", {{"type", "integer"}, {"minimum", 1}, {"maximum", 5}}},
          {"comment", {{"type", "string"}, {"maxLength", 200}}}}},
        {"required", {"approve", "score"}},
        {"additionalProperties", false}};
    auto review = flow.wait<nlohmann::json>("review", "Review the draft: approve it and give it a score", {.schema = schema});
    auto final = flow.checkpoint("final", [&] { return flow.llm().chat("Finalize with score " + review["score"].dump()); });
    return {{"review", review}, {"final", final}, {"draft", draft}};
  });
}
