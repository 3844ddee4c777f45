// Which watch updates are worth a reconcile (B1 in the architecture review).
//
// Every reconcile reads the run from PostgreSQL (RunAdmin::GetRun), so an
// update that changes nothing the core reads is pure cost. Most updates are
// the controller's own echo: its status patches come back as FlowRun
// MODIFIED events, and the Jobs it creates change status (pod IPs, ready
// counts, probe times) in ways the core never looks at.
//
// Safe because the core reaches its fixpoint in one pass (applying its
// actions and reconciling again yields no new actions; core_test's
// World::Step asserts it), and because time-driven work is scheduled with
// RequeueAfter, not by waiting for the next event. Adds and deletes always
// enqueue; these predicates are for updates only.
//
// Pure functions of their arguments; thread-safe.
#pragma once

#include <nlohmann/json.hpp>

namespace flowrun::controller::app {

// True when spec, metadata.generation, deletionTimestamp, finalizers, labels,
// annotations or status.answers differ. Not: the rest of status (the
// controller owns it), resourceVersion, managedFields.
bool FlowRunUpdateMatters(const nlohmann::json& old_obj, const nlohmann::json& new_obj);

// True when a field the core reads (ParseJob in controller/core/src/types.cc)
// differs: identity, deletion, finalizers, labels, annotations, owners, and
// status active/succeeded/failed/startTime/completionTime/conditions.
bool JobUpdateMatters(const nlohmann::json& old_obj, const nlohmann::json& new_obj);

// True when a field the core reads (ParsePod) differs: identity, deletion,
// labels, annotations, owners, status phase/reason/message, the
// type/status/reason/message of conditions, and each container's name and
// state (waiting/running/terminated with their reasons, exit code, times).
// Not: IPs, ready/started flags, restart counts, probe times.
bool PodUpdateMatters(const nlohmann::json& old_obj, const nlohmann::json& new_obj);

// The fields of `obj` the functions above compare (exposed for tests and
// for logs that say why a key was enqueued).
nlohmann::json FlowRunRelevant(const nlohmann::json& obj);
nlohmann::json JobRelevant(const nlohmann::json& obj);
nlohmann::json PodRelevant(const nlohmann::json& obj);

// For InformerOptions::keep_managed_field on FlowRuns: keeps only the
// managedFields entries that own something under f:status → f:answers, which
// is what the core reads to say who answered (answeredBy). Everything else
// is dropped before caching, as for every other informer.
bool ManagedFieldTouchesAnswers(const nlohmann::json& entry);

}  // namespace flowrun::controller::app
