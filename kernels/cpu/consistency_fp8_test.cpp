// The FP8-block part of the CPU kernel consistency test (see consistency_test.cpp): the
// e4m3 x float32 kernels against the reference's dequantised weights, the fused gate+up
// against the unfused kernels, and the packer's rules.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu/consistency_test_util.h"
#include "kernels/cpu/gate_up.h"
#include "kernels/cpu/isa.h"
#include "kernels/cpu/linear_mt.h"
#include "kernels/cpu/ops.h"
#include "kernels/cpu/packed_fp8.h"
#include "kernels/ref/dense.h"
#include "kernels/ref/fp8_block.h"

namespace k2::cpu {
namespace {

using namespace consistency;

// FP8-block weights: random e4m3 bytes (every finite code, subnormals included; not the
// NaN codes, which the reference turns into NaN) and scales of very different magnitude,
// partial edge blocks in both dimensions, block sizes other than 128 too.
struct Fp8Case {
  int64_t out, in, block_out, block_in;
};
const Fp8Case kFp8Cases[] = {{1, 1, 128, 128},   {15, 3, 128, 128}, {17, 33, 16, 32},   {100, 130, 128, 128},
                             {257, 300, 128, 128}, {48, 2050, 16, 100}, {130, 77, 64, 7}};

struct Fp8Matrix {
  std::vector<uint8_t> q;     // [out, in + 5] (row stride in + 5)
  std::vector<float> scales;  // [ceil(out / bo), ceil(in / bi) + 1]
  int64_t q_stride, s_stride;
};

Fp8Matrix make_fp8(std::mt19937& rng, const Fp8Case& c) {
  Fp8Matrix m{{}, {}, c.in + 5, ceil_div(c.in, c.block_in) + 1};
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_real_distribution<float> mant(0.5f, 1.0f);
  std::uniform_int_distribution<int> exp(-14, 2);
  m.q.resize(static_cast<size_t>(c.out * m.q_stride));
  for (auto& b : m.q) {
    do b = static_cast<uint8_t>(byte(rng));
    while ((b & 0x7f) == 0x7f);
  }
  m.scales.resize(static_cast<size_t>(ceil_div(c.out, c.block_out) * m.s_stride));
  for (auto& v : m.scales) v = std::ldexp(mant(rng), exp(rng));
  return m;
}

PackedFp8 pack(const Fp8Matrix& m, const Fp8Case& c) {
  return pack_fp8(m.q.data(), m.q_stride, m.scales.data(), m.s_stride, c.out, c.in, c.block_out, c.block_in);
}

// The kernels hold exactly the reference's dequantised weights and differ from ref::linear
// over them only in summation order; every ISA (and the threaded split) gives the scalar
// kernel's result bit for bit.
TEST(CpuKernelsConsistency, Fp8WeightsFloatActivationsMatchReference) {
  std::mt19937 rng(4242);
  ThreadPoolOptions options;
  options.threads = 3;
  ThreadPool pool(options);
  for (const Fp8Case& c : kFp8Cases) {
    const Fp8Matrix m = make_fp8(rng, c);
    const PackedFp8 packed = pack(m, c);
    const std::vector<float> wd = ref::dequantize_fp8_block(m.q.data(), m.q_stride, m.scales.data(), m.s_stride,
                                                            c.out, c.in, c.block_out, c.block_in);
    for (int64_t o = 0; o < c.out; ++o)
      for (int64_t k = 0; k < c.in; ++k)
        ASSERT_EQ(std::bit_cast<uint32_t>(fp8_weight(packed.view(), o, k)), std::bit_cast<uint32_t>(wd[o * c.in + k]))
            << "fp8 weight o=" << o << " k=" << k;
    for (int64_t rows : {1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 40}) {
      const Problem p = make_problem(rng, rows, Shape{c.out, c.in});
      std::vector<float> scalar(static_cast<size_t>(rows * p.y_stride), kSentinel);
      cpu_ops_for(Isa::kScalar).linear_fp8(p.x.data(), p.x_stride, rows, packed.view(), scalar.data(), p.y_stride);
      expect_f32act_close(p, wd, scalar, describe("fp8", Isa::kScalar, p));
      for (Isa isa : levels_to_test()) {
        const CpuOps ops = cpu_ops_for(isa);
        std::vector<float> got(scalar.size(), kSentinel);
        ops.linear_fp8(p.x.data(), p.x_stride, rows, packed.view(), got.data(), p.y_stride);
        ASSERT_EQ(got, scalar) << describe(ops.linear_fp8_name, isa, p);
        std::fill(got.begin(), got.end(), kSentinel);
        linear_fp8_mt(pool, p.x.data(), p.x_stride, rows, packed.view(), got.data(), p.y_stride, isa);
        ASSERT_EQ(got, scalar) << describe(ops.linear_fp8_name, isa, p) << " threaded";
      }
    }
  }
}

TEST(CpuKernelsConsistency, Fp8GateUpMatchesUnfusedKernels) {
  std::mt19937 rng(9191);
  ThreadPoolOptions options;
  options.threads = 3;
  ThreadPool pool(options);
  for (const Fp8Case& c : {Fp8Case{15, 64, 128, 128}, Fp8Case{100, 130, 128, 128}, Fp8Case{203, 96, 16, 32}}) {
    const Fp8Matrix mg = make_fp8(rng, c), mu = make_fp8(rng, c);
    const PackedFp8 g = pack(mg, c), u = pack(mu, c), gu = interleave_blocks(g, u);
    for (int64_t rows : {1, 3, 9, 40}) {
      const Problem p = make_problem(rng, rows, Shape{c.out, c.in});
      const int64_t h_stride = c.out + 3;
      for (Isa isa : levels_to_test()) {
        const CpuOps ops = cpu_ops_for(isa);
        std::vector<float> gy(static_cast<size_t>(rows * c.out)), uy(gy.size());
        std::vector<float> want(static_cast<size_t>(rows * h_stride), kSentinel);
        ops.linear_fp8(p.x.data(), p.x_stride, rows, g.view(), gy.data(), c.out);
        ops.linear_fp8(p.x.data(), p.x_stride, rows, u.view(), uy.data(), c.out);
        for (int64_t r = 0; r < rows; ++r)
          ref::silu_mul(gy.data() + r * c.out, uy.data() + r * c.out, c.out, want.data() + r * h_stride);
        for (ThreadPool* tp : {static_cast<ThreadPool*>(nullptr), &pool}) {
          std::vector<float> got(want.size(), kSentinel);
          gate_up_silu_fp8(tp, p.x.data(), p.x_stride, rows, gu.view(), c.out, got.data(), h_stride, isa);
          expect_gate_up_exact(want, got, rows, c.out, h_stride,
                               std::string("fp8 gate_up isa=") + isa_name(isa) + (tp ? " pool" : " inline"));
        }
      }
    }
  }
}

// What pack_fp8 takes: 16-output blocks inside one scale row, scales that stay finite
// times 2^120; the NaN codes (not produced by checkpoints) run without trapping.
TEST(CpuKernelsConsistency, Fp8PackableRuleAndNanCodes) {
  const std::vector<float> ones(8, 1.0f);
  EXPECT_TRUE(fp8_packable(ones.data(), 2, 100, 200, 128, 128));
  EXPECT_TRUE(fp8_packable(ones.data(), 2, 100, 200, 100, 128));   // one scale row
  EXPECT_FALSE(fp8_packable(ones.data(), 2, 200, 200, 100, 128));  // a block straddles rows
  EXPECT_FALSE(fp8_packable(ones.data(), 1, 100, 200, 128, 128));  // stride below the columns
  EXPECT_FALSE(fp8_packable(ones.data(), 2, 0, 200, 128, 128));
  std::vector<float> bad = ones;
  bad[1] = 1e30f;
  EXPECT_FALSE(fp8_packable(bad.data(), 2, 100, 200, 128, 128));
  bad[1] = std::nanf("");
  EXPECT_FALSE(fp8_packable(bad.data(), 2, 100, 200, 128, 128));
  const std::vector<uint8_t> q = {0x7f, 0xff, 0x00, 0x80, 0x7e, 0xfe, 0x01, 0x81};
  const PackedFp8 packed = pack_fp8(q.data(), 4, ones.data(), 1, 2, 4, 128, 128);
  EXPECT_EQ(fp8_weight(packed.view(), 1, 0), 448.0f);
  EXPECT_EQ(fp8_weight(packed.view(), 1, 1), -448.0f);
  EXPECT_EQ(fp8_weight(packed.view(), 1, 2), std::ldexp(1.0f, -9));  // smallest subnormal
  const float x[4] = {0.0f, 0.0f, 1.0f, 2.0f};
  for (Isa isa : levels_to_test()) {
    float y[2] = {0.0f, 0.0f};
    cpu_ops_for(isa).linear_fp8(x, 4, 1, packed.view(), y, 2);
    EXPECT_EQ(y[1], -std::ldexp(1.0f, -9)) << isa_name(isa);
  }
}

}  // namespace
}  // namespace k2::cpu
