// python_bench_cpp: the C++ side of bench/python_bench.py (Python vs C++ per
// checkpoint, same PostgreSQL, same run). It does exactly what the Python
// worker of python_bench.py does, through the same engine entry point a C++
// agent uses (Execution::OpenFromProcess: the environment, PostgreSQL, the
// fence), and prints its samples as one JSON line on stdout. It measures;
// it asserts nothing beyond "the engine did what the phase needs" (a cached
// phase that ran a body, or a live one that hit the cache, is an error).
//
// Usage (the run's identity and database come from FLOWRUN_* like any agent;
// python_bench.py sets them):
//   python_bench_cpp live N     open; N live checkpoints "step" (occurrences 1..N)
//   python_bench_cpp cached N   open; N checkpoints "step" that must all be cached
//   python_bench_cpp setup K    open; K live checkpoints (a run to resume later)
//   python_bench_cpp resume K   time open + K cached "step" + 1 live "step"
//   python_bench_cpp MODE N arg the checkpoint has inputs, as a Python
//                               checkpoint with one str argument has by default:
//                               {"function": ..., "args": {"topic": ...}}
// FLOWRUN_BENCH_PAYLOAD: the checkpoint output (JSON), the same on both sides.
// Output: {"open_us": x, "samples_us": [...], "cached_us": y, "live_us": z}
// (all times in microseconds, steady clock).
#include <chrono>
#include <ctime>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "flowrun/execution.h"
#include "flowrun/flow.h"

namespace {

using Json = nlohmann::json;
using SteadyClock = std::chrono::steady_clock;

// CPU time of the calling thread (CLOCK_THREAD_CPUTIME_ID, as Python's
// time.thread_time()): what a loaded machine's scheduling cannot blur.
double ThreadCpuUs() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e6 + static_cast<double>(ts.tv_nsec) / 1e3;
}

double UsSince(SteadyClock::time_point t0) {
  return std::chrono::duration<double, std::micro>(SteadyClock::now() - t0).count();
}

[[noreturn]] void Die(const std::string& what) {
  std::cerr << "python_bench_cpp: " << what << std::endl;
  std::exit(1);
}

int Main(int argc, char** argv) {
  if (argc != 3 && !(argc == 4 && std::string(argv[3]) == "arg"))
    Die("usage: python_bench_cpp live|cached|setup|resume N [arg]");
  const std::string mode = argv[1];
  const int n = std::atoi(argv[2]);
  if (n < 1 || (mode != "live" && mode != "cached" && mode != "setup" && mode != "resume"))
    Die("usage: python_bench_cpp live|cached|setup|resume N (N >= 1)");
  // The output both sides store: python_bench.py's PAYLOAD (the ~218-byte
  // JSON runtime_bench stores too), handed over so that it is defined once.
  const char* payload_text = std::getenv("FLOWRUN_BENCH_PAYLOAD");
  if (payload_text == nullptr) Die("FLOWRUN_BENCH_PAYLOAD (the checkpoint output, JSON) is not set");
  const Json payload = Json::parse(payload_text);
  flowrun::CheckpointOptions options;
  if (argc == 4) options.inputs = Json{{"function", "__main__.step"}, {"args", {{"topic", "quantum error correction"}}}};
  Json out = Json::object();

  auto t_open = SteadyClock::now();
  flowrun::OpenedExecution opened = flowrun::Execution::OpenFromProcess();
  double open_us = UsSince(t_open);
  if (!opened.execution) Die("the execution did not open (exit code " + std::to_string(opened.exit_code) + ")");
  out["open_us"] = open_us;
  flowrun::Execution& ex = *opened.execution;
  {
    flowrun::Flow flow(ex);
    bool body_ran = false;
    auto body = [&] {
      body_ran = true;
      return payload;
    };
    if (mode == "live" || mode == "cached" || mode == "setup") {
      std::vector<double> samples, cpu;
      samples.reserve(static_cast<size_t>(n));
      cpu.reserve(static_cast<size_t>(n));
      for (int i = 0; i < n; ++i) {
        body_ran = false;
        double c0 = ThreadCpuUs();
        auto t0 = SteadyClock::now();
        Json v = flow.checkpoint("step", body, options);
        samples.push_back(UsSince(t0));
        cpu.push_back(ThreadCpuUs() - c0);
        if (v.size() != payload.size()) Die("wrong output");
        if (mode == "cached" && body_ran) Die("a checkpoint expected cached ran its body");
        if (mode != "cached" && !body_ran) Die("a checkpoint expected live was cached");
      }
      out["samples_us"] = samples;
      out["cpu_us"] = cpu;
    } else {  // resume: the time from before the open to the end of the first live checkpoint
      auto t1 = SteadyClock::now();
      for (int i = 0; i < n; ++i) {
        body_ran = false;
        flow.checkpoint("step", body, options);
        if (body_ran) Die("resume: a cached checkpoint ran its body");
      }
      double cached_us = UsSince(t1);
      auto t2 = SteadyClock::now();
      body_ran = false;
      flow.checkpoint("step", body, options);
      double live_us = UsSince(t2);
      if (!body_ran) Die("resume: the last checkpoint was not live");
      out["cached_us"] = cached_us;
      out["live_us"] = live_us;
      out["samples_us"] = Json::array({UsSince(t_open)});
    }
  }
  // Not finished: like a process that is killed here; the next attempt fences it.
  std::cout << out.dump() << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char** argv) try {
  return Main(argc, argv);
} catch (const std::exception& e) {
  Die(e.what());
}
