#include "workers/parallel/all_gather.h"

#include <gtest/gtest.h>

#include <cstring>
#include <thread>
#include <vector>

#include "workers/parallel/thread_group_communicator.h"

namespace k2 {
namespace {

// Uneven segments (one empty, one rank owning two, one owning none): every rank ends with
// every segment's exact bits, whatever it held there before.
TEST(AllGatherSegmentsTest, EveryRankGetsEverySegmentBitForBit) {
  const int ranks = 3;
  const std::vector<size_t> offsets = {0, 5, 5, 12, 13};
  const std::vector<int> owner = {1, 0, 1, 0};
  const size_t total = 15;  // two trailing elements outside every segment
  auto value = [](size_t i) { return 1.0f / static_cast<float>(i + 3) - 0.1f; };
  auto comms = ThreadGroupCommunicator::create(ranks);
  std::vector<std::vector<float>> bufs(ranks, std::vector<float>(total));
  std::vector<Status> status(ranks);
  std::vector<std::thread> threads;
  for (int r = 0; r < ranks; ++r) {
    threads.emplace_back([&, r] {
      std::vector<float>& b = bufs[static_cast<size_t>(r)];
      for (size_t i = 0; i < total; ++i) b[i] = 1000.0f + static_cast<float>(r);  // garbage
      for (size_t s = 0; s < owner.size(); ++s) {
        if (owner[s] != r) continue;
        for (size_t i = offsets[s]; i < offsets[s + 1]; ++i) b[i] = value(i);
      }
      status[static_cast<size_t>(r)] = all_gather_segments(*comms[static_cast<size_t>(r)], b, offsets, owner);
    });
  }
  for (auto& t : threads) t.join();
  for (int r = 0; r < ranks; ++r) {
    ASSERT_TRUE(status[static_cast<size_t>(r)].ok()) << status[static_cast<size_t>(r)].to_string();
    for (size_t i = 0; i < 13; ++i) {
      const float want = value(i), got = bufs[static_cast<size_t>(r)][i];
      EXPECT_EQ(std::memcmp(&want, &got, sizeof want), 0) << "rank " << r << " element " << i;
    }
    EXPECT_EQ(bufs[static_cast<size_t>(r)][13], 0.0f);
    EXPECT_EQ(bufs[static_cast<size_t>(r)][14], 0.0f);
  }
}

TEST(AllGatherSegmentsTest, RejectsBadLayoutsBeforeCommunicating) {
  auto comms = ThreadGroupCommunicator::create(2);
  std::vector<float> b(10);
  const std::vector<size_t> offsets = {0, 4, 11};
  EXPECT_FALSE(all_gather_segments(*comms[0], b, offsets, std::vector<int>{0, 1}).ok());  // past the end
  EXPECT_FALSE(all_gather_segments(*comms[0], b, std::vector<size_t>{0, 4}, std::vector<int>{2}).ok());  // no rank 2
  EXPECT_FALSE(all_gather_segments(*comms[0], b, std::vector<size_t>{0}, std::vector<int>{0}).ok());
  EXPECT_FALSE(all_gather_segments(*comms[0], b, std::vector<size_t>{5, 4}, std::vector<int>{0}).ok());
}

}  // namespace
}  // namespace k2
