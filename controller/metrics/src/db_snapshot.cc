#include "flowrun/metrics/db_snapshot.h"

#include <cmath>
#include <cstdlib>
#include <limits>
#include <map>
#include <set>
#include <tuple>
#include <unordered_map>

namespace flowrun::metrics {

namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

// How one database key becomes a family.
struct Spec {
  const char* key;
  const char* name;
  const char* help;
  MetricType type;
  bool has_model;
  const char* label_name;  // nullptr: the row's label is unused
  // Label values exported as 0 until they occur, for every (namespace, flow)
  // - or (namespace, flow, model) - the snapshot knows. A counter series that
  // first appears at 1 hides that increment from increase()/rate() (and so
  // from the alerts); one that exists at 0 from the run's start does not.
  std::vector<const char*> zeros;
};

// One table so the names, help texts and label sets live in one place
// (docs/metrics.md lists the same).
const std::vector<Spec>& Specs() {
  static const std::vector<Spec> kSpecs = {
      {"cost_usd", "flowrun_cost_usd_total", "USD spent on LLM calls (unpriced calls count 0)", MetricType::Counter,
       true, nullptr, {""}},
      {"llm_calls", "flowrun_llm_calls_total", "LLM calls made", MetricType::Counter, true, nullptr, {""}},
      {"unpriced_llm_calls", "flowrun_llm_calls_unpriced_total",
       "LLM calls whose model is not in the price table (cost unknown)", MetricType::Counter, true, nullptr, {""}},
      {"tokens", "flowrun_tokens_total", "LLM tokens by type (input, output, cached)", MetricType::Counter, true,
       "type", {"input", "output", "cached"}},
      {"saved_usd", "flowrun_saved_usd_total",
       "USD the cache avoided: checkpoints returned from the cache, valued at their recorded LLM calls",
       MetricType::Counter, false, nullptr, {""}},
      {"saved_llm_calls", "flowrun_saved_llm_calls_total", "LLM calls the cache avoided", MetricType::Counter, false,
       nullptr, {""}},
      {"saved_tokens", "flowrun_saved_tokens_total", "tokens the cache avoided, by type", MetricType::Counter, false,
       "type", {"input", "output", "cached"}},
      {"checkpoints", "flowrun_checkpoints_total",
       "checkpoints by source: executed live or returned from the cache (counted when the attempt ends)",
       MetricType::Counter, false, "source", {"live", "cache"}},
      {"attempts", "flowrun_attempts_total", "attempts started (retries and resumes included)", MetricType::Counter,
       false, nullptr, {""}},
      {"retries", "flowrun_retries_total",
       "attempts started because the previous one did not end cleanly, by that attempt's outcome",
       MetricType::Counter, false, "reason", {"interrupted", "failed"}},
      {"budget_suspensions", "flowrun_budget_suspensions_total", "attempts suspended because the budget ran out",
       MetricType::Counter, false, nullptr, {""}},
      {"runs_finished", "flowrun_runs_finished_total", "runs that ended, by final status", MetricType::Counter, false,
       "status", {"succeeded", "failed", "cancelled"}},
      {"waits_asked", "flowrun_waits_asked_total", "questions asked by wait()", MetricType::Counter, false, nullptr,
       {""}},
      {"wait_timeouts", "flowrun_wait_timeouts_total", "waits whose deadline passed without a human answer",
       MetricType::Counter, false, nullptr, {""}},
      {"wait_response_seconds", "flowrun_wait_response_seconds",
       "time from a wait's question to a human's answer", MetricType::Histogram, false, nullptr},
      {"waits_open", "flowrun_waits_open", "runs waiting for an answer now", MetricType::Gauge, false, nullptr, {""}},
      {"wait_oldest_asked", "flowrun_wait_oldest_asked_timestamp_seconds",
       "when the oldest open question was asked (unix seconds)", MetricType::Gauge, false, nullptr},
  };
  return kSpecs;
}

constexpr const char* kBucketSuffix = "_bucket";
constexpr const char* kSumSuffix = "_sum";

bool EndsWith(const std::string& s, const char* suffix, std::string* stem) {
  std::string suf(suffix);
  if (s.size() <= suf.size() || s.compare(s.size() - suf.size(), suf.size(), suf) != 0) return false;
  *stem = s.substr(0, s.size() - suf.size());
  return true;
}

std::vector<ClientMetric::Label> Labels(const Spec& spec, const DbRow& r) {
  std::vector<ClientMetric::Label> l;
  l.push_back({"namespace", r.ns});
  l.push_back({"flow", r.flow});
  if (spec.has_model) l.push_back({"model", r.model});
  if (spec.label_name) l.push_back({spec.label_name, r.label});
  return l;
}

}  // namespace

