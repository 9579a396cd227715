// data: URLs (RFC 2397) carrying base64 media, as OpenAI-style clients send images inline:
// "data:image/png;base64,iVBOR...". A parser of request bytes: every malformed input is an
// error value. DataUrl owns its decoded bytes; the functions are pure and thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "shm/status.h"

namespace k2::mm {

enum class MediaKind { kImage, kVideo };

struct DataUrl {
  std::string media_type;  // normalised ("image/png"), parameters dropped
  std::vector<uint8_t> data;
};

// True when `url` starts with the data: scheme (case-insensitive), so a caller can route it.
bool is_data_url(std::string_view url);

// Parses and decodes. Rules: the scheme is "data:", the media type is one the `kind`
// supports (image_format.h lists them), the payload is base64 (";base64" is required: a
// percent-encoded binary image is not something clients send), and the decoded payload is at
// most `max_bytes` (checked from the encoded length before anything is decoded, and again
// while decoding). Errors are kInvalidArgument, or kOutOfRange for the size cap.
Result<DataUrl> parse_data_url(std::string_view url, MediaKind kind, size_t max_bytes);

}  // namespace k2::mm
