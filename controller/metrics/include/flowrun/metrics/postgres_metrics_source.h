// The PostgreSQL MetricsSource: one dedicated connection (application_name
// flowrun-controller-metrics) that LISTENs on flowrun_metrics and reads
// sum(flowrun.metric_contributions(NULL) + flowrun.metric_rollup) and the open
// waits in one REPEATABLE READ READ ONLY transaction. Every statement is
// static and prepared; nothing is built from input. Needs schema version >= 2
// (flowrun::Migrate). The conninfo (with its password) is never logged.
#pragma once

#include <memory>
#include <string>

#include "flowrun/metrics/metrics_source.h"

namespace flowrun::metrics {

std::unique_ptr<MetricsSource> NewPostgresMetricsSource(std::string conninfo);

}  // namespace flowrun::metrics
