#include "workers/vision/encoder_cache.h"

#include <gtest/gtest.h>

#include <vector>

#include "shm/segment.h"

namespace k2 {
namespace {

std::vector<float> rows(size_t n, float v) { return std::vector<float>(n, v); }

TEST(EncoderCache, HitsAfterInsertAndCountsQueries) {
  auto c = EncoderCache::create(make_run_id(), "enc-test", 1 << 20);
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  EXPECT_FALSE(c->lookup({1, 2}).has_value());
  c->insert({1, 2}, rows(100, 3.f));
  auto hit = c->lookup({1, 2});
  ASSERT_TRUE(hit.has_value());
  ASSERT_EQ(hit->size(), 100u);
  EXPECT_EQ((*hit)[99], 3.f);
  EXPECT_FALSE(c->lookup({2, 1}).has_value());
  EXPECT_EQ(c->queries(), 3u);
  EXPECT_EQ(c->hits(), 1u);
}

TEST(EncoderCache, EvictsLeastRecentlyUsedUnderTheBudget) {
  // Three entries of 4000 bytes fit a 10000-byte budget only two at a time.
  auto c = EncoderCache::create(make_run_id(), "enc-test", 10000);
  ASSERT_TRUE(c.ok());
  c->insert({1, 0}, rows(1000, 1.f));
  c->insert({2, 0}, rows(1000, 2.f));
  ASSERT_TRUE(c->lookup({1, 0}).has_value());  // 1 is now more recent than 2
  c->insert({3, 0}, rows(1000, 3.f));
  EXPECT_TRUE(c->lookup({1, 0}).has_value());
  EXPECT_FALSE(c->lookup({2, 0}).has_value());
  EXPECT_TRUE(c->lookup({3, 0}).has_value());
  EXPECT_LE(c->bytes_cached(), 10000u);
  c->insert({4, 0}, rows(5000, 4.f));  // larger than the budget: not cached
  EXPECT_FALSE(c->lookup({4, 0}).has_value());
}

TEST(EncoderCache, ZeroBudgetCachesNothing) {
  auto c = EncoderCache::create(make_run_id(), "enc-test", 0);
  ASSERT_TRUE(c.ok());
  c->insert({1, 0}, rows(10, 1.f));
  EXPECT_FALSE(c->lookup({1, 0}).has_value());
  EXPECT_EQ(c->queries(), 1u);
  EXPECT_EQ(c->segment_name(), "");
}

}  // namespace
}  // namespace k2
