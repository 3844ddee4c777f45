// Replay: a new run that reuses the completed prefix of another run (its
// source) at no new cost, then runs live from a cut. The contract between the
// controller (which prepares a replay before its first attempt), the store
// (which snapshots the source) and the engine (which serves the snapshot).
//
// A replay is never an in-place rewrite of history: the replay is its own run
// (its own uid, rows, cost); the source is only read, once, when the replay is
// prepared. From then on the replay is independent of the source's life.
//
// Semantics (docs/replay.md):
//  - The new execution decides the prefix. Until it reaches the cut, each
//    checkpoint it asks for that has a completed row in the snapshot with the
//    same identity (name, occurrence or key) and the same fingerprint is served
//    from the snapshot's output (or from an override) and recorded in the
//    replay as *copied*: completed, with the source's usage as *inherited*
//    (never as spent). A checkpoint with no snapshot row runs live; a changed
//    fingerprint follows the run's divergence policy.
//  - The cut is the checkpoint named `cut.name` at occurrence `cut.occurrence`
//    (its identity as the engine computes it). From the moment the execution
//    asks for the cut, every checkpoint runs live, even where the snapshot has
//    an output. A run that ends without reaching the cut reports it
//    (ReplayInfo::cut_reached stays false).
//  - Artifacts saved inside copied checkpoints are copied with their versions.
//    A version the replay already holds under that name is kept when it has
//    the same bytes and content type (a repeated copy is idempotent); other
//    content there (the new code saved that name live first) is a clash: the
//    copy writes nothing and fails with kAlreadyExists naming the versions,
//    and the execution fails with that message (never a silent drop or
//    overwrite).
//  - An override applies to every occurrence of its checkpoint name that is
//    served from the snapshot; a wait's override must satisfy its schema.
//  - Early answers given with the replay are recorded exactly as
//    RunAdmin::RecordAnswer(allow_early=true) records them. They are for
//    waits the replay asks live (after the cut, or new): a wait served from
//    the snapshot keeps the source's answer (override its output to change it).
//  - The engine's side (Execution, RunStore::CheckpointCopied /
//    ReplayCutReached): docs/runtime-engine.md, "Serving a replay".
#pragma once

#include <map>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "flowrun/status.h"
#include "flowrun/store_types.h"  // ReplayCut, ReplayInfo

namespace flowrun {

// What the controller asks for, once, before the replay's first attempt.
struct ReplayRequest {
  std::string run_uid;         // the replay (a new run; its row may not exist yet)
  std::string namespace_, name, flow;
  std::string source_run_uid;  // the source run, in the same database
  std::string source_name;     // for status and lineage only
  ReplayCut cut;
  // Checkpoint name -> the output a reused checkpoint returns instead of the
  // source's. Validated (JSON, size-capped) by the caller and the store.
  std::map<std::string, nlohmann::json> output_overrides;
  // Wait name -> answer, recorded as early answers.
  std::map<std::string, nlohmann::json> answers;
};

}  // namespace flowrun
