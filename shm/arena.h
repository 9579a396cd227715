// Arena: a shared-memory segment with a size-class (slab) allocator on top of a bump
// pointer, handing out ShmHandles whose generation detects use after free.
//
// Blocks come in power-of-two capacities (64 B, 128 B, ...). A freed block goes on its class's
// free list and is only ever reused whole for the same class, so block headers never move and a
// stale handle always finds a real header whose generation no longer matches. No coalescing:
// an arena is meant for a few recurring sizes (prompt arrays, plans, logprobs), not for
// general-purpose allocation.
//
// Ownership: the creating process owns the segment name (unlinked when the Arena is destroyed);
// peers open() it by name. Thread- and process-safe: allocate/free take a robust process-shared
// mutex in the segment (a holder that dies does not wedge the others); view/copy_out take no
// lock. The protocol decides who frees: a block must not be freed while a reader still uses a
// view of it (copy_out is safe even then: it reports the race instead of returning torn data).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "shm/handle.h"
#include "shm/segment.h"
#include "shm/status.h"

namespace k2 {

struct ArenaOptions {
  std::string run_id;     // see make_run_id()
  std::string name;       // segment name suffix, e.g. "prompts" or "kv-worker0"
  uint64_t arena_id = 0;  // carried in handles; unique within a run
  size_t bytes = 0;       // total segment size, header included
  int numa_node = -1;     // bind pages to this node when libnuma is available
};

class Arena {
 public:
  static constexpr size_t kMinBlock = 64;  // also the data alignment of every block

  static Result<Arena> create(const ArenaOptions& options);
  static Result<Arena> open(const std::string& segment_name);

  Arena(Arena&&) noexcept;
  Arena& operator=(Arena&&) noexcept;
  ~Arena();

  // A block of at least `bytes` (handle.bytes == bytes). kUnavailable when the arena is full.
  Result<ShmHandle> allocate(size_t bytes);
  // Returns the block to its free list; a stale or foreign handle is an error (no double free).
  Status free(const ShmHandle& handle);
  // allocate + copy.
  Result<ShmHandle> store(std::span<const std::byte> payload);

  // The handle's bytes, after checking arena id, bounds and generation.
  Result<std::span<std::byte>> view(const ShmHandle& handle) const;
  // Copies handle.bytes into dst (dst.size() must be >= handle.bytes), re-checking the generation
  // afterwards so a block freed during the copy is reported instead of returned.
  Status copy_out(const ShmHandle& handle, std::span<std::byte> dst) const;

  uint64_t id() const;
  const std::string& name() const { return segment_.name(); }
  size_t capacity() const { return segment_.size(); }
  size_t bytes_in_use() const;  // sum of capacities of live blocks
  bool numa_bound() const { return segment_.numa_bound(); }

 private:
  struct Header;
  explicit Arena(Segment segment);
  Header* header() const;
  Result<uint64_t> check(const ShmHandle& handle) const;  // -> block header offset

  Segment segment_;
};

}  // namespace k2
