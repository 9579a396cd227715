#include "enginecore/kv_block_manager.h"

#include <xxhash.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <string>

namespace k2::engine {

void media_block_keys(std::span<const MediaSpan> media, int64_t block_start, int64_t block_end,
                      std::vector<MediaBlockKey>& out) {
  out.clear();
  // Items are sorted and disjoint: the first one ending after block_start is the first that
  // can overlap.
  auto it = std::upper_bound(media.begin(), media.end(), block_start,
                             [](int64_t pos, const MediaSpan& m) { return pos < m.end(); });
  for (; it != media.end() && it->offset < block_end; ++it) {
    out.push_back(MediaBlockKey{it->hash, it->offset - block_start});
  }
}

BlockHash chain_block_hash(const BlockHash& parent, std::span<const TokenId> tokens,
                           std::vector<unsigned char>& scratch, std::span<const MediaBlockKey> media) {
  constexpr size_t kKeyBytes = 2 * sizeof(uint64_t) + sizeof(int64_t);
  const size_t token_bytes = tokens.size_bytes();
  scratch.resize(sizeof(parent.low) + sizeof(parent.high) + token_bytes + media.size() * kKeyBytes);
  unsigned char* p = scratch.data();
  auto put = [&p](const void* src, size_t n) {
    if (n > 0) std::memcpy(p, src, n);
    p += n;
  };
  put(&parent.low, sizeof(parent.low));
  put(&parent.high, sizeof(parent.high));
  put(tokens.data(), token_bytes);
  for (const MediaBlockKey& key : media) {
    put(&key.hash.low, sizeof(key.hash.low));
    put(&key.hash.high, sizeof(key.hash.high));
    put(&key.relative_offset, sizeof(key.relative_offset));
  }
  const XXH128_hash_t h = XXH3_128bits(scratch.data(), scratch.size());
  return BlockHash{h.low64, h.high64};
}

Result<KvBlockManager> KvBlockManager::create(const KvCacheConfig& config) {
  if (config.block_size < 1 || !std::has_single_bit(static_cast<uint32_t>(config.block_size))) {
    return invalid_argument("block size " + std::to_string(config.block_size) + " is not a power of two");
  }
  if (config.num_blocks < 2) {
    return invalid_argument("the KV cache needs at least 2 blocks (the null block and one more), got " +
                            std::to_string(config.num_blocks));
  }
  const XXH128_hash_t root = XXH3_128bits_withSeed("k2serve-prefix-root", 19, config.hash_seed);
  return KvBlockManager(config, BlockHash{root.low64, root.high64});
}

KvBlockManager::KvBlockManager(const KvCacheConfig& config, BlockHash root)
    : config_(config), root_(root), pool_(config.num_blocks) {}

int32_t KvBlockManager::blocks_needed(int64_t num_tokens) const {
  return static_cast<int32_t>((num_tokens + config_.block_size - 1) / config_.block_size);
}

int64_t KvBlockManager::max_tokens_per_request() const {
  return static_cast<int64_t>(pool_.num_usable_blocks()) * config_.block_size;
}

bool KvBlockManager::writes_cache(const Request& request) const {
  return config_.enable_prefix_caching || !request.group_id().empty();
}

bool KvBlockManager::reads_cache(const Request& request) const {
  return writes_cache(request) && !request.skip_prefix_cache();
}

BlockHash KvBlockManager::root_of(const Request& request) const {
  // Distinct prefixes keep the two namespaces apart even if a salt equals a group id.
  const std::string key = config_.enable_prefix_caching ? (request.cache_salt().empty() ? "" : "salt:" + request.cache_salt())
                                                        : "group:" + request.group_id();
  if (key.empty()) return root_;
  XXH3_state_t* state = XXH3_createState();
  K2_CHECK(state != nullptr, "xxhash state allocation failed");
  XXH3_128bits_reset(state);
  XXH3_128bits_update(state, &root_.low, sizeof(root_.low));
  XXH3_128bits_update(state, &root_.high, sizeof(root_.high));
  XXH3_128bits_update(state, key.data(), key.size());
  const XXH128_hash_t h = XXH3_128bits_digest(state);
  XXH3_freeState(state);
  return BlockHash{h.low64, h.high64};
}

void KvBlockManager::ensure_block_hashes(Request& request, int32_t num_blocks) {
  std::vector<BlockHash>& hashes = request.blocks().block_hashes;
  const std::span<const TokenId> tokens = request.all_token_ids();
  const auto bs = static_cast<size_t>(config_.block_size);
  const BlockHash root = hashes.empty() ? root_of(request) : BlockHash{};
  for (auto i = static_cast<int32_t>(hashes.size()); i < num_blocks; ++i) {
    const BlockHash& parent = hashes.empty() ? root : hashes.back();
    const int64_t start = int64_t{i} * config_.block_size;
    media_block_keys(request.media(), start, start + config_.block_size, media_keys_);
    hashes.push_back(chain_block_hash(parent, tokens.subspan(static_cast<size_t>(i) * bs, bs), scratch_, media_keys_));
  }
}

PrefixHit KvBlockManager::find_cached_prefix(Request& request) {
  PrefixHit hit;
  if (!reads_cache(request)) return hit;
  K2_CHECK(request.blocks().block_table.empty(), "prefix lookup for a request holding blocks");
  const int32_t max_blocks = (request.num_tokens() - 1) / config_.block_size;
  ensure_block_hashes(request, max_blocks);
  const std::vector<BlockHash>& hashes = request.blocks().block_hashes;
  for (int32_t i = 0; i < max_blocks; ++i) {
    const std::optional<BlockId> block = pool_.lookup(hashes[static_cast<size_t>(i)]);
    if (!block) break;
    hit.blocks.push_back(*block);
  }
  hit.num_tokens = static_cast<int32_t>(hit.blocks.size()) * config_.block_size;
  return hit;
}

void KvBlockManager::record_prefix_query(int32_t num_tokens, int32_t num_hit_tokens) {
  if (!config_.enable_prefix_caching) return;
  stats_.queries += num_tokens;
  stats_.hits += num_hit_tokens;
}

bool KvBlockManager::allocate_slots(Request& request, int32_t num_new_tokens, const PrefixHit* hit) {
  RequestBlocks& blocks = request.blocks();
  const bool has_hit = hit != nullptr && !hit->blocks.empty();
  K2_CHECK(!has_hit || blocks.block_table.empty(), "a prefix hit for a request holding blocks");
  const int32_t num_hit_blocks = has_hit ? static_cast<int32_t>(hit->blocks.size()) : 0;
  const int64_t num_tokens = int64_t{request.num_computed_tokens()} + (has_hit ? hit->num_tokens : 0) + num_new_tokens;
  const int32_t num_new_blocks = std::max(
      0, blocks_needed(num_tokens) - static_cast<int32_t>(blocks.block_table.size()) - num_hit_blocks);
  int32_t num_hit_blocks_free = 0;
  if (has_hit) {
    for (BlockId b : hit->blocks) num_hit_blocks_free += pool_.ref_count(b) == 0 ? 1 : 0;
  }
  if (num_new_blocks > pool_.num_free_blocks() - num_hit_blocks_free) return false;
  // Hit blocks first: allocating first could pop (and evict) a free hit block.
  if (has_hit) {
    for (BlockId b : hit->blocks) {
      pool_.touch(b);
      blocks.block_table.push_back(b);
    }
    blocks.num_hashed_blocks = num_hit_blocks;
  }
  pool_.allocate(num_new_blocks, blocks.block_table);
  return true;
}

void KvBlockManager::cache_computed_blocks(Request& request) {
  if (!writes_cache(request)) return;
  RequestBlocks& blocks = request.blocks();
  const int32_t num_full = request.num_computed_tokens() / config_.block_size;
  if (num_full <= blocks.num_hashed_blocks) return;
  K2_CHECK(num_full <= static_cast<int32_t>(blocks.block_table.size()), "computed tokens beyond the block table");
  ensure_block_hashes(request, num_full);
  for (int32_t i = blocks.num_hashed_blocks; i < num_full; ++i) {
    pool_.cache(blocks.block_table[static_cast<size_t>(i)], blocks.block_hashes[static_cast<size_t>(i)]);
  }
  blocks.num_hashed_blocks = num_full;
}

void KvBlockManager::free(Request& request) {
  RequestBlocks& blocks = request.blocks();
  pool_.release(blocks.block_table);
  blocks.block_table.clear();
  blocks.num_hashed_blocks = 0;
  blocks.num_sent_blocks = 0;
}

double KvBlockManager::usage() const {
  return 1.0 - static_cast<double>(pool_.num_free_blocks()) / pool_.num_usable_blocks();
}

}  // namespace k2::engine
