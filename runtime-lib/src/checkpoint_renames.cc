// Renamed checkpoints (checkpoint_renames.h states the rule).
#include "checkpoint_renames.h"

#include <openssl/evp.h>

#include <cstdio>

namespace flowrun::internal {

std::string InputsDigest(const nlohmann::json& inputs) {
  // nlohmann::json objects are std::map-backed: dump() is canonical (sorted keys).
  std::string material = inputs.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(material.data(), material.size(), md, &len, EVP_sha256(), nullptr);
  std::string hex = "v1:";
  char buf[3];
  for (unsigned int i = 0; i < 16 && i < len; ++i) {
    std::snprintf(buf, sizeof buf, "%02x", md[i]);
    hex += buf;
  }
  return hex;
}

std::string_view BaseName(std::string_view identity) {
  // Reserve() builds "name[key]": the key is the bracketed tail.
  if (identity.empty() || identity.back() != ']') return identity;
  size_t open = identity.find('[');
  return open == std::string_view::npos || open == 0 ? identity : identity.substr(0, open);
}

RenameIndex::RenameIndex(const std::map<CheckpointKey, CachedCheckpoint>& completed) {
  for (const auto& [key, cp] : completed) {
    if (cp.kind != CheckpointKind::kStep || cp.place.position <= 0 || cp.place.inputs_digest.empty()) continue;
    by_position_[cp.place.position].push_back({key, cp.place.inputs_digest});
  }
}

std::optional<CheckpointKey> RenameIndex::RenamedFrom(const CheckpointKey& asked, const CheckpointPlace& place,
                                                      const std::function<bool(const CheckpointKey&)>& reserved,
                                                      const std::function<bool(std::string_view)>& declared) const {
  if (place.position <= 0 || place.inputs_digest.empty()) return std::nullopt;
  auto it = by_position_.find(place.position);
  if (it == by_position_.end()) return std::nullopt;
  for (const Candidate& c : it->second) {
    if (c.digest != place.inputs_digest || c.key.name == asked.name) continue;
    if (reserved(c.key)) continue;
    if (declared(c.key.name) || declared(BaseName(c.key.name))) continue;
    return c.key;
  }
  return std::nullopt;
}

}  // namespace flowrun::internal
