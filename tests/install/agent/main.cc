#include <flowrun/flowrun.h>

int main() {
  return flowrun::run_flow([](flowrun::Flow& flow) -> nlohmann::json {
    int n = flow.checkpoint("answer", [] { return 42; });
    return {{"answer", n}};
  });
}
