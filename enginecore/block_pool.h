// BlockPool: the enginecore's index of the worker-owned paged KV cache (vLLM V1's
// block_pool.py). It owns no KV memory, only per-block metadata: a reference count, the
// prefix-cache hash a full block carries, and an intrusive doubly linked free queue.
//
// Free queue = LRU order of eviction: allocation pops the head and evicts the hash the block
// carried; a block whose count drops to 0 is appended at the tail still carrying its hash, so
// a later prefix hit can take it back ("touch") from the middle of the queue in O(1).
// Block 0 is the null block: never handed out, so workers may pad block tables with it.
// Not thread-safe; owned by one KvBlockManager.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <unordered_map>
#include <vector>

#include "enginecore/request_state.h"
#include "shm/status.h"

namespace k2::engine {

inline constexpr BlockId kNullBlock = 0;

struct BlockHashHasher {
  size_t operator()(const BlockHash& h) const { return static_cast<size_t>(h.low ^ (h.high * 31)); }
};

class BlockPool {
 public:
  // `num_blocks` includes the null block; needs at least 2.
  explicit BlockPool(int32_t num_blocks);
  BlockPool(const BlockPool&) = delete;
  BlockPool& operator=(const BlockPool&) = delete;
  BlockPool(BlockPool&&) = default;
  BlockPool& operator=(BlockPool&&) = default;

  int32_t num_blocks() const { return static_cast<int32_t>(ref_counts_.size()); }
  int32_t num_usable_blocks() const { return num_blocks() - 1; }
  // Blocks with no reference, cached ones included (they are evicted on demand).
  int32_t num_free_blocks() const { return num_free_; }

  // Pops `n` blocks from the LRU head (evicting their hashes), appends them to `table`
  // with count 1. The caller checked num_free_blocks() >= n.
  void allocate(int32_t n, std::vector<BlockId>& table);
  // Takes one more reference to a cached block (a prefix hit), unlinking it if it was free.
  void touch(BlockId block);
  // Drops one reference per block; blocks reaching 0 join the tail in reverse table order,
  // so a request's last blocks are evicted before its first (shared-prefix) ones.
  void release(std::span<const BlockId> table);

  std::optional<BlockId> lookup(const BlockHash& hash) const;
  // Registers a full, computed block under `hash`. An identical block already registered
  // wins (block tables are append-only, so duplicates are not merged, as vLLM).
  void cache(BlockId block, const BlockHash& hash);
  // Forgets every cached hash; refused (false) while any block is referenced, as vLLM.
  bool reset_prefix_cache();

  int32_t ref_count(BlockId block) const { return ref_counts_[static_cast<size_t>(block)]; }
  bool is_cached(BlockId block) const { return cached_[static_cast<size_t>(block)]; }
  int32_t num_cached_blocks() const { return static_cast<int32_t>(by_hash_.size()); }
  // Free blocks from LRU head to tail (tests and invariant checks).
  std::vector<BlockId> free_queue() const;

  // Compares every count with `expected_refs` (indexed by block id) and checks that the free
  // queue holds exactly the unreferenced blocks and the hash index points at hashed blocks.
  Status check_consistency(std::span<const int32_t> expected_refs) const;

 private:
  void unlink(BlockId block);
  void push_tail(BlockId block);
  void evict(BlockId block);

  // Indexed by block id; index num_blocks() of next_/prev_ is the queue's sentinel.
  std::vector<int32_t> ref_counts_;
  std::vector<BlockId> next_;
  std::vector<BlockId> prev_;
  std::vector<bool> in_free_queue_;
  std::vector<bool> cached_;
  std::vector<BlockHash> hashes_;
  std::unordered_map<BlockHash, BlockId, BlockHashHasher> by_hash_;
  int32_t num_free_ = 0;
};

}  // namespace k2::engine
