#include "enginecore/kv_block_manager.h"

#include <gtest/gtest.h>

#include <numeric>

namespace k2::engine {
namespace {

constexpr int32_t kBs = 4;

std::vector<TokenId> iota_tokens(int32_t n, TokenId first) {
  std::vector<TokenId> v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), first);
  return v;
}

Request make_request(const std::string& id, std::vector<TokenId> prompt) {
  RequestParams p;
  p.request_id = id;
  p.prompt_token_ids = std::move(prompt);
  return Request(std::move(p), 0);
}

KvBlockManager make_manager(int32_t num_blocks, bool prefix_caching = true) {
  Result<KvBlockManager> m = KvBlockManager::create({kBs, num_blocks, prefix_caching, 0});
  EXPECT_TRUE(m.ok()) << m.status().to_string();
  return std::move(m).value();
}

// Admits `r` as the scheduler does: prefix lookup, allocation for the rest, all computed.
PrefixHit admit_and_compute(KvBlockManager& kv, Request& r) {
  PrefixHit hit = kv.find_cached_prefix(r);
  EXPECT_TRUE(kv.allocate_slots(r, r.num_tokens() - hit.num_tokens, &hit));
  r.set_num_computed_tokens(r.num_tokens());
  kv.cache_computed_blocks(r);
  return hit;
}

TEST(KvBlockManager, RejectsBadConfig) {
  EXPECT_FALSE(KvBlockManager::create({3, 10, true, 0}).ok());
  EXPECT_FALSE(KvBlockManager::create({0, 10, true, 0}).ok());
  EXPECT_FALSE(KvBlockManager::create({16, 1, true, 0}).ok());
  EXPECT_TRUE(KvBlockManager::create({1, 2, true, 0}).ok());
}

TEST(KvBlockManager, AllocatesWholeBlocksAndNeverTheNullBlock) {
  KvBlockManager kv = make_manager(5);  // 4 usable
  Request r = make_request("a", iota_tokens(9, 10));
  ASSERT_TRUE(kv.allocate_slots(r, 9));
  EXPECT_EQ(r.blocks().block_table.size(), 3u);
  for (BlockId b : r.blocks().block_table) {
    EXPECT_NE(b, kNullBlock);
    EXPECT_EQ(kv.pool().ref_count(b), 1);
  }
  EXPECT_EQ(kv.num_free_blocks(), 1);
  EXPECT_DOUBLE_EQ(kv.usage(), 0.75);
  kv.free(r);
  EXPECT_EQ(kv.num_free_blocks(), 4);
  EXPECT_DOUBLE_EQ(kv.usage(), 0.0);
  EXPECT_TRUE(r.blocks().block_table.empty());
}

TEST(KvBlockManager, AllocationIsAllOrNothing) {
  KvBlockManager kv = make_manager(4);  // 3 usable
  Request a = make_request("a", iota_tokens(8, 10));
  ASSERT_TRUE(kv.allocate_slots(a, 8));
  Request b = make_request("b", iota_tokens(8, 50));
  EXPECT_FALSE(kv.allocate_slots(b, 8));
  EXPECT_TRUE(b.blocks().block_table.empty());
  EXPECT_EQ(kv.num_free_blocks(), 1);
  // Growing by one token inside the last block needs no new block.
  a.set_num_computed_tokens(7);
  EXPECT_TRUE(kv.allocate_slots(a, 1));
  EXPECT_EQ(a.blocks().block_table.size(), 2u);
}

TEST(ChainBlockHash, DependsOnParentAndTokens) {
  std::vector<unsigned char> scratch;
  const BlockHash root{1, 2};
  const std::vector<TokenId> t1 = {1, 2, 3, 4};
  const std::vector<TokenId> t2 = {1, 2, 3, 5};
  EXPECT_EQ(chain_block_hash(root, t1, scratch), chain_block_hash(root, t1, scratch));
  EXPECT_NE(chain_block_hash(root, t1, scratch), chain_block_hash(root, t2, scratch));
  EXPECT_NE(chain_block_hash(root, t1, scratch), chain_block_hash(BlockHash{1, 3}, t1, scratch));
}

