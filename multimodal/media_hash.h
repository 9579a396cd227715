// The content hash the workers' encoder cache is keyed by. Kept apart from the media loader
// (which fetches and decodes) so that code that only needs the key, such as the workers,
// does not link the fetcher and the video decoder. Value type and pure function:
// thread-safe.
#pragma once

#include <cstdint>

#include "multimodal/image_preprocess.h"

namespace k2::mm {

struct ContentHash {
  uint64_t low = 0, high = 0;
  bool operator==(const ContentHash&) const = default;
};

// XXH3-128 of the float32 pixel_values followed by grid_thw (three little-endian int64s):
// two items share a hash only when the encoder would see the same input.
ContentHash media_content_hash(const PreprocessedMedia& media);

}  // namespace k2::mm
