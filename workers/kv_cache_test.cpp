#include "workers/kv_cache.h"

#include <gtest/gtest.h>

#include <set>

namespace k2 {
namespace {

TEST(LatentKvCache, RejectsBlockSizeThatIsNotAPowerOfTwo) {
  EXPECT_FALSE(LatentKvCache::create(2, 4, 6, 8).ok());
  EXPECT_FALSE(LatentKvCache::create(0, 4, 4, 8).ok());
  EXPECT_TRUE(LatentKvCache::create(2, 4, 4, 8).ok());
}

TEST(LatentKvCache, RowsFollowTheBlockTable) {
  LatentKvCache cache = LatentKvCache::create(2, 4, 2, 3).value();
  const std::vector<int32_t> table = {3, 1};
  cache.row(1, table, 2)[0] = 42.0f;  // block 1, offset 0
  const ref::PagedLatentView view = cache.layer_view(1);
  EXPECT_EQ(view.data[(1 * 2 + 0) * 3], 42.0f);
  EXPECT_EQ(cache.layer_view(0).data[(1 * 2 + 0) * 3], 0.0f);  // other layer untouched
  EXPECT_EQ(cache.row(1, table, 0), view.data + 3 * 2 * 3);     // block 3, offset 0
  EXPECT_EQ(cache.blocks_for(5), 3);
}

TEST(LatentKvCacheDeathTest, PositionPastTheTableAborts) {
  LatentKvCache cache = LatentKvCache::create(1, 4, 2, 3).value();
  const std::vector<int32_t> table = {0};
  EXPECT_DEATH(cache.row(0, table, 2), "block table");
}

TEST(BlockAllocator, GrowsReleasesAndRefusesWhenFull) {
  BlockAllocator alloc(3);
  std::vector<int32_t> a, b;
  ASSERT_TRUE(alloc.grow(a, 5, 4).ok());  // 2 blocks
  EXPECT_EQ(a.size(), 2u);
  ASSERT_TRUE(alloc.grow(a, 8, 4).ok());  // still 2
  EXPECT_EQ(a.size(), 2u);
  EXPECT_FALSE(alloc.grow(b, 9, 4).ok());  // 3 needed, 1 free
  EXPECT_TRUE(b.empty());
  ASSERT_TRUE(alloc.grow(b, 4, 4).ok());
  std::set<int32_t> ids(a.begin(), a.end());
  ids.insert(b.begin(), b.end());
  EXPECT_EQ(ids.size(), 3u);
  alloc.release(a);
  EXPECT_TRUE(a.empty());
  EXPECT_EQ(alloc.num_free(), 2);
}

}  // namespace
}  // namespace k2