TEST(ChainBlockHash, MediaKeysNameTheItemsOverlappingABlock) {
  const BlockHash a{7, 8}, b{9, 10};
  // Items [2, 6) and [6, 13) against blocks of 4 tokens.
  const std::vector<MediaSpan> media = {MediaSpan{a, 2, 4}, MediaSpan{b, 6, 7}};
  std::vector<MediaBlockKey> keys;
  media_block_keys(media, 0, 4, keys);
  ASSERT_EQ(keys.size(), 1u);
  EXPECT_EQ(keys[0].hash, a);
  EXPECT_EQ(keys[0].relative_offset, 2);
  media_block_keys(media, 4, 8, keys);
  ASSERT_EQ(keys.size(), 2u);
  EXPECT_EQ(keys[0].relative_offset, -2);  // began in the block before
  EXPECT_EQ(keys[1].hash, b);
  EXPECT_EQ(keys[1].relative_offset, 2);
  media_block_keys(media, 12, 16, keys);
  ASSERT_EQ(keys.size(), 1u);
  media_block_keys(media, 16, 20, keys);
  EXPECT_TRUE(keys.empty());

  std::vector<unsigned char> scratch;
  const std::vector<TokenId> pads = {7, 7, 7, 7};
  const BlockHash text = chain_block_hash(BlockHash{1, 2}, pads, scratch);
  const std::vector<MediaBlockKey> ka = {{a, 0}}, kb = {{b, 0}}, ka_shifted = {{a, -1}};
  EXPECT_NE(chain_block_hash(BlockHash{1, 2}, pads, scratch, ka), text);
  EXPECT_NE(chain_block_hash(BlockHash{1, 2}, pads, scratch, ka), chain_block_hash(BlockHash{1, 2}, pads, scratch, kb));
  EXPECT_NE(chain_block_hash(BlockHash{1, 2}, pads, scratch, ka),
            chain_block_hash(BlockHash{1, 2}, pads, scratch, ka_shifted));
  EXPECT_EQ(chain_block_hash(BlockHash{1, 2}, pads, scratch, ka), chain_block_hash(BlockHash{1, 2}, pads, scratch, ka));
}

TEST(KvBlockManager, SharedPrefixIsHitAndSharedByRefcount) {
  KvBlockManager kv = make_manager(16);
  std::vector<TokenId> prefix = iota_tokens(8, 10);  // two full blocks
  std::vector<TokenId> pa = prefix, pb = prefix;
  pa.insert(pa.end(), {90, 91, 92});
  pb.insert(pb.end(), {80, 81});
  Request a = make_request("a", pa);
  EXPECT_EQ(admit_and_compute(kv, a).num_tokens, 0);
  Request b = make_request("b", pb);
  const PrefixHit hit = admit_and_compute(kv, b);
  EXPECT_EQ(hit.num_tokens, 8);
  ASSERT_EQ(hit.blocks.size(), 2u);
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(b.blocks().block_table[static_cast<size_t>(i)], a.blocks().block_table[static_cast<size_t>(i)]);
    EXPECT_EQ(kv.pool().ref_count(hit.blocks[static_cast<size_t>(i)]), 2);
  }
  EXPECT_NE(b.blocks().block_table[2], a.blocks().block_table[2]);
  kv.free(a);
  EXPECT_EQ(kv.pool().ref_count(hit.blocks[0]), 1);
  kv.free(b);
  EXPECT_EQ(kv.pool().ref_count(hit.blocks[0]), 0);
  EXPECT_TRUE(kv.pool().is_cached(hit.blocks[0]));
}

TEST(KvBlockManager, DifferentEarlierBlockMeansNoHitOnLaterEqualBlock) {
  KvBlockManager kv = make_manager(16);
  Request a = make_request("a", {1, 2, 3, 4, 5, 6, 7, 8, 9});
  admit_and_compute(kv, a);
  Request b = make_request("b", {0, 2, 3, 4, 5, 6, 7, 8, 9});  // same second block, other first
  EXPECT_EQ(kv.find_cached_prefix(b).num_tokens, 0);
}

TEST(KvBlockManager, HitIsCappedOneTokenShortOfTheEnd) {
  KvBlockManager kv = make_manager(16);
  Request a = make_request("a", iota_tokens(12, 10));  // exactly three blocks
  admit_and_compute(kv, a);
  kv.free(a);
  Request same = make_request("same", iota_tokens(12, 10));
  const PrefixHit hit = kv.find_cached_prefix(same);
  EXPECT_EQ(hit.num_tokens, 8);  // the third block holds the last token: recomputed
  Request longer = make_request("longer", iota_tokens(13, 10));
  EXPECT_EQ(kv.find_cached_prefix(longer).num_tokens, 12);
}

TEST(KvBlockManager, PartialBlocksAndUncomputedTokensAreNotCached) {
  KvBlockManager kv = make_manager(16);
  Request a = make_request("a", iota_tokens(10, 10));
  ASSERT_TRUE(kv.allocate_slots(a, 6));
  a.set_num_computed_tokens(6);  // a chunk: block 0 full, block 1 half
  kv.cache_computed_blocks(a);
  EXPECT_EQ(kv.pool().num_cached_blocks(), 1);
  Request b = make_request("b", iota_tokens(10, 10));
  EXPECT_EQ(kv.find_cached_prefix(b).num_tokens, 4);
}

TEST(KvBlockManager, FreeHitBlocksAreCountedWhenCheckingSpace) {
  KvBlockManager kv = make_manager(4);  // 3 usable
  Request a = make_request("a", iota_tokens(9, 10));
  admit_and_compute(kv, a);
  kv.free(a);  // 3 free blocks, two of them cached full blocks
  Request b = make_request("b", iota_tokens(13, 10));  // hits 2 blocks, needs 2 more
  PrefixHit hit = kv.find_cached_prefix(b);
  ASSERT_EQ(hit.num_tokens, 8);
  EXPECT_FALSE(kv.allocate_slots(b, 5, &hit));
  EXPECT_EQ(kv.num_free_blocks(), 3);
  EXPECT_EQ(kv.pool().num_cached_blocks(), 2);
  Request c = make_request("c", iota_tokens(12, 10));  // hits 2 blocks, needs 1 more
  hit = kv.find_cached_prefix(c);
  ASSERT_TRUE(kv.allocate_slots(c, 4, &hit));
  EXPECT_EQ(kv.num_free_blocks(), 0);
  // The hit blocks were touched before allocating, so they were not evicted.
  EXPECT_EQ(kv.pool().num_cached_blocks(), 2);
}

