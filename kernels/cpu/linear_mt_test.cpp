// The threaded linear layers give exactly the single-thread kernel's result for every ISA
// this machine runs, for pools of 1..3 threads, and plan_blocks covers every block once.
#include "kernels/cpu/linear_mt.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "kernels/cpu/ops.h"

namespace k2::cpu {
namespace {

std::vector<Isa> levels_to_test() { return supported_isas(); }

TEST(LinearMt, PlanCoversEveryBlockOnce) {
  for (int threads : {1, 2, 3, 8}) {
    for (int64_t n_blocks : {1, 2, 5, 37, 128, 1000}) {
      for (int64_t block_bytes : {int64_t{1} << 10, int64_t{16} << 10, int64_t{229} << 10}) {
        const BlockPlan p = plan_blocks(n_blocks, block_bytes, threads);
        ASSERT_GE(p.n_tasks, 1);
        ASSERT_GE(p.blocks_per_task, 1);
        EXPECT_GE(p.n_tasks * p.blocks_per_task, n_blocks);
        EXPECT_LT((p.n_tasks - 1) * p.blocks_per_task, n_blocks);  // no empty task
        if (threads == 1) {
          EXPECT_EQ(p.n_tasks, 1);
        }
        if (p.n_tasks > 1) {
          EXPECT_GE(p.blocks_per_task * block_bytes, kMinTaskBytes);
          EXPECT_EQ(p.blocks_per_task % kBlocksPerTaskGrain, 0);
        }
      }
    }
  }
  // A large matrix gets about kTasksPerThread tasks per thread.
  EXPECT_EQ(plan_blocks(1024, 229 << 10, 2).n_tasks, 2 * kTasksPerThread);
}

struct Case {
  int64_t rows, out, in;
};

class LinearMtTest : public ::testing::Test {
 protected:
  void fill(const Case& c) {
    std::normal_distribution<float> normal(0.0f, 1.0f);
    x_.resize(static_cast<size_t>(c.rows * (c.in + 5)));
    w_.resize(static_cast<size_t>(c.out * c.in));
    for (auto& v : x_) v = normal(rng_);
    for (auto& v : w_) v = normal(rng_);
  }
  std::mt19937 rng_{77};
  std::vector<float> x_, w_;
};

// Outputs chosen so several tasks exist even with the minimum task size (odd block counts,
// a partial last block), and rows beyond the kernels' row tiles.
const Case kCases[] = {{1, 600, 1024}, {5, 599, 1024}, {16, 1000, 512}, {17, 333, 2048}};

TEST_F(LinearMtTest, MatchesSingleThreadBitForBit) {
  for (int threads : {1, 2, 3}) {
    ThreadPoolOptions o;
    o.threads = threads;
    ThreadPool pool(o);
    for (const Case& c : kCases) {
      fill(c);
      const int64_t xs = c.in + 5, ys = c.out + 3;
      const PackedBf16 bf = pack_bf16(w_.data(), c.in, c.out, c.in);
      const PackedInt8 i8 = pack_int8(w_.data(), c.in, c.out, c.in);
      const PackedInt4 i4 = pack_int4(w_.data(), c.in, c.out, c.in, 32);
      for (Isa isa : levels_to_test()) {
        const CpuOps ops = cpu_ops_for(isa);
        const std::string what = std::string(isa_name(isa)) + " threads=" + std::to_string(threads) +
                                 " M=" + std::to_string(c.rows) + " N=" + std::to_string(c.out);
        std::vector<float> want(static_cast<size_t>(c.rows * ys), -1.0f), got(want);
        ops.linear_bf16(x_.data(), xs, c.rows, bf.view(), want.data(), ys);
        linear_bf16_mt(pool, x_.data(), xs, c.rows, bf.view(), got.data(), ys, isa);
        ASSERT_EQ(got, want) << "bf16 " << what;
        ops.linear_int8(x_.data(), xs, c.rows, i8.view(), want.data(), ys);
        linear_int8_mt(pool, x_.data(), xs, c.rows, i8.view(), got.data(), ys, isa);
        ASSERT_EQ(got, want) << "int8 " << what;
        ops.linear_int4(x_.data(), xs, c.rows, i4.view(), want.data(), ys);
        linear_int4_mt(pool, x_.data(), xs, c.rows, i4.view(), got.data(), ys, isa);
        ASSERT_EQ(got, want) << "int4 " << what;
        ops.linear_bf16_f32act(x_.data(), xs, c.rows, bf.view(), want.data(), ys);
        linear_bf16_mt(pool, x_.data(), xs, c.rows, bf.view(), got.data(), ys, isa, ActivationPrecision::kFloat32);
        ASSERT_EQ(got, want) << "bf16 f32act " << what;
        ops.linear_int4_f32act(x_.data(), xs, c.rows, i4.view(), want.data(), ys);
        linear_int4_mt(pool, x_.data(), xs, c.rows, i4.view(), got.data(), ys, isa, ActivationPrecision::kFloat32);
        ASSERT_EQ(got, want) << "int4 f32act " << what;
      }
    }
  }
}

TEST_F(LinearMtTest, DefaultIsaIsTheActiveOne) {
  ThreadPoolOptions o;
  o.threads = 2;
  ThreadPool pool(o);
  const Case c{3, 700, 1024};
  fill(c);
  const PackedBf16 bf = pack_bf16(w_.data(), c.in, c.out, c.in);
  std::vector<float> want(static_cast<size_t>(c.rows * c.out)), got(want.size());
  cpu_ops().linear_bf16(x_.data(), c.in + 5, c.rows, bf.view(), want.data(), c.out);
  linear_bf16_mt(pool, x_.data(), c.in + 5, c.rows, bf.view(), got.data(), c.out);
  EXPECT_EQ(got, want);
}

}  // namespace
}  // namespace k2::cpu
