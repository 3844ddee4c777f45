#include "flowrun/kube/list_watch_step.h"

#include <algorithm>

#include "flowrun/kube/errors.h"

namespace flowrun::kube {
namespace {

// client-go's reflector treats a watch that ends this soon without an event
// as a server failing (not a timeout) and backs off before the next one.
constexpr std::chrono::seconds kShortWatch{1};

ListWatchStep Backoff(ListWatchState& state, const ListWatchBackoff& b, double jitter) {
  state.backoff = state.backoff.count() == 0 ? b.initial : std::min(b.max, state.backoff * 2);
  jitter = std::clamp(jitter, 0.0, 1.0);
  auto d = std::chrono::milliseconds(
      static_cast<int64_t>(static_cast<double>(state.backoff.count()) * (1.0 + 0.25 * jitter)));
  ListWatchStep s;
  s.kind = ListWatchStep::Kind::kBackoff;
  s.delay = std::min(d, b.max);
  return s;
}

ListWatchStep Resume(const ListWatchState& state) {
  ListWatchStep s;
  if (!state.listed) return s;  // kList
  s.kind = ListWatchStep::Kind::kWatch;
  s.resource_version = state.resource_version;
  return s;
}

}  // namespace

ListWatchStep NextStep(ListWatchState& state, const ListWatchResult& r, const ListWatchBackoff& b, double jitter) {
  using K = ListWatchResult::Kind;
  switch (r.kind) {
    case K::kStarted:
      state.listed = false;
      return Resume(state);
    case K::kListed:
      state.listed = true;
      state.resource_version = r.resource_version;
      return Resume(state);
    case K::kListFailed:
      state.listed = false;
      return Backoff(state, b, jitter);
    case K::kWatchEnded: {
      if (!r.resource_version.empty()) state.resource_version = r.resource_version;
      if (r.events == 0 && r.elapsed < kShortWatch) {
        ListWatchStep s = Backoff(state, b, jitter);
        s.short_watch = true;
        return s;
      }
      state.backoff = std::chrono::milliseconds(0);
      return Resume(state);
    }
    case K::kWatchFailed:
      if (!r.resource_version.empty()) state.resource_version = r.resource_version;
      if (IsGone(r.status)) {
        state.listed = false;
        return Resume(state);
      }
      if (r.events > 0) state.backoff = std::chrono::milliseconds(0);
      return Backoff(state, b, jitter);
    case K::kSlept:
      return Resume(state);
  }
  return Resume(state);
}

}  // namespace flowrun::kube
