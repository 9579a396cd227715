// Base64 (RFC 4648, standard alphabet) decoding of untrusted text. Pure functions, no state:
// thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "shm/status.h"

namespace k2::mm {

// Upper bound of the decoded size of `encoded_len` characters, so callers can refuse an
// oversized payload before decoding anything.
inline constexpr size_t base64_decoded_bound(size_t encoded_len) { return encoded_len / 4 * 3 + 3; }

// Decodes standard base64. ASCII whitespace (which mail-style line wrapping inserts) is
// skipped; padding is optional but, if present, must be at the end and complete the last
// quantum. Any other character, a lone trailing character, or more than `max_bytes` decoded
// bytes is an error.
Result<std::vector<uint8_t>> base64_decode(std::string_view text, size_t max_bytes);

}  // namespace k2::mm