TEST(KvBlockManager, EvictsCachedFreeBlocksInLruOrderTailFirst) {
  KvBlockManager kv = make_manager(8);  // 7 usable
  Request a = make_request("a", iota_tokens(13, 10));  // blocks a0 a1 a2 cached, a3 partial
  admit_and_compute(kv, a);
  const std::vector<BlockId> a_blocks = a.blocks().block_table;
  Request c = make_request("c", iota_tokens(9, 200));  // c0 c1 cached, c2 partial
  admit_and_compute(kv, c);
  ASSERT_EQ(kv.num_free_blocks(), 0);
  kv.free(a);  // queue: [a3, a2, a1, a0]
  kv.free(c);  //        [a3, a2, a1, a0, c2, c1, c0]
  EXPECT_EQ(kv.pool().num_cached_blocks(), 5);
  const std::vector<BlockId> queue = kv.pool().free_queue();
  ASSERT_EQ(queue.size(), 7u);
  EXPECT_EQ(queue[0], a_blocks[3]);
  EXPECT_EQ(queue[1], a_blocks[2]);
  EXPECT_EQ(queue[3], a_blocks[0]);

  // Two fresh blocks: take a3 (uncached) and evict a2, a's last full block.
  Request d = make_request("d", iota_tokens(8, 500));
  ASSERT_TRUE(kv.allocate_slots(d, 8));
  EXPECT_FALSE(kv.pool().is_cached(a_blocks[2]));
  EXPECT_TRUE(kv.pool().is_cached(a_blocks[0]));
  Request a_again = make_request("a2", iota_tokens(13, 10));
  EXPECT_EQ(kv.find_cached_prefix(a_again).num_tokens, 8);  // a0 a1 survive
  Request c_again = make_request("c2", iota_tokens(9, 200));
  EXPECT_EQ(kv.find_cached_prefix(c_again).num_tokens, 8);  // c freed later: untouched

  // A hit "touches" a block: it leaves the queue and returns at the tail when freed.
  admit_and_compute(kv, a_again);
  kv.free(a_again);
  const std::vector<BlockId> after = kv.pool().free_queue();
  EXPECT_EQ(after.back(), a_blocks[0]);
}

TEST(KvBlockManager, DisabledPrefixCachingNeverHits) {
  KvBlockManager kv = make_manager(16, /*prefix_caching=*/false);
  Request a = make_request("a", iota_tokens(12, 10));
  admit_and_compute(kv, a);
  EXPECT_EQ(kv.pool().num_cached_blocks(), 0);
  Request b = make_request("b", iota_tokens(12, 10));
  EXPECT_EQ(kv.find_cached_prefix(b).num_tokens, 0);
  kv.record_prefix_query(12, 0);
  EXPECT_EQ(kv.prefix_cache_stats().queries, 0);
}

TEST(KvBlockManager, SkipPrefixCacheRequestsDoNotHit) {
  KvBlockManager kv = make_manager(16);
  Request a = make_request("a", iota_tokens(12, 10));
  admit_and_compute(kv, a);
  RequestParams p;
  p.request_id = "b";
  p.prompt_token_ids = iota_tokens(12, 10);
  p.skip_prefix_cache = true;
  Request b(std::move(p), 1);
  EXPECT_EQ(kv.find_cached_prefix(b).num_tokens, 0);
}

TEST(KvBlockManager, ResetPrefixCacheOnlyWhenIdle) {
  KvBlockManager kv = make_manager(8);
  Request a = make_request("a", iota_tokens(12, 10));
  admit_and_compute(kv, a);
  EXPECT_FALSE(kv.reset_prefix_cache());
  kv.free(a);
  EXPECT_TRUE(kv.reset_prefix_cache());
  EXPECT_EQ(kv.pool().num_cached_blocks(), 0);
  Request b = make_request("b", iota_tokens(12, 10));
  EXPECT_EQ(kv.find_cached_prefix(b).num_tokens, 0);
}

TEST(KvBlockManager, HashSeedChangesKeys) {
  Result<KvBlockManager> s0 = KvBlockManager::create({kBs, 8, true, 0});
  Result<KvBlockManager> s1 = KvBlockManager::create({kBs, 8, true, 1});
  ASSERT_TRUE(s0.ok() && s1.ok());
  Request a = make_request("a", iota_tokens(8, 10));
  Request b = make_request("b", iota_tokens(8, 10));
  admit_and_compute(*s0, a);
  admit_and_compute(*s1, b);
  EXPECT_NE(a.blocks().block_hashes[0], b.blocks().block_hashes[0]);
}

}  // namespace
}  // namespace k2::engine
