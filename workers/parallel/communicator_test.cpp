#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "shm/segment.h"
#include "workers/parallel/shard.h"
#include "workers/parallel/shm_communicator.h"
#include "workers/parallel/thread_group_communicator.h"

namespace k2 {
namespace {

// Rank r's contribution to call c: random values of very different magnitudes, so the
// summation order shows in the low bits.
std::vector<float> contribution(int rank, int call, size_t n) {
  std::mt19937 rng(static_cast<uint32_t>(1000 * call + rank));
  std::uniform_real_distribution<float> mantissa(-1.0f, 1.0f);
  std::uniform_int_distribution<int> exponent(-20, 20);
  std::vector<float> v(n);
  for (float& x : v) x = std::ldexp(mantissa(rng), exponent(rng));
  return v;
}

// The scalar reference: rank order, one element at a time.
std::vector<float> reference_sum(int ranks, int call, size_t n) {
  std::vector<float> sum = contribution(0, call, n);
  for (int r = 1; r < ranks; ++r) {
    const std::vector<float> c = contribution(r, call, n);
    for (size_t i = 0; i < n; ++i) sum[i] += c[i];
  }
  return sum;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

const size_t kSizes[] = {0, 1, 7, 1023, 4099, 70001};

TEST(ShardTest, SplitsEvenlyAndValidates) {
  const Shard s{.rank = 2, .size = 4};
  EXPECT_TRUE(s.validate().ok());
  EXPECT_EQ(s.first(64), 32);
  EXPECT_EQ(s.count(64), 16);
  EXPECT_FALSE(s.divides(6));
  EXPECT_FALSE((Shard{.rank = 4, .size = 4}).validate().ok());
  EXPECT_FALSE((Shard{.rank = 0, .size = 0}).validate().ok());
}

TEST(ThreadGroupCommunicatorTest, SumsInRankOrderBitIdenticalOnEveryRank) {
  for (int ranks : {1, 2, 3, 4}) {
    auto comms = ThreadGroupCommunicator::create(ranks);
    std::vector<std::vector<std::vector<float>>> got(static_cast<size_t>(ranks));  // [rank][call]
    std::vector<std::thread> threads;
    std::vector<Status> status(static_cast<size_t>(ranks));
    for (int r = 0; r < ranks; ++r) {
      threads.emplace_back([&, r] {
        int call = 0;
        for (int repeat = 0; repeat < 3; ++repeat) {
          for (size_t n : kSizes) {
            std::vector<float> v = contribution(r, call++, n);
            Status s = comms[static_cast<size_t>(r)]->all_reduce_sum(v);
            if (!s.ok()) status[static_cast<size_t>(r)] = s;
            got[static_cast<size_t>(r)].push_back(std::move(v));
          }
        }
      });
    }
    for (std::thread& t : threads) t.join();
    for (int r = 0; r < ranks; ++r) {
      ASSERT_TRUE(status[static_cast<size_t>(r)].ok()) << status[static_cast<size_t>(r)].to_string();
      for (size_t c = 0; c < got[0].size(); ++c) {
        const size_t n = kSizes[c % std::size(kSizes)];
        EXPECT_TRUE(same_bits(got[static_cast<size_t>(r)][c], reference_sum(ranks, static_cast<int>(c), n)))
            << "ranks " << ranks << " rank " << r << " call " << c;
      }
    }
  }
}

TEST(ThreadGroupCommunicatorTest, LengthMismatchFailsOnEveryRankAndKeepsWorking) {
  auto comms = ThreadGroupCommunicator::create(2);
  Status first[2], second[2];
  std::vector<float> after[2];
  std::vector<std::thread> threads;
  for (int r = 0; r < 2; ++r) {
    threads.emplace_back([&, r] {
      std::vector<float> v(static_cast<size_t>(3 + r), 1.0f);
      first[r] = comms[static_cast<size_t>(r)]->all_reduce_sum(v);
      after[r].assign(4, static_cast<float>(r + 1));
      second[r] = comms[static_cast<size_t>(r)]->all_reduce_sum(after[r]);
    });
  }
  for (std::thread& t : threads) t.join();
  for (int r = 0; r < 2; ++r) {
    EXPECT_EQ(first[r].code(), Code::kInvalidArgument);
    EXPECT_TRUE(second[r].ok()) << second[r].to_string();
    EXPECT_EQ(after[r], std::vector<float>(4, 3.0f));
  }
}

TEST(ThreadGroupCommunicatorTest, MissingRankTimesOut) {
  auto comms = ThreadGroupCommunicator::create(2, CommOptions{.timeout = std::chrono::milliseconds(100)});
  std::vector<float> v(5, 1.0f);
  const auto start = std::chrono::steady_clock::now();
  const Status s = comms[0]->all_reduce_sum(v);  // rank 1 never comes
  EXPECT_EQ(s.code(), Code::kUnavailable);
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(100));
  EXPECT_EQ(comms[1]->barrier().code(), Code::kUnavailable);  // the group stays broken
}

// Forks `ranks - 1` children that open the segment by name; every rank runs the calls and
// checks its results against the reference bit for bit. A child reports by exit code.
int run_shm_rank(ShmCommunicator& comm, int ranks) {
  int call = 0;
  for (int repeat = 0; repeat < 2; ++repeat) {
    for (size_t n : kSizes) {
      std::vector<float> v = contribution(comm.rank(), call, n);
      if (!comm.all_reduce_sum(v).ok()) return 10;
      if (!same_bits(v, reference_sum(ranks, call, n))) return 11;
      ++call;
    }
  }
  return comm.barrier().ok() ? 0 : 12;
}

TEST(ShmCommunicatorTest, ForkedRanksSumBitIdenticallyInChunks) {
  for (int ranks : {2, 3}) {
    // A small slot, so the larger sizes go through in several chunks.
    auto root = ShmCommunicator::create(make_run_id(), "comm-test", ranks, ShmCommOptions{{}, 1000});
    ASSERT_TRUE(root.ok()) << root.status().to_string();
    std::vector<pid_t> children;
    for (int r = 1; r < ranks; ++r) {
      const pid_t pid = fork();
      ASSERT_GE(pid, 0);
      if (pid == 0) {
        auto comm = ShmCommunicator::open((*root)->segment_name(), r);
        _exit(comm.ok() ? run_shm_rank(**comm, ranks) : 13);
      }
      children.push_back(pid);
    }
    EXPECT_EQ(run_shm_rank(**root, ranks), 0);
    for (pid_t pid : children) {
      int status = 0;
      ASSERT_EQ(waitpid(pid, &status, 0), pid);
      EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child status " << status;
    }
  }
}

TEST(ShmCommunicatorTest, DeadRankTimesOutInsteadOfHanging) {
  auto root = ShmCommunicator::create(make_run_id(), "comm-dead", 3,
                                      ShmCommOptions{{.timeout = std::chrono::milliseconds(300)}, 64});
  ASSERT_TRUE(root.ok()) << root.status().to_string();
  // Rank 1 takes part once, then dies; rank 2 keeps going with rank 0.
  const pid_t dying = fork();
  ASSERT_GE(dying, 0);
  if (dying == 0) {
    auto comm = ShmCommunicator::open((*root)->segment_name(), 1);
    std::vector<float> v(10, 1.0f);
    _exit(comm.ok() && (*comm)->all_reduce_sum(v).ok() ? 0 : 1);
  }
  const pid_t survivor = fork();
  ASSERT_GE(survivor, 0);
  if (survivor == 0) {
    auto comm = ShmCommunicator::open((*root)->segment_name(), 2);
    std::vector<float> v(10, 1.0f);
    if (!comm.ok() || !(*comm)->all_reduce_sum(v).ok()) _exit(1);
    _exit((*comm)->all_reduce_sum(v).code() == Code::kUnavailable ? 0 : 2);
  }
  std::vector<float> v(10, 1.0f);
  ASSERT_TRUE((*root)->all_reduce_sum(v).ok());
  EXPECT_EQ(v, std::vector<float>(10, 3.0f));
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ((*root)->all_reduce_sum(v).code(), Code::kUnavailable);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  EXPECT_EQ((*root)->barrier().code(), Code::kUnavailable);  // broken from now on
  for (pid_t pid : {dying, survivor}) {
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child " << pid << " status " << status;
  }
}

TEST(ShmCommunicatorTest, OpenRejectsBadRanksAndNames) {
  auto root = ShmCommunicator::create(make_run_id(), "comm-open", 2);
  ASSERT_TRUE(root.ok());
  EXPECT_EQ(ShmCommunicator::open((*root)->segment_name(), 0).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(ShmCommunicator::open((*root)->segment_name(), 2).status().code(), Code::kInvalidArgument);
  EXPECT_FALSE(ShmCommunicator::open("/k2serve-1-nothere-x", 1).ok());
  EXPECT_FALSE(ShmCommunicator::create(make_run_id(), "comm-bad", 0).ok());
}

// A peer that cannot know rank 0's pid (a worker of another engine) finds the group by run id
// and name, waiting while rank 0 has not created it yet; without rank 0 it gives up in time.
TEST(ShmCommunicatorTest, OpenWhenCreatedWaitsForRankZero) {
  using namespace std::chrono_literals;
  const std::string run = make_run_id();
  Result<std::unique_ptr<ShmCommunicator>> peer = not_found("not yet");
  std::thread opener([&] { peer = ShmCommunicator::open_when_created(run, "ep", 1, 5s); });
  std::this_thread::sleep_for(200ms);  // the opener is polling by now
  auto root = ShmCommunicator::create(run, "ep", 2);
  ASSERT_TRUE(root.ok()) << root.status().to_string();
  opener.join();
  ASSERT_TRUE(peer.ok()) << peer.status().to_string();
  EXPECT_EQ((*peer)->size(), 2);
  EXPECT_EQ((*peer)->segment_name(), (*root)->segment_name());
  std::vector<float> a = {1.0f, 2.0f}, b = {10.0f, 20.0f};
  std::thread other([&] { EXPECT_TRUE((*peer)->all_reduce_sum(b).ok()); });
  EXPECT_TRUE((*root)->all_reduce_sum(a).ok());
  other.join();
  EXPECT_EQ(a, (std::vector<float>{11.0f, 22.0f}));
  EXPECT_EQ(b, a);

  const auto start = std::chrono::steady_clock::now();
  auto none = ShmCommunicator::open_when_created(make_run_id(), "ep", 1, 100ms);
  EXPECT_EQ(none.status().code(), Code::kNotFound) << none.status().to_string();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
}

}  // namespace
}  // namespace k2
