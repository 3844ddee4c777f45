// DbTotals: keeps the flowrun_* totals read from PostgreSQL fresh and serves
// them as a prometheus::Collectable.
//
// A refresher thread connects (LISTEN first), reads a full snapshot, then
// waits for a change notification or `max_interval` (the fallback when
// notifications are lost), lets `min_interval` - or 9x the last read's
// duration if longer - pass since the last read (a burst of commits costs one
// read; metrics never take more than a tenth of the database) and reads again. After any error it
// reconnects with backoff and re-reads everything, so a change committed while
// disconnected is never missed. The values are absolute (the database is the
// source of truth), so they survive restarts and leader changes, and every
// replica exports the same numbers: queries deduplicate with
// `max without (instance, pod)` (docs/metrics.md).
//
// Until the first successful read nothing DB-derived is exported (zeros would
// read as a counter reset). Families are built at refresh time, so Collect()
// only copies a shared pointer. Thread safe. Start() once; Stop() (also the
// destructor) interrupts any wait and joins.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include "flowrun/clock.h"
#include "flowrun/metrics/metrics_source.h"

namespace flowrun::metrics {

struct DbTotalsOptions {
  std::chrono::milliseconds min_interval{1000};   // between two reads (at least)
  int read_load_factor = 9;  // and at least this many times the last read's duration
  std::chrono::milliseconds max_interval{30000};  // read at least this often
  std::chrono::milliseconds backoff_initial{500};
  std::chrono::milliseconds backoff_max{30000};
  // Timestamps, read durations, the pauses between reads and the backoff
  // sleeps (interrupted by Stop()). Not owned; nullptr: DefaultClock().
  Clock* clock = nullptr;
  // Called after every read with its duration and whether it succeeded.
  std::function<void(std::chrono::nanoseconds, bool ok)> on_read;
  // Called on connection and read errors (for logs); message has no secrets.
  std::function<void(const Status&)> on_error;
};

class DbTotals final : public prometheus::Collectable {
 public:
  DbTotals(std::unique_ptr<MetricsSource> source, DbTotalsOptions options);
  ~DbTotals() override;
  DbTotals(const DbTotals&) = delete;
  DbTotals& operator=(const DbTotals&) = delete;

  void Start();
  void Stop();

  // Successful reads so far, and reads started so far. A read that starts
  // after a change sees it: to wait for one, take `reads_started() + 1`
  // *before* the change and pass it to WaitForReads.
  uint64_t reads() const { return reads_.load(); }
  uint64_t reads_started() const;
  // Blocks until `n` reads have succeeded (true) or `timeout` passed.
  bool WaitForReads(uint64_t n, std::chrono::milliseconds timeout);

  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  void Loop();
  bool SleepFor(std::chrono::milliseconds d);  // false: stopping
  void Publish(const DbSnapshot& s);

  std::unique_ptr<MetricsSource> source_;
  DbTotalsOptions options_;
  Clock* clock_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::shared_ptr<const std::vector<prometheus::MetricFamily>> families_;
  double last_success_ = 0;  // unix seconds
  uint64_t errors_ = 0;
  std::atomic<uint64_t> reads_{0};
  uint64_t reads_started_ = 0;
  std::thread thread_;
};

}  // namespace flowrun::metrics
