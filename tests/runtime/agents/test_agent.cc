// An agent for the runtime tests: one binary, scenarios chosen by the run's
// parameters ({"scenario": "...", ...}). Each scenario is real agent code
// against the real library; the tests run it as a child process.
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <thread>

#include <flowrun/flowrun.h>

namespace {

using nlohmann::json;

void SleepMs(int ms) {
  if (ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(ms));
}

// N checkpoints, each one LLM call; a sleep inside each body spreads kill points.
// "hang_at_step": k makes attempt "hang_attempt" (default 1) stop inside step
// k's body, before its LLM call, until it is killed: a test kills it at a known
// point (step k started, steps 1..k-1 completed) instead of racing the chain.
// For replays (issue 14), "new code" through parameters: "live_prefix" is the
// prompt prefix of steps >= "live_prefix_from" (a changed prompt from there
// on); "feed_previous": each prompt ends with " after: <previous step's
// output>" (shows what a step received, e.g. an overridden output);
// "wait_after": k asks wait "proceed" (boolean) after step k; "fail_at_step":
// k makes step k throw before its LLM call (with retry maxAttempts 1 the run
// ends Failed; a replay from step k with fail_at_step=0 fixes it).
json Chain(flowrun::Flow& flow, const json& p) {
  int steps = p.value("steps", 40);
  int sleep_ms = p.value("sleep_ms", 0);
  int hang_at_step = p.value("hang_at_step", 0);
  int hang_attempt = p.value("hang_attempt", 1);
  std::string prefix = p.value("prefix", std::string("step"));
  int live_prefix_from = p.value("live_prefix_from", 0);
  std::string live_prefix = p.value("live_prefix", prefix);
  bool feed_previous = p.value("feed_previous", false);
  int wait_after = p.value("wait_after", 0);
  int fail_at_step = p.value("fail_at_step", 0);
  std::string acc;
  for (int i = 1; i <= steps; ++i) {
    acc = flow.checkpoint("step-" + std::to_string(i), [&] {
      if (i == hang_at_step && flow.attempt() == hang_attempt)
        for (;;) SleepMs(100);  // until the test kills the pod
      if (i == fail_at_step) throw std::runtime_error("step " + std::to_string(i) + " fails (fail_at_step)");
      SleepMs(sleep_ms);
      std::string prompt = (live_prefix_from > 0 && i >= live_prefix_from ? live_prefix : prefix) + " " +
                           std::to_string(i) + " of run " + flow.run().uid;
      if (feed_previous) prompt += " after: " + acc;
      std::string reply = flow.llm().chat(prompt);
      SleepMs(sleep_ms);
      return reply;
    });
    if (i == wait_after) (void)flow.wait<bool>("proceed", "Go on after step " + std::to_string(i) + "?");
  }
  return {{"steps", steps}, {"last", acc}};
}

json Loop(flowrun::Flow& flow, const json& p) {
  int n = p.value("n", 3);
  json outs = json::array();
  for (int i = 0; i < n; ++i) outs.push_back(flow.checkpoint("iterate", [&] { return i * 10; }));
  return {{"outs", outs}};
}

json Diverge(flowrun::Flow& flow, const json& p) {
  std::string variant = p.value("variant", std::string("a"));
  auto out = flow.checkpoint("plan", [&] { return "plan for " + variant; }, {.inputs = json{{"variant", variant}}});
  if (p.value("stop_after_plan", false)) {
    bool go = flow.wait<bool>("go", "Go on?");
    (void)go;
  }
  return {{"plan", out}};
}

// Fails its first `fail_times` tries (counted in a file), retried per policy.
json Flaky(flowrun::Flow& flow, const json& p) {
  std::string counter = p.at("counter_file").get<std::string>();
  int fail_times = p.value("fail_times", 2);
  int max_tries = p.value("max_tries", 3);
  flowrun::CheckpointOptions opts;
  opts.retry.max_tries = max_tries;
  opts.retry.initial_backoff = std::chrono::milliseconds(10);
  auto out = flow.checkpoint("flaky", [&] {
    int n = 0;
    { std::ifstream in(counter); in >> n; }
    { std::ofstream out(counter); out << n + 1; }
    if (n < fail_times) throw std::runtime_error("transient failure #" + std::to_string(n + 1));
    return n + 1;
  }, opts);
  return {{"tries", out}};
}

json BigOutput(flowrun::Flow& flow, const json& p) {
  size_t bytes = p.value("bytes", 100000);
  flow.checkpoint("small", [] { return 1; });
  auto big = flow.checkpoint("big", [&] { return std::string(bytes, 'x'); });
  return {{"len", big.size()}};
}

json NotSerializable(flowrun::Flow& flow, const json&) {
  flow.checkpoint("bad-utf8", [] { return std::string("\xff\xfe not utf-8"); });
  return {{"unreachable", true}};
}

json Budget(flowrun::Flow& flow, const json& p) {
  int steps = p.value("steps", 5);
  json outs = json::array();
  for (int i = 1; i <= steps; ++i)
    outs.push_back(flow.checkpoint("spend-" + std::to_string(i), [&] { return flow.llm().chat("spend " + std::to_string(i)); }));
  return {{"steps", steps}};
}

json SqlNames(flowrun::Flow& flow, const json&) {
  std::string evil = "x'); DROP TABLE flowrun.runs; -- \"quoted\" \\ back";
  auto a = flow.checkpoint(evil, [&] { return evil; });
  flow.save_artifact(evil, {{"v", evil}});
  bool ok = flow.wait<bool>(evil, "evil question '; DROP TABLE flowrun.waits; --");
  return {{"a", a}, {"ok", ok}};
}

json WaitTimeout(flowrun::Flow& flow, const json& p) {
  flowrun::WaitOptions w;
  w.timeout = std::chrono::seconds(p.value("timeout_s", 1));
  w.on_timeout = p.value("policy", std::string("default")) == "default" ? flowrun::OnTimeout::kUseDefault
                                                                          : flowrun::OnTimeout::kFail;
  w.default_answer = json("fallback");
  auto answer = flow.wait<std::string>("review", "Review please", w);
  return {{"answer", answer}};
}

json UnknownModel(flowrun::Flow& flow, const json&) {
  for (int i = 0; i < 3; ++i) {
    flow.checkpoint("call-" + std::to_string(i), [&] {
      flowrun::ChatRequest req;
      req.model = "mystery-model";
      req.messages.push_back({"user", "unknown " + std::to_string(i)});
      return flow.llm().Chat(req).content;
    });
  }
  return {{"ok", true}};
}

json Artifacts(flowrun::Flow& flow, const json& p) {
  int v = flow.checkpoint("draft", [&] {
    flow.save_artifact("report", {{"score", p.value("score", 1)}, {"text", "draft"}});
    return flow.save_artifact("report", {{"score", p.value("score", 1)}, {"text", "final"}});
  });
  flow.save_artifact_bytes("blob", std::string("a\0b", 3), "application/octet-stream");
  return {{"version", v}};
}

json Throws(flowrun::Flow& flow, const json&) {
  flow.checkpoint("ok", [] { return 1; });
  flow.checkpoint("boom", []() -> int { throw std::runtime_error("the model returned nonsense"); });
  return {{"unreachable", true}};
}

// One LLM call at flow scope, outside any checkpoint (the Python twin is
// flow_llm in sdk/python/tests/agents/basic.py; test_parity.py compares them).
json FlowLlm(flowrun::Flow& flow, const json& p) {
  std::string reply = flow.llm().chat(p.value("prompt", std::string("at flow scope")));
  return {{"reply", reply}};
}

}  // namespace

int main() {
  return flowrun::run_flow([](flowrun::Flow& flow) -> json {
    const json& p = flow.parameters();
    std::string scenario = p.value("scenario", std::string("chain"));
    if (scenario == "chain") return Chain(flow, p);
    if (scenario == "loop") return Loop(flow, p);
    if (scenario == "diverge") return Diverge(flow, p);
    if (scenario == "flaky") return Flaky(flow, p);
    if (scenario == "big_output") return BigOutput(flow, p);
    if (scenario == "not_serializable") return NotSerializable(flow, p);
    if (scenario == "budget") return Budget(flow, p);
    if (scenario == "sql_names") return SqlNames(flow, p);
    if (scenario == "wait_timeout") return WaitTimeout(flow, p);
    if (scenario == "unknown_model") return UnknownModel(flow, p);
    if (scenario == "artifacts") return Artifacts(flow, p);
    if (scenario == "throws") return Throws(flow, p);
    if (scenario == "flow_llm") return FlowLlm(flow, p);
    throw std::runtime_error("unknown scenario " + scenario);
  });
}
