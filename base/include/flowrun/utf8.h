// Cutting UTF-8 text to a byte budget (status fields, termination messages,
// Event messages all have size limits).
#pragma once

#include <cstddef>
#include <string>

namespace flowrun {

// `s` itself when it fits in `max_bytes`; otherwise its longest prefix that
// does not split a code point, followed by "...", at most `max_bytes` in all.
std::string TruncateUtf8(const std::string& s, size_t max_bytes);

}  // namespace flowrun
