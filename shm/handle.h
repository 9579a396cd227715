// ShmHandle: what crosses processes instead of a large payload. It names a block inside a
// shared-memory arena; the generation makes a handle to a freed (and maybe reused) block
// detectably stale instead of silently reading someone else's data. A plain value type:
// trivially copyable, no padding, safe to memcpy or put on the wire field by field.
#pragma once

#include <cstdint>
#include <type_traits>

namespace k2 {

struct ShmHandle {
  uint64_t arena_id = 0;    // which arena (chosen by its owner, unique within a run)
  uint64_t offset = 0;      // byte offset of the block's data from the segment start
  uint64_t bytes = 0;       // payload bytes the sender wrote (<= the block's capacity)
  uint64_t generation = 0;  // block generation at allocation; 0 is never valid

  bool valid() const { return generation != 0; }
  bool operator==(const ShmHandle&) const = default;
};

static_assert(std::is_trivially_copyable_v<ShmHandle>);
static_assert(sizeof(ShmHandle) == 32, "no padding: the bytes of a handle are all fields");

}  // namespace k2
