#include "workers/kv_cache.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "kernels/ref/kv_fp8.h"

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

TEST(LatentKvCache, Bf16RowsRoundAndFollowTheBlockTable) {
  EXPECT_EQ(LatentKvCache::bytes_needed(2, 4, 2, 3, KvCacheDtype::kBfloat16),
            LatentKvCache::bytes_needed(2, 4, 2, 3) / 2);
  LatentKvCache cache = LatentKvCache::create(2, 4, 2, 3, KvCacheDtype::kBfloat16).value();
  EXPECT_EQ(cache.dtype(), KvCacheDtype::kBfloat16);
  const std::vector<int32_t> table = {3, 1};
  const float row[3] = {1.0f, 1.00390625f + 1e-6f, -2.5f};  // the middle one rounds up to 1 + 2^-7
  cache.write_row(1, table, 2, row);                       // block 1, offset 0
  float back[3] = {};
  cache.read_row(1, table, 2, back);
  EXPECT_EQ(back[0], 1.0f);
  EXPECT_EQ(back[1], 1.0078125f);
  EXPECT_EQ(back[2], -2.5f);
  const ref::PagedLatentBf16View view = cache.layer_view_bf16(1);
  EXPECT_EQ(view.data[(1 * 2 + 0) * 3 + 2], 0xc020);  // -2.5 in bf16
  EXPECT_EQ(cache.layer_view_bf16(0).data[(1 * 2 + 0) * 3], 0);  // other layer untouched
}

TEST(LatentKvCache, Fp8RowsQuantiseAndFollowTheBlockTable) {
  const int64_t row_dim = 70;  // two tiles, the second partial
  const int64_t row_bytes = ref::fp8_kv_row_bytes(row_dim);
  EXPECT_EQ(LatentKvCache::bytes_needed(2, 4, 2, row_dim, KvCacheDtype::kFp8E4m3),
            static_cast<uint64_t>(2 * 4 * 2 * row_bytes));
  LatentKvCache cache = LatentKvCache::create(2, 4, 2, row_dim, KvCacheDtype::kFp8E4m3).value();
  const std::vector<int32_t> table = {3, 1};
  std::vector<float> row(static_cast<size_t>(row_dim)), back(row.size());
  for (int64_t i = 0; i < row_dim; ++i) row[i] = static_cast<float>(i % 9) * (i < 64 ? 0.37f : -11.0f);
  cache.write_row(1, table, 3, row.data());  // block 1, offset 1
  cache.read_row(1, table, 3, back.data());
  std::vector<float> want(row.size());
  std::vector<uint8_t> bytes(static_cast<size_t>(row_bytes));
  ref::quantize_fp8_kv_row(row.data(), row_dim, bytes.data());
  ref::dequantize_fp8_kv_row(bytes.data(), row_dim, want.data());
  for (int64_t i = 0; i < row_dim; ++i) {
    EXPECT_EQ(back[i], want[i]) << i;
    EXPECT_NEAR(back[i], row[i], std::fabs(row[i]) / 16 + 1e-6) << i;
  }
  const ref::PagedLatentFp8View view = cache.layer_view_fp8(1);
  EXPECT_EQ(0, std::memcmp(view.data + (1 * 2 + 1) * row_bytes, bytes.data(), bytes.size()));
  const ref::PagedLatentFp8View layer0 = cache.layer_view_fp8(0);
  EXPECT_EQ(layer0.data + 4 * 2 * row_bytes, view.data);
  for (int64_t i = 0; i < row_bytes; ++i) EXPECT_EQ(layer0.data[(1 * 2 + 1) * row_bytes + i], 0);  // untouched
  EXPECT_EQ(kv_cache_dtype_name(cache.dtype()), std::string("fp8_e4m3"));
}

TEST(LatentKvCache, DtypeNames) {
  EXPECT_EQ(kv_cache_dtype_for("auto").value(), KvCacheDtype::kFloat32);
  EXPECT_EQ(kv_cache_dtype_for("bfloat16").value(), KvCacheDtype::kBfloat16);
  EXPECT_EQ(kv_cache_dtype_for("float32").value(), KvCacheDtype::kFloat32);
  EXPECT_EQ(kv_cache_dtype_for("fp8").value(), KvCacheDtype::kFp8E4m3);
  EXPECT_EQ(kv_cache_dtype_for("fp8_e4m3").value(), KvCacheDtype::kFp8E4m3);
  EXPECT_FALSE(kv_cache_dtype_for("fp8_e5m2").ok());
  EXPECT_FALSE(kv_cache_dtype_for("int3").ok());
}

TEST(LatentKvCacheDeathTest, FloatViewsOfABf16CacheAbort) {
  LatentKvCache cache = LatentKvCache::create(1, 4, 2, 3, KvCacheDtype::kBfloat16).value();
  const std::vector<int32_t> table = {0};
  EXPECT_DEATH(cache.row(0, table, 0), "float32 cache");
  EXPECT_DEATH(cache.layer_view(0), "float32 cache");
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
