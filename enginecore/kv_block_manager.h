// KvBlockManager: gives requests KV slots in fixed-size blocks and shares full blocks
// across requests through the prefix cache (vLLM V1's kv_cache_manager.py for one
// full-attention group: the MLA latent cache of DeepSeek-V3 / Kimi-K2 is one such group).
//
// Prefix-cache keys are chained: key(block i) = XXH3-128(key(block i-1) || token ids of
// block i || media keys of block i), with a seed-derived root key, so equal keys mean equal
// whole prefixes. A block's media keys are vLLM's multimodal extra keys: (content hash,
// item offset relative to the block's first token) for each media item overlapping it, so
// blocks of placeholder ids are shared only by the same picture at the same place, while
// text blocks before the first item keep the keys of a text-only prompt. Only
// blocks whose tokens are all computed (their KV written by a finished step) are
// registered, never a partly filled one. Lookups stop one token short of the request's
// end: the last token is always recomputed, because its logits are needed.
//
// Owns the BlockPool; changes Request::blocks() of the requests passed in. Not thread-safe.
#pragma once

#include <cstdint>
#include <vector>

#include "enginecore/block_pool.h"
#include "enginecore/request_state.h"
#include "shm/status.h"

namespace k2::engine {

struct KvCacheConfig {
  int32_t block_size = 16;  // tokens per block, a power of two
  int32_t num_blocks = 0;   // blocks the worker's arena holds, the null block 0 included
  bool enable_prefix_caching = true;
  // Seeds the root key; equal seeds give equal keys across processes (cross-rank reuse).
  uint64_t hash_seed = 0;
};

// vLLM's multimodal extra key of one block: a media item overlapping it and where the item
// starts relative to the block's first token (negative when it began in an earlier block).
struct MediaBlockKey {
  BlockHash hash;
  int64_t relative_offset = 0;
};

// vLLM's prefix-cache counters, in tokens (vllm:prefix_cache_queries / _hits).
struct PrefixCacheStats {
  int64_t queries = 0;
  int64_t hits = 0;
};

// The cached prefix a waiting request could start from.
struct PrefixHit {
  std::vector<BlockId> blocks;
  int32_t num_tokens = 0;
};

class KvBlockManager {
 public:
  static Result<KvBlockManager> create(const KvCacheConfig& config);

  int32_t block_size() const { return config_.block_size; }
  bool prefix_caching_enabled() const { return config_.enable_prefix_caching; }
  // Whether the request's computed blocks are registered: with prefix caching on, every
  // request's; with it off, only n > 1 siblings', for themselves (see root_of).
  bool writes_cache(const Request& request) const;
  // Whether it looks them up: as writes_cache, except prompt_logprobs requests, which need
  // every prompt token computed (vLLM's skip_reading_prefix_cache).
  bool reads_cache(const Request& request) const;
  int32_t blocks_needed(int64_t num_tokens) const;
  // The most tokens one request can ever hold in the whole cache.
  int64_t max_tokens_per_request() const;

  // Longest run of cached leading blocks for a request that holds no blocks, capped at
  // num_tokens - 1 tokens. Changes nothing (the caller may not be able to admit it).
  PrefixHit find_cached_prefix(Request& request);
  // Counts one admitted request's lookup in the prefix-cache stats.
  void record_prefix_query(int32_t num_tokens, int32_t num_hit_tokens);

  // Gives `request` slots for num_computed + (hit tokens) + num_new_tokens tokens, taking
  // the hit's blocks first (a request that holds no blocks). All or nothing: returns false
  // and changes nothing when the free blocks (hit blocks that would leave the free queue
  // not counted) are too few.
  bool allocate_slots(Request& request, int32_t num_new_tokens, const PrefixHit* hit = nullptr);
  // Registers the request's full blocks whose tokens are all computed. Call after the step
  // that computed them has finished.
  void cache_computed_blocks(Request& request);
  // Returns every block of the request to the pool (tail first) and clears its table.
  void free(Request& request);

  // Fraction of usable blocks in use (vllm:kv_cache_usage_perc).
  double usage() const;
  int32_t num_free_blocks() const { return pool_.num_free_blocks(); }
  int32_t num_usable_blocks() const { return pool_.num_usable_blocks(); }
  const PrefixCacheStats& prefix_cache_stats() const { return stats_; }
  bool reset_prefix_cache() { return pool_.reset_prefix_cache(); }
  const BlockPool& pool() const { return pool_; }

 private:
  KvBlockManager(const KvCacheConfig& config, BlockHash root);
  // Extends request.blocks().block_hashes to cover its first `num_blocks` full blocks.
  void ensure_block_hashes(Request& request, int32_t num_blocks);
  // The key chain's root for this request: the global root, or one derived from its cache
  // salt (prefix caching on) or its sibling group (off), so that only those requests meet.
  BlockHash root_of(const Request& request) const;

  KvCacheConfig config_;
  BlockHash root_;
  BlockPool pool_;
  PrefixCacheStats stats_;
  std::vector<unsigned char> scratch_;  // parent key || block tokens || media keys, hashed in one call
  std::vector<MediaBlockKey> media_keys_;  // of the block being hashed
};

// The extra keys of the block of tokens [block_start, block_end), in item order.
void media_block_keys(std::span<const MediaSpan> media, int64_t block_start, int64_t block_end,
                      std::vector<MediaBlockKey>& out);

// One chained key; exposed for tests and for a future cross-process KV-events publisher.
// Without media keys it is the key of a text-only block.
BlockHash chain_block_hash(const BlockHash& parent, std::span<const TokenId> tokens,
                           std::vector<unsigned char>& scratch, std::span<const MediaBlockKey> media = {});

}  // namespace k2::engine