const std::vector<double>& WaitResponseBounds() {
  static const std::vector<double> kBounds = {10, 30, 60, 300, 900, 1800, 3600, 7200, 14400, 28800, 86400, 259200};
  return kBounds;
}

std::vector<MetricFamily> DbFamilies(const DbSnapshot& snapshot) {
  const auto& specs = Specs();
  std::unordered_map<std::string, size_t> index;
  std::vector<MetricFamily> out(specs.size());
  for (size_t i = 0; i < specs.size(); ++i) {
    index[specs[i].key] = i;
    out[i].name = specs[i].name;
    out[i].help = specs[i].help;
    out[i].type = specs[i].type;
  }
  // Histogram rows arrive as separate bucket/sum rows: gather per (ns, flow).
  struct Hist {
    std::map<double, double> buckets;  // bound -> cumulative count
    double count = 0, sum = 0;
  };
  std::map<std::pair<std::string, std::string>, Hist> hists;
  // (family, namespace, flow, model, label) -> value; ordered for a stable output.
  using Key = std::tuple<size_t, std::string, std::string, std::string, std::string>;
  std::map<Key, double> values;
  std::set<std::pair<std::string, std::string>> flows;
  std::set<std::tuple<std::string, std::string, std::string>> models;
  for (const DbRow& r : snapshot.rows) {
    flows.insert({r.ns, r.flow});
    auto it = index.find(r.metric);
    if (it != index.end() && specs[it->second].has_model) models.insert({r.ns, r.flow, r.model});
  }
  for (size_t i = 0; i < specs.size(); ++i) {
    for (const char* z : specs[i].zeros) {
      if (specs[i].has_model) {
        for (const auto& [ns, flow, model] : models) values[Key{i, ns, flow, model, z}] = 0;
      } else {
        for (const auto& [ns, flow] : flows) values[Key{i, ns, flow, "", z}] = 0;
      }
    }
  }
  for (const auto& f : flows) hists[f];
  for (const DbRow& r : snapshot.rows) {
    std::string stem;
    if (EndsWith(r.metric, kBucketSuffix, &stem) && stem == "wait_response_seconds") {
      Hist& h = hists[{r.ns, r.flow}];
      if (r.label == "+Inf")
        h.count = r.value;
      else
        h.buckets[std::strtod(r.label.c_str(), nullptr)] = r.value;
      continue;
    }
    if (EndsWith(r.metric, kSumSuffix, &stem) && stem == "wait_response_seconds") {
      hists[{r.ns, r.flow}].sum = r.value;
      continue;
    }
    auto it = index.find(r.metric);
    if (it == index.end() || specs[it->second].type == MetricType::Histogram) continue;
    values[Key{it->second, r.ns, r.flow, r.model, r.label}] = r.value;
  }
  for (const auto& [k, v] : values) {
    const Spec& spec = specs[std::get<0>(k)];
    DbRow r{"", std::get<1>(k), std::get<2>(k), std::get<3>(k), std::get<4>(k), v};
    ClientMetric m;
    m.label = Labels(spec, r);
    if (spec.type == MetricType::Counter)
      m.counter.value = v;
    else
      m.gauge.value = v;
    out[std::get<0>(k)].metric.push_back(std::move(m));
  }
  size_t hi = index.at("wait_response_seconds");
  for (const auto& [key, h] : hists) {
    ClientMetric m;
    m.label = {{"namespace", key.first}, {"flow", key.second}};
    m.histogram.sample_count = static_cast<uint64_t>(std::llround(h.count));
    m.histogram.sample_sum = h.sum;
    // A bound without a row counted nothing: counts are cumulative, so only
    // the bounds below the smallest observation lack rows.
    double running = 0;
    for (double b : WaitResponseBounds()) {
      auto f = h.buckets.find(b);
      if (f != h.buckets.end()) running = f->second;
      m.histogram.bucket.push_back({static_cast<uint64_t>(std::llround(running)), b});
    }
    m.histogram.bucket.push_back({m.histogram.sample_count, std::numeric_limits<double>::infinity()});
    out[hi].metric.push_back(std::move(m));
  }
  return out;
}

}  // namespace flowrun::metrics
