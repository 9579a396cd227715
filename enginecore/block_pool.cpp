#include "enginecore/block_pool.h"

#include <string>

namespace k2::engine {

BlockPool::BlockPool(int32_t num_blocks)
    : ref_counts_(static_cast<size_t>(num_blocks), 0),
      next_(static_cast<size_t>(num_blocks) + 1),
      prev_(static_cast<size_t>(num_blocks) + 1),
      in_free_queue_(static_cast<size_t>(num_blocks), false),
      cached_(static_cast<size_t>(num_blocks), false),
      hashes_(static_cast<size_t>(num_blocks)) {
  K2_CHECK(num_blocks >= 2, "a block pool needs the null block and one more");
  by_hash_.reserve(static_cast<size_t>(num_blocks));  // no rehash on the step path
  const BlockId sentinel = num_blocks;
  next_[static_cast<size_t>(sentinel)] = sentinel;
  prev_[static_cast<size_t>(sentinel)] = sentinel;
  for (BlockId b = 1; b < num_blocks; ++b) push_tail(b);
}

void BlockPool::unlink(BlockId block) {
  const auto i = static_cast<size_t>(block);
  next_[static_cast<size_t>(prev_[i])] = next_[i];
  prev_[static_cast<size_t>(next_[i])] = prev_[i];
  in_free_queue_[i] = false;
  --num_free_;
}

void BlockPool::push_tail(BlockId block) {
  const auto sentinel = static_cast<BlockId>(ref_counts_.size());
  const BlockId last = prev_[static_cast<size_t>(sentinel)];
  next_[static_cast<size_t>(last)] = block;
  prev_[static_cast<size_t>(block)] = last;
  next_[static_cast<size_t>(block)] = sentinel;
  prev_[static_cast<size_t>(sentinel)] = block;
  in_free_queue_[static_cast<size_t>(block)] = true;
  ++num_free_;
}

void BlockPool::evict(BlockId block) {
  const auto i = static_cast<size_t>(block);
  if (!cached_[i]) return;
  by_hash_.erase(hashes_[i]);
  cached_[i] = false;
}

void BlockPool::allocate(int32_t n, std::vector<BlockId>& table) {
  K2_CHECK(n <= num_free_, "allocating more blocks than are free");
  const auto sentinel = static_cast<size_t>(ref_counts_.size());
  for (int32_t k = 0; k < n; ++k) {
    const BlockId block = next_[sentinel];
    unlink(block);
    evict(block);
    ref_counts_[static_cast<size_t>(block)] = 1;
    table.push_back(block);
  }
}

void BlockPool::touch(BlockId block) {
  K2_CHECK(block != kNullBlock && cached_[static_cast<size_t>(block)], "touching an uncached block");
  if (ref_counts_[static_cast<size_t>(block)]++ == 0) unlink(block);
}

void BlockPool::release(std::span<const BlockId> table) {
  for (auto it = table.rbegin(); it != table.rend(); ++it) {
    const BlockId block = *it;
    K2_CHECK(block != kNullBlock && ref_counts_[static_cast<size_t>(block)] > 0,
             "releasing block " + std::to_string(block) + " that is not held");
    if (--ref_counts_[static_cast<size_t>(block)] == 0) push_tail(block);
  }
}

std::optional<BlockId> BlockPool::lookup(const BlockHash& hash) const {
  auto it = by_hash_.find(hash);
  if (it == by_hash_.end()) return std::nullopt;
  return it->second;
}

void BlockPool::cache(BlockId block, const BlockHash& hash) {
  const auto i = static_cast<size_t>(block);
  if (cached_[i]) return;
  if (!by_hash_.emplace(hash, block).second) return;
  cached_[i] = true;
  hashes_[i] = hash;
}

bool BlockPool::reset_prefix_cache() {
  if (num_free_ != num_usable_blocks()) return false;
  for (const auto& [hash, block] : by_hash_) cached_[static_cast<size_t>(block)] = false;
  by_hash_.clear();
  return true;
}

std::vector<BlockId> BlockPool::free_queue() const {
  std::vector<BlockId> out;
  const auto sentinel = static_cast<BlockId>(ref_counts_.size());
  for (BlockId b = next_[static_cast<size_t>(sentinel)]; b != sentinel; b = next_[static_cast<size_t>(b)]) {
    out.push_back(b);
  }
  return out;
}

Status BlockPool::check_consistency(std::span<const int32_t> expected_refs) const {
  if (expected_refs.size() != ref_counts_.size()) return internal_error("ref table size mismatch");
  if (ref_counts_[0] != 0 || in_free_queue_[0] || cached_[0] || expected_refs[0] != 0) {
    return internal_error("the null block is in use");
  }
  for (size_t b = 1; b < ref_counts_.size(); ++b) {
    if (ref_counts_[b] != expected_refs[b]) {
      return internal_error("block " + std::to_string(b) + " has count " + std::to_string(ref_counts_[b]) +
                            " but " + std::to_string(expected_refs[b]) + " owners");
    }
    if ((ref_counts_[b] == 0) != in_free_queue_[b]) {
      return internal_error("block " + std::to_string(b) + " free-queue membership disagrees with its count");
    }
    // Only a cached block may be shared: a write into a shared block would corrupt a prefix.
    if (ref_counts_[b] > 1 && !cached_[b]) {
      return internal_error("block " + std::to_string(b) + " is shared but not a cached block");
    }
  }
  const std::vector<BlockId> queue = free_queue();
  if (static_cast<int32_t>(queue.size()) != num_free_) return internal_error("free count mismatch");
  std::vector<bool> seen(ref_counts_.size(), false);
  for (BlockId b : queue) {
    if (seen[static_cast<size_t>(b)]) return internal_error("block twice in the free queue");
    seen[static_cast<size_t>(b)] = true;
  }
  size_t num_cached = 0;
  for (bool c : cached_) num_cached += c ? 1 : 0;
  if (num_cached != by_hash_.size()) return internal_error("cached flags disagree with the hash index");
  for (const auto& [hash, block] : by_hash_) {
    if (!cached_[static_cast<size_t>(block)] || !(hashes_[static_cast<size_t>(block)] == hash)) {
      return internal_error("hash index points at block " + std::to_string(block) + " without that hash");
    }
  }
  return {};
}

}  // namespace k2::engine
