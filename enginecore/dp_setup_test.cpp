#include "enginecore/dp_setup.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "enginecore/protocol/zmq_channel.h"
#include "tests/support/net.h"

namespace k2::engine {
namespace {


EngineConfig dp_config(int64_t size) {
  EngineConfig cfg;
  cfg.data_parallel_size = size;
  return cfg;
}

TEST(PlanRequestWaves, InternalRanksUseTheFrontendsCoordinator) {
  const EngineConfig cfg = dp_config(2);
  auto plan = plan_request_waves(cfg, "ipc:///tmp/x/coordinator", 1, /*moe=*/true, /*remote=*/false);
  ASSERT_TRUE(plan.ok()) << plan.status().to_string();
  ASSERT_TRUE(plan->has_value());
  EXPECT_EQ((*plan)->address, "ipc:///tmp/x/coordinator");
  EXPECT_EQ((*plan)->rank, 1u);
  EXPECT_EQ((*plan)->num_ranks, 2u);
  EXPECT_FALSE((*plan)->serve);
  EXPECT_FALSE((*plan)->watch);  // the frontend watches every rank
  EXPECT_TRUE((*plan_request_waves(cfg, "ipc:///tmp/x/coordinator", 0, true, /*remote=*/false))->serve);
  // Rank 0 on a headless node behind an API-only head: the head serves the coordinator.
  EXPECT_FALSE((*plan_request_waves(cfg, "tcp://10.0.0.1:13347", 0, true, /*remote=*/true))->serve);
}

TEST(PlanRequestWaves, NoWavesForDenseModelsOneRankOrNoCoordinator) {
  EXPECT_FALSE(plan_request_waves(dp_config(2), "ipc:///c", 0, /*moe=*/false, /*remote=*/false)->has_value());
  EXPECT_FALSE(plan_request_waves(dp_config(1), "ipc:///c", 0, true, /*remote=*/false)->has_value());
  EXPECT_FALSE(plan_request_waves(dp_config(2), "", 0, true, /*remote=*/false)->has_value());
}

TEST(PlanRequestWaves, ExternalRanksMeetAtRankZeroOnTwoPortsAboveTheRpcPort) {
  EngineConfig cfg = dp_config(2);
  cfg.data_parallel_rank = 1;
  cfg.data_parallel_address = "10.0.0.7";
  cfg.data_parallel_rpc_port = 13345;
  // Without expert parallelism external ranks are independent replicas.
  EXPECT_FALSE(plan_request_waves(cfg, "", 0, true, /*remote=*/false)->has_value());
  cfg.enable_expert_parallel = true;
  EXPECT_FALSE(plan_request_waves(cfg, "", 0, /*moe=*/false, /*remote=*/false)->has_value());
  // The engine is rank 0 behind its own API server; its DP rank is --data-parallel-rank.
  auto plan = plan_request_waves(cfg, "", 0, true, /*remote=*/false);
  ASSERT_TRUE(plan.ok()) << plan.status().to_string();
  ASSERT_TRUE(plan->has_value());
  EXPECT_EQ((*plan)->address, "tcp://10.0.0.7:13347");
  EXPECT_TRUE((*plan)->watch);
  EXPECT_EQ((*plan)->rank, 1u);
  EXPECT_EQ((*plan)->num_ranks, 2u);
  EXPECT_FALSE((*plan)->serve);
  cfg.data_parallel_rank = 0;
  EXPECT_TRUE((*plan_request_waves(cfg, "", 0, true, /*remote=*/false))->serve);
  cfg.data_parallel_rank = 2;
  EXPECT_EQ(plan_request_waves(cfg, "", 0, true, /*remote=*/false).status().code(), Code::kInvalidArgument);
  cfg.data_parallel_rank = 0;
  cfg.data_parallel_rpc_port = 65534;
  EXPECT_EQ(plan_request_waves(cfg, "", 0, true, /*remote=*/false).status().code(), Code::kInvalidArgument);
}

TEST(GlobalDpRank, ExternalRankOverridesTheEngineRank) {
  EngineConfig cfg = dp_config(4);
  EXPECT_EQ(*global_dp_rank(cfg, 2), 2u);
  cfg.data_parallel_rank = 3;
  EXPECT_EQ(*global_dp_rank(cfg, 0), 3u);
}

TEST(GlobalDpRank, HybridRanksStartAtTheNodesStartRank) {
  EngineConfig cfg = dp_config(4);
  cfg.data_parallel_size_local = 2;
  cfg.data_parallel_start_rank = 2;
  EXPECT_EQ(*global_dp_rank(cfg, 0), 2u);
  EXPECT_EQ(*global_dp_rank(cfg, 1), 3u);
  cfg.data_parallel_start_rank = 3;  // 3 + 2 > 4
  EXPECT_EQ(global_dp_rank(cfg, 0).status().code(), Code::kInvalidArgument);
}

// Hybrid: both nodes' engines follow rank 0's coordinator at P + 2, whatever their API server
// said; only global rank 0 (node A's first engine) serves it.
TEST(PlanRequestWaves, HybridRanksMeetAtRankZeroLikeExternalOnes) {
  EngineConfig cfg = dp_config(4);
  cfg.data_parallel_size_local = 2;
  cfg.data_parallel_start_rank = 2;
  cfg.data_parallel_rpc_port = 13345;
  cfg.enable_expert_parallel = true;
  auto plan = plan_request_waves(cfg, "ipc:///tmp/x/coordinator", 1, true, /*remote=*/false);
  ASSERT_TRUE(plan.ok()) << plan.status().to_string();
  ASSERT_TRUE(plan->has_value());
  EXPECT_EQ((*plan)->address, "tcp://127.0.0.1:13347");
  EXPECT_EQ((*plan)->rank, 3u);
  EXPECT_EQ((*plan)->num_ranks, 4u);
  EXPECT_TRUE((*plan)->watch);
  EXPECT_FALSE((*plan)->serve);
  cfg.data_parallel_start_rank = 0;
  EXPECT_TRUE((*plan_request_waves(cfg, "ipc:///tmp/x/coordinator", 0, true, /*remote=*/false))->serve);
  EXPECT_FALSE((*plan_request_waves(cfg, "ipc:///tmp/x/coordinator", 1, true, /*remote=*/false))->serve);
  cfg.enable_expert_parallel = false;  // independent replicas per node
  EXPECT_FALSE(plan_request_waves(cfg, "ipc:///tmp/x/coordinator", 0, true, /*remote=*/false)->has_value());
}

// Two external ranks over loopback TCP: rank 1's work starts the wave on rank 0 too, as it
// does between two `serve --data-parallel-rank` processes.
TEST(JoinRequestWaves, ExternalRankOneStartsAWaveOnRankZeroAndSeesItGo) {
  zmq::context_t context(1);
  auto security = protocol::ControlPlaneSecurity::load("");
  ASSERT_TRUE(security.ok());
  WavePlan plan0{"", 0, 2, true}, plan1{"", 1, 2, false, /*watch=*/true};
  plan0.address = plan1.address = protocol::tcp_address("127.0.0.1", testnet::unused_loopback_port());
  auto rank0 = join_request_waves(context, plan0, **security);
  ASSERT_TRUE(rank0.ok()) << rank0.status().to_string();
  ASSERT_NE(rank0->coordinator, nullptr);
  auto rank1 = join_request_waves(context, plan1, **security);
  ASSERT_TRUE(rank1.ok()) << rank1.status().to_string();
  EXPECT_EQ(rank1->coordinator, nullptr);
  ASSERT_TRUE(rank1->wave->start_if_idle().ok());
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!rank0->wave->running() && std::chrono::steady_clock::now() < deadline) {
    ASSERT_TRUE(rank0->wave->drain().ok());
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(rank0->wave->running());
  EXPECT_TRUE(rank1->wave->check_coordinator().ok());
  // Rank 0's engine (and the coordinator in it) goes: rank 1 learns it, instead of waiting
  // for wave messages that never come.
  rank0->wave.reset();
  rank0->coordinator.reset();
  Status lost;
  const auto lost_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (lost.ok() && std::chrono::steady_clock::now() < lost_deadline) {
    lost = rank1->wave->check_coordinator();
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(lost.code(), Code::kUnavailable) << lost.to_string();
  rank1->wave.reset();
}

}  // namespace
}  // namespace k2::engine
