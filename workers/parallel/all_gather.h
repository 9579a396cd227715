// all_gather_segments: every rank holds the same buffer layout, cut into segments that each
// one rank fills; afterwards every rank holds every segment. (Used by the vision encoder's
// data-parallel mode: each rank encodes its share of the media items, every rank needs all
// of their embeddings; the segments may be of any, uneven, sizes.)
//
// Built on Communicator::all_reduce_sum: the rank zeroes the segments it does not own, then
// the buffers are summed over the ranks in rank order. Each element has exactly one
// contributor and x + 0 = x, so every segment arrives bit for bit (a −0.0 arrives as +0.0).
// It moves N times the bytes a dedicated all-gather would; for embeddings (a few MB per
// image) that is small next to encoding them.
//
// A free function; the collective rules of Communicator apply (every rank calls it with
// the same offsets and owners, in the same order).
#pragma once

#include <cstddef>
#include <span>

#include "shm/status.h"
#include "workers/parallel/communicator.h"

namespace k2 {

// Segment i is data[offsets[i], offsets[i + 1]), filled by rank owner[i]
// (offsets.size() == owner.size() + 1, non-decreasing, ending at most at data.size()).
Status all_gather_segments(Communicator& comm, std::span<float> data, std::span<const size_t> offsets,
                           std::span<const int> owner);

}  // namespace k2
