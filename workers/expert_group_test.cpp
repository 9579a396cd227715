#include "workers/expert_group.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "tests/support/net.h"

namespace k2 {
namespace {

EngineConfig ep_config(int64_t dp_size) {
  EngineConfig cfg;
  cfg.enable_expert_parallel = true;
  cfg.data_parallel_size = dp_size;
  return cfg;
}

// A TCP port nobody listens on right now whose +3 is below 65536 (the group's store is P + 3).
int64_t unused_rpc_port() { return testnet::unused_loopback_port() - 3; }

TEST(ExpertGroup, ExternalRanksAndHeadlessNodesShareTheExperts) {
  EngineConfig external = ep_config(2);
  external.data_parallel_rank = 1;
  Result<Shard> rank1 = worker_shard(external, 0, 1, 1);
  ASSERT_TRUE(rank1.ok()) << rank1.status().to_string();
  EXPECT_TRUE(rank1->experts_across_dp());
  EXPECT_EQ(rank1->dp_rank, 1);
  EXPECT_EQ(rank1->experts().rank, 1);
  EXPECT_EQ(rank1->experts().size, 2);

  EngineConfig headless = ep_config(4);
  headless.headless = true;
  headless.data_parallel_size_local = 2;
  headless.data_parallel_start_rank = 2;
  Result<Shard> shard = worker_shard(headless, 1, 2, 3);
  ASSERT_TRUE(shard.ok()) << shard.status().to_string();
  EXPECT_TRUE(shard->experts_across_dp());
  EXPECT_EQ(shard->dp_rank, 3);
  EXPECT_EQ(shard->dp_size, 4);
  EXPECT_EQ(shard->experts().rank, 3 * 2 + 1);
  EXPECT_EQ(shard->experts().size, 8);
}

TEST(ExpertGroup, GlooWithHeadlessFewerLocalOrExternalRanks) {
  EngineConfig cfg = ep_config(2);
  EXPECT_FALSE(expert_group_over_gloo(cfg));
  cfg.data_parallel_size_local = 2;
  EXPECT_FALSE(expert_group_over_gloo(cfg));
  cfg.data_parallel_size_local = 1;
  EXPECT_TRUE(expert_group_over_gloo(cfg));
  EngineConfig headless = ep_config(2);
  headless.headless = true;
  EXPECT_TRUE(expert_group_over_gloo(headless));
  // Rank 0 of external ranks too: its peers cannot find a shm group of its run id.
  EngineConfig external = ep_config(2);
  external.data_parallel_rank = 0;
  EXPECT_TRUE(expert_group_over_gloo(external));
}

TEST(ExpertGroup, StoreIsThreePortsAboveTheRpcPort) {
  EngineConfig cfg = ep_config(2);
  cfg.data_parallel_address = "10.0.0.1";
  cfg.data_parallel_rpc_port = 13345;
  Result<std::string> store = expert_store_address(cfg);
  ASSERT_TRUE(store.ok()) << store.status().to_string();
  EXPECT_EQ(*store, "tcp://10.0.0.1:13348");
  cfg.data_parallel_rpc_port = 65533;
  EXPECT_EQ(expert_store_address(cfg).status().code(), Code::kInvalidArgument);
  cfg.data_parallel_rpc_port = 0;
  EXPECT_EQ(expert_store_address(cfg).status().code(), Code::kInvalidArgument);
}

// Two DP ranks "on two nodes" (size-local 1), here two threads over loopback: they meet at
// the store and all-reduce over Gloo.
TEST(ExpertGroup, GroupAcrossNodesAllReducesOverGloo) {
  EngineConfig cfg = ep_config(2);
  cfg.data_parallel_size_local = 1;
  cfg.data_parallel_address = "127.0.0.1";
  cfg.data_parallel_rpc_port = unused_rpc_port();
  std::vector<std::vector<float>> sums(2);
  std::vector<std::string> errors(2);
  std::vector<std::thread> ranks;
  for (int dp = 0; dp < 2; ++dp) {
    ranks.emplace_back([&, dp] {
      EngineConfig mine = cfg;
      if (dp == 1) mine.headless = true;
      Result<Shard> shard = worker_shard(mine, 0, 1, dp);
      if (!shard.ok()) {
        errors[dp] = shard.status().to_string();
        return;
      }
      Result<std::unique_ptr<Communicator>> comm = join_expert_group(mine, "unused", *shard);
      if (!comm.ok() || *comm == nullptr) {
        errors[dp] = comm.ok() ? "no group" : comm.status().to_string();
        return;
      }
      if ((*comm)->rank() != dp || (*comm)->size() != 2) errors[dp] = "wrong rank or size";
      std::vector<float> data{static_cast<float>(dp + 1), 10.0f * static_cast<float>(dp)};
      if (Status s = (*comm)->all_reduce_sum(data); !s.ok()) errors[dp] = s.to_string();
      sums[dp] = data;
    });
  }
  for (std::thread& t : ranks) t.join();
  for (int dp = 0; dp < 2; ++dp) {
    EXPECT_EQ(errors[dp], "") << "rank " << dp;
    EXPECT_EQ(sums[dp], (std::vector<float>{3.0f, 10.0f})) << "rank " << dp;
  }
}

TEST(ExpertGroup, NoGroupWithoutExpertsAcrossDpRanks) {
  EngineConfig cfg = ep_config(1);
  Result<Shard> shard = worker_shard(cfg, 0, 1, 0);
  ASSERT_TRUE(shard.ok());
  Result<std::unique_ptr<Communicator>> comm = join_expert_group(cfg, "unused", *shard);
  ASSERT_TRUE(comm.ok());
  EXPECT_EQ(*comm, nullptr);
}

}  // namespace
}  // namespace k2
