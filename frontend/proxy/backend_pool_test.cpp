#include "frontend/proxy/backend_pool.h"

#include <gtest/gtest.h>

#include <map>

namespace k2::proxy {
namespace {

TEST(BackendPool, ParsesHostPortListsAndNamesBadOnes) {
  auto pool = BackendPool::parse({"127.0.0.1:8001,localhost:8002", "[::1]:8003"});
  ASSERT_TRUE(pool.ok()) << pool.status().to_string();
  ASSERT_EQ((*pool)->size(), 3u);
  EXPECT_EQ((*pool)->at(0).name(), "127.0.0.1:8001");
  EXPECT_EQ((*pool)->at(2).host, "::1");
  for (const char* bad : {"nohost", ":80", "h:0", "h:70000", "h:x", "[::1]80"}) {
    auto r = BackendPool::parse({bad});
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.status().message().find(bad), std::string::npos) << r.status().message();
  }
  EXPECT_FALSE(BackendPool::parse({""}).ok());
  auto split = BackendPool::from_hosts_ports({"a,b"}, {"9000"});
  ASSERT_TRUE(split.ok());
  EXPECT_EQ((*split)->at(1).name(), "b:9000");
  EXPECT_FALSE(BackendPool::from_hosts_ports({"a,b,c"}, {"1,2"}).ok());
}

TEST(BackendPool, PicksTheLeastLoadedHealthyBackend) {
  auto pool = std::move(BackendPool::parse({"a:1,b:2,c:3"})).value();
  std::vector<BackendPool::Lease> held;
  std::map<std::string, int> count;
  for (int i = 0; i < 6; ++i) {
    held.push_back(pool->pick());
    ++count[held.back()->host];
  }
  EXPECT_EQ(count, (std::map<std::string, int>{{"a", 2}, {"b", 2}, {"c", 2}}));
  held.erase(held.begin(), held.begin() + 3);  // releases one request on each
  EXPECT_EQ(pool->at(0).in_flight + pool->at(1).in_flight + pool->at(2).in_flight, 3);
  pool->mark(pool->at(1), false, "test");
  for (int i = 0; i < 4; ++i) EXPECT_NE(pool->pick()->host, "b");
  EXPECT_EQ(pool->num_healthy(), 2u);
  // Excluding the ones already tried, and nothing left.
  auto only_c = pool->pick({&pool->at(0)});
  ASSERT_TRUE(only_c);
  EXPECT_EQ(only_c->host, "c");
  EXPECT_FALSE(pool->pick({&pool->at(0), &pool->at(2)}));
  pool->mark(pool->at(1), true, "");
  EXPECT_EQ(pool->num_healthy(), 3u);
}

}  // namespace
}  // namespace k2::proxy
