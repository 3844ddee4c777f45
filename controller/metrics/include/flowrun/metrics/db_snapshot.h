// DbSnapshot: the flowrun totals read from PostgreSQL at one instant, and the
// pure mapping of a snapshot to Prometheus metric families.
//
// Rows come from flowrun.metric_contributions() plus flowrun.metric_rollup
// (counters; runtime-lib/src/postgres/migrations.cc, version 2) and from the
// open waits (gauges). `metric` is the database's key ("cost_usd", "tokens",
// ...); DbFamilies() names the family and its labels. Keys this build does not
// know (a newer schema) are skipped, never exported under a guessed name.
//
// Labels are bounded by construction: namespace, flow (spec.flow, never a run's
// name or uid), model, and a small enumerated `label` (token type, checkpoint
// source, retry reason, run status, histogram bound). Pure and thread
// compatible; no I/O.
#pragma once

#include <string>
#include <vector>

#include <prometheus/metric_family.h>

namespace flowrun::metrics {

struct DbRow {
  std::string metric;
  std::string ns;
  std::string flow;
  std::string model;  // "" when the metric has no model
  std::string label;  // the metric's extra label value ("" when none)
  double value = 0;
};

struct DbSnapshot {
  std::vector<DbRow> rows;
};

// The wait-response histogram's upper bounds in seconds (without +Inf); the
// database function uses the same list (as text).
const std::vector<double>& WaitResponseBounds();

// Every family a snapshot can produce, in a stable order; a family without
// rows is still returned (no samples), so HELP/TYPE are always exposed.
// Counters (and flowrun_waits_open, and the response histogram) are exported
// as 0 for every (namespace, flow) - or (namespace, flow, model) - that
// occurs anywhere in the snapshot, with their usual label values (token
// types, checkpoint sources, final statuses, the common retry reasons), so a
// series exists before its first increment and increase() sees it.
std::vector<prometheus::MetricFamily> DbFamilies(const DbSnapshot& snapshot);

}  // namespace flowrun::metrics
