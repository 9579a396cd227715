#include "enginecore/coordinator.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "enginecore/dp_wave.h"
#include "enginecore/protocol/zmq_channel.h"

namespace k2::engine {
namespace {

using protocol::DpControl;
using protocol::DpControlKind;

DpControl msg(DpControlKind kind, uint64_t wave = 0, uint64_t round = 0, bool unfinished = false) {
  return DpControl{kind, 0, wave, round, unfinished, -1};
}

TEST(WaveCoordinator, StartBroadcastsToTheOthersAndIdleSyncEndsTheWave) {
  WaveCoordinator c(3);
  for (uint32_t r = 0; r < 3; ++r) EXPECT_TRUE(c.on_message(r, msg(DpControlKind::kJoin)).empty());
  auto out = c.on_message(1, msg(DpControlKind::kStartWave, 0));
  ASSERT_EQ(out.size(), 2u);
  for (const auto& [to, m] : out) {
    EXPECT_NE(to, 1u);
    EXPECT_EQ(m.kind, DpControlKind::kStartDpWave);
    EXPECT_EQ(m.wave, 0u);
    EXPECT_EQ(m.exclude_rank, 1);
  }
  EXPECT_TRUE(c.running());
  // A second start for the running wave is not broadcast again.
  EXPECT_TRUE(c.on_message(2, msg(DpControlKind::kStartWave, 0)).empty());
  // Round 0: one rank still busy -> every rank hears "unfinished", the wave goes on.
  EXPECT_TRUE(c.on_message(0, msg(DpControlKind::kSync, 0, 0, false)).empty());
  EXPECT_TRUE(c.on_message(1, msg(DpControlKind::kSync, 0, 0, true)).empty());
  out = c.on_message(2, msg(DpControlKind::kSync, 0, 0, false));
  ASSERT_EQ(out.size(), 3u);
  for (const auto& [to, m] : out) {
    EXPECT_EQ(m.kind, DpControlKind::kSyncResult);
    EXPECT_TRUE(m.unfinished);
  }
  EXPECT_TRUE(c.running());
  // Round 1: all idle -> the wave ends and the next one is wave 1.
  for (uint32_t r = 0; r < 2; ++r) EXPECT_TRUE(c.on_message(r, msg(DpControlKind::kSync, 0, 1, false)).empty());
  out = c.on_message(2, msg(DpControlKind::kSync, 0, 1, false));
  ASSERT_EQ(out.size(), 3u);
  EXPECT_FALSE(out[0].second.unfinished);
  EXPECT_FALSE(c.running());
  EXPECT_EQ(c.wave(), 1u);
  EXPECT_EQ(c.waves_completed(), 1u);
  out = c.on_message(0, msg(DpControlKind::kStartWave, 1));
  EXPECT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].second.wave, 1u);
}

TEST(WaveCoordinator, LateJoinerIsToldOfTheRunningWave) {
  WaveCoordinator c(2);
  c.on_message(0, msg(DpControlKind::kJoin));
  EXPECT_TRUE(c.on_message(0, msg(DpControlKind::kStartWave, 0)).empty());  // nobody else joined yet
  auto out = c.on_message(1, msg(DpControlKind::kJoin));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].first, 1u);
  EXPECT_EQ(out[0].second.kind, DpControlKind::kStartDpWave);
}

TEST(DpWave, FollowsStartsAndSyncResults) {
  zmq::context_t ctx(1);
  auto dir = protocol::RunDir::create();
  ASSERT_TRUE(dir.ok());
  auto addr = dir->ipc_address("coord");
  auto coordinator = DpCoordinator::start(ctx, *addr, 2, "");
  ASSERT_TRUE(coordinator.ok()) << coordinator.status().to_string();
  auto a = DpWave::connect(ctx, *addr, 0, "");
  auto b = DpWave::connect(ctx, *addr, 1, "");
  ASSERT_TRUE(a.ok() && b.ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // both joined
  ASSERT_TRUE((*a)->start_if_idle().ok());
  EXPECT_TRUE((*a)->running());
  auto wait_for = [](DpWave& w, auto pred) {
    for (int i = 0; i < 100 && !pred(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      EXPECT_TRUE(w.drain().ok());
    }
    return pred();
  };
  ASSERT_TRUE(wait_for(**b, [&] { return (*b)->running(); }));  // START_DP_WAVE reached the idle rank
  bool sync_a = false, sync_b = false;
  for (uint64_t i = 0; i < DpWave::kSyncInterval; ++i) {
    sync_a = (*a)->count_step();
    sync_b = (*b)->count_step();
  }
  ASSERT_TRUE(sync_a && sync_b);
  ASSERT_TRUE((*a)->begin_sync(false).ok());
  ASSERT_TRUE((*b)->begin_sync(false).ok());
  ASSERT_TRUE(wait_for(**a, [&] { return !(*a)->sync_pending(); }));
  ASSERT_TRUE(wait_for(**b, [&] { return !(*b)->sync_pending(); }));
  EXPECT_FALSE((*a)->running());
  EXPECT_FALSE((*b)->running());
  EXPECT_EQ((*a)->wave(), 1u);
  EXPECT_EQ((*b)->wave(), 1u);
}

}  // namespace
}  // namespace k2::engine
