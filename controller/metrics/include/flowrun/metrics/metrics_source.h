// MetricsSource: where DbTotals reads the flowrun totals and learns that they
// changed. The PostgreSQL adapter (postgres_metrics_source.h) LISTENs on the
// flowrun_metrics channel; tests can script one.
//
// Contract: used by one thread at a time (DbTotals' refresher). Connect()
// (re)connects and subscribes to change notifications *before* returning, so
// a Read() after it misses no change. Read() returns a complete, consistent
// snapshot (one database snapshot). AwaitChange() blocks up to `timeout`:
// true when a change was notified, false on timeout; an error means the
// connection is gone (call Connect() again). Errors are kUnavailable when the
// database cannot be reached.
#pragma once

#include <chrono>

#include "flowrun/metrics/db_snapshot.h"
#include "flowrun/status.h"

namespace flowrun::metrics {

class MetricsSource {
 public:
  virtual ~MetricsSource() = default;
  virtual Status Connect() = 0;
  virtual StatusOr<DbSnapshot> Read() = 0;
  virtual StatusOr<bool> AwaitChange(std::chrono::milliseconds timeout) = 0;
};

}  // namespace flowrun::metrics
