// The pixel values of a media item that travel with a step plan to the workers of a
// tensor-parallel group on other nodes, which cannot read the frontend's media arena
// (plan_fanout.h). Keyed by the item's content hash (MediaItem::hash_low/high), which is what
// the workers' encoder cache keys on too: items with the same content ship once.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace k2::protocol {

struct MediaPixels {
  uint64_t hash_low = 0, hash_high = 0;
  std::vector<float> values;  // float32 pixel_values, as in the arena block
};

// The entry for a hash; null when the plan did not ship it.
inline const MediaPixels* find_pixels(std::span<const MediaPixels> shipped, uint64_t hash_low, uint64_t hash_high) {
  for (const MediaPixels& p : shipped)
    if (p.hash_low == hash_low && p.hash_high == hash_high) return &p;
  return nullptr;
}

}  // namespace k2::protocol
