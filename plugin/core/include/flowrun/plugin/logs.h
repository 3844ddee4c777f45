// LogCursor: `logs -f` by polling pods/log?timestamps=true&sinceTime=<t>.
// The kubelet's sinceTime has second precision, so each poll returns lines
// already printed; the cursor remembers the newest timestamp printed and how
// many lines carried it, and hands out only the new lines (without their
// timestamp unless asked). Lines must come in time order, as the kubelet
// serves them.
#pragma once

#include <cstdint>
#include <string>

namespace flowrun::plugin {

class LogCursor {
 public:
  // The lines of `body` ("<RFC 3339 nano> <text>\n"...) not handed out yet,
  // each ending in '\n'; with `keep_timestamps` the timestamp stays in front.
  std::string Take(const std::string& body, bool keep_timestamps);
  // sinceTime for the next poll: the newest timestamp, cut to the second
  // ("2026-12-03T11:40:00Z"); "" before the first line.
  std::string since() const { return since_; }

 private:
  int64_t last_ns_ = INT64_MIN;  // nanoseconds since the epoch of the newest line handed out
  int64_t at_last_ = 0;          // lines handed out with exactly that time
  std::string since_;
};

// "2026-12-03T11:40:00.123456789Z" → nanoseconds since the epoch; false when it does not parse.
bool ParseNanos(const std::string& ts, int64_t* ns, std::string* whole_second);

}  // namespace flowrun::plugin
