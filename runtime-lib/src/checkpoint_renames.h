// Renamed checkpoints: how the engine tells "this checkpoint was renamed
// between attempts" from "this is a new checkpoint" (issue 11, semantics 3),
// for C++ and Python agents alike. Not installed; Execution uses it.
//
// What is recorded. Every Reserve() of an execution takes the next position
// (1, 2, ... in call order, steps and waits alike: program order, so a resumed
// execution of the same code reaches each checkpoint at the same position). A
// live step stores its position and its *inputs digest* — InputsDigest() of
// the inputs the driver names, the checkpoint's name left out — with its
// output (CheckpointPlace, migration 6).
//
// The rule. When an execution begins a step Y whose identity has no completed
// row (it would run live), Y is taken for a rename of X iff all of:
//   1. Y has inputs, and a completed step X of an earlier attempt sits at Y's
//      position with exactly Y's inputs digest;
//   2. X's identity name differs from Y's;
//   3. this execution has not reserved X so far (X is not on the code path
//      that led to Y);
//   4. the driver did not declare X's name as a checkpoint of the running code
//      (Execution::DeclareCheckpointNames: the Python SDK declares every
//      @checkpoint it has decorated; the C++ Flow declares none — C++
//      checkpoint names are strings at call sites, with no registry).
// Then the policy of Y decides: fail → divergence (kDataLoss, sticky) naming
// both ("was checkpoint 'X' renamed to 'Y'?"), nothing written; rerun → a
// warning and Y runs live beside X's untouched row.
//
// Why exactly these. A new checkpoint (a new code path; a replay with new
// code, issue 14) must run live, so a rename is claimed only on strong
// evidence: byte-identical inputs at the very place of a checkpoint whose name
// is gone. A new step with other inputs, at another position, or next to a
// still-declared old one, runs live. The residue, in C++ only: a new step
// inserted exactly before X, taking X's very inputs, looks like a rename until
// X is asked; `on_divergence = rerun` on the new step declares it new. A step
// without inputs has no digest and is never taken for a rename (the name is
// all that identifies it). Rows without a place — older than migration 6,
// copies served to a replay, waits — never match.
//
// Cost: an index position → candidates is built once from the loaded rows;
// the check runs only for a step about to run live and is a map lookup.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "flowrun/store_types.h"

namespace flowrun::internal {

// "v1:" + 32 hex digits of SHA-256 over the canonical JSON (sorted keys) of
// `inputs`: the name is not part of it, unlike CheckpointFingerprint.
std::string InputsDigest(const nlohmann::json& inputs);

class RenameIndex {
 public:
  // Indexes the completed steps that carry a place (position and digest).
  explicit RenameIndex(const std::map<CheckpointKey, CachedCheckpoint>& completed);

  // The X that `asked` (about to run live at `place`) was renamed from, by the
  // rule above. `reserved`: whether this execution has reserved a key so far;
  // `declared`: whether the driver declared a checkpoint name.
  std::optional<CheckpointKey> RenamedFrom(const CheckpointKey& asked, const CheckpointPlace& place,
                                           const std::function<bool(const CheckpointKey&)>& reserved,
                                           const std::function<bool(std::string_view)>& declared) const;

 private:
  struct Candidate {
    CheckpointKey key;
    std::string digest;
  };
  std::map<int, std::vector<Candidate>> by_position_;
};

// The base name of an identity name ("search[q]" → "search"): what a driver
// declares. An identity without a key is its own base name.
std::string_view BaseName(std::string_view identity);

}  // namespace flowrun::internal
