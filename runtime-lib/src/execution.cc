#include "flowrun/execution.h"

#include <openssl/evp.h>

#include <cstdio>

namespace flowrun {

std::string CheckpointFingerprint(CheckpointKind kind, std::string_view name,
                                  const std::optional<nlohmann::json>& inputs) {
  // nlohmann::json objects are std::map-backed: dump() is canonical (sorted keys).
  std::string material = std::string(CheckpointKindName(kind)) + '\0' + std::string(name) + '\0' +
                         (inputs ? inputs->dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) : "");
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(material.data(), material.size(), md, &len, EVP_sha256(), nullptr);
  std::string hex = "v1:";
  char buf[3];
  for (unsigned int i = 0; i < 16 && i < len; ++i) {  // 128 bits is plenty to tell inputs apart
    std::snprintf(buf, sizeof buf, "%02x", md[i]);
    hex += buf;
  }
  return hex;
}

}  // namespace flowrun
