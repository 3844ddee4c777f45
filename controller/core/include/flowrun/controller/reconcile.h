// The FlowRun reconcile core: a pure function from what the controller
// observed (the FlowRun, its Jobs and Pods, the run's state in PostgreSQL,
// the time) to an ordered list of actions for adapters to execute. No I/O,
// no clock, no memory between calls: everything is derived from the inputs,
// so calling it twice with the same inputs gives the same actions, and
// applying its actions then calling it again gives no new ones.
//
// docs/reconcile.md has the decision table.
//
// What the adapters do with each action, and how they report failure, is
// written once, in flowrun/controller/actions.h.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "flowrun/controller/actions.h"
#include "flowrun/controller/config.h"
#include "flowrun/controller/types.h"
#include "flowrun/store_types.h"

namespace flowrun::controller {

struct ReconcileInput {
  nlohmann::json flowrun;                          // the FlowRun as the API returns it
  nlohmann::json jobs = nlohmann::json::array();   // its Jobs (filtered by owner uid)
  nlohmann::json pods = nlohmann::json::array();   // their Pods
  std::optional<RunState> run;                     // RunAdmin::GetRun; absent before the first attempt
  TimePoint now;
  ControllerConfig config;
};

struct ReconcileResult {
  std::vector<Action> actions;
  // Not OK when no decision could be made; `actions` is then empty.
  //   kInvalidArgument: the FlowRun itself is unusable (not an object, no name
  //     or uid). Permanent: retrying the same object fails again, so the loop
  //     reports it and waits for the object to change.
  //   kInternal: the core threw (a bug, or a JSON shape the parsers let
  //     through). Unexpected: the loop reports it and retries with backoff.
  // A malformed spec is not an error here: it is decided like any other
  // state (condition SpecValid=False, phase Failed).
  Status error;

  template <typename T>
  std::vector<const T*> All() const {
    std::vector<const T*> out;
    for (const auto& a : actions)
      if (const T* t = std::get_if<T>(&a)) out.push_back(t);
    return out;
  }
  template <typename T>
  const T* Find() const {
    for (const auto& a : actions)
      if (const T* t = std::get_if<T>(&a)) return t;
    return nullptr;
  }
  std::string Describe() const;  // one action per line
};

ReconcileResult Reconcile(const ReconcileInput& in);

// The Job of attempt `attempt`: deterministic name, labels, ownerReference,
// the agent container with the runtime's environment contract, a pod spec
// that passes Pod Security "restricted". Errors: the FlowRun is malformed
// (see FlowRunView::spec_errors).
StatusOr<nlohmann::json> BuildJob(const nlohmann::json& flowrun, int attempt, const ControllerConfig& config);
nlohmann::json BuildJob(const FlowRunView& flowrun, int attempt, const ControllerConfig& config);

// "<flowrun>-a<N>"; when that exceeds 63 characters the FlowRun's name is cut
// and an 8-hex-digit hash of the full name inserted, so names stay unique,
// deterministic and valid as a label value.
std::string JobName(const std::string& flowrun_name, int attempt);
// A valid label value (<= 63 characters, alphanumeric at both ends) for any
// string: itself when valid, else cleaned, cut and hashed.
std::string LabelValue(const std::string& s);

// RFC 7386 merge patch that turns `from` into `to` (objects recurse; a key
// missing from `to` becomes null; anything else is replaced whole). Empty
// object when they are equal.
nlohmann::json MergePatchDiff(const nlohmann::json& from, const nlohmann::json& to);
// Applies an RFC 7386 merge patch (what the API server does).
void ApplyMergePatch(nlohmann::json& target, const nlohmann::json& patch);

}  // namespace flowrun::controller
