// Every CPU kernel this machine can run, at its own ISA level and each forced lower level,
// against the float32 reference (kernels/ref) on random shapes with odd sizes. Tolerances
// come from the quantisation: bf16 rounds each operand to 8 significant bits (relative
// error <= 2^-8), int8 to half a quantisation step (scale / 2), int4 weights likewise per
// group (checked on the packer; the kernels are checked on the dequantised weights, where
// only the int8 activations round); fp32 accumulation adds
// at most ~K * 2^-24 of sum |x * w| on each side.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu/consistency_test_util.h"
#include "kernels/cpu/gate_up.h"
#include "kernels/cpu/isa.h"
#include "kernels/cpu/linear_f32.h"
#include "kernels/cpu/linear_mt.h"
#include "kernels/cpu/mla_decode.h"
#include "kernels/cpu/ops.h"
#include "kernels/cpu/packed.h"
#include "kernels/ref/dense.h"
#include "kernels/ref/kv_fp8.h"
#include "kernels/ref/mla.h"

namespace k2::cpu {
namespace {

using namespace consistency;

TEST(CpuKernelsConsistency, Bf16LinearMatchesReference) {
  std::mt19937 rng(1234);
  const double u = std::ldexp(1.0, -8);  // bf16 unit roundoff (8-bit significand)
  int checked = 0;
  for (const Shape& s : kShapes) {
    for (int64_t rows = 1; rows <= 17; ++rows) {
      const Problem p = make_problem(rng, rows, s);
      const std::vector<float> want = reference(p);
      const PackedBf16 packed = pack_bf16(p.w.data(), p.w_stride, p.out, p.in);
      for (Isa isa : levels_to_test()) {
        const CpuOps ops = cpu_ops_for(isa);
        std::vector<float> got(want.size(), kSentinel);
        ops.linear_bf16(p.x.data(), p.x_stride, p.rows, packed.view(), got.data(), p.y_stride);
        const std::string what = describe(ops.linear_bf16_name, isa, p);
        expect_padding_untouched(p, got, what);
        const double rel = 2 * u + u * u + 2.0 * static_cast<double>(p.in + 2) * std::ldexp(1.0, -24);
        for (int64_t r = 0; r < p.rows; ++r) {
          for (int64_t o = 0; o < p.out; ++o) {
            const double tol = rel * abs_dot(p, r, o) + 1e-30;
            const size_t i = static_cast<size_t>(r * p.y_stride + o);
            ASSERT_LE(std::fabs(double{got[i]} - want[i]), tol) << what << " r=" << r << " o=" << o;
            ++checked;
          }
        }
      }
    }
  }
  EXPECT_GT(checked, 0);
}

// The bf16 kernels compute exactly bf16(x) . bf16(W) up to fp32 summation order: a tighter
// check than the one against float32 that catches a wrong pair/lane mapping.
TEST(CpuKernelsConsistency, Bf16LinearMatchesRoundedOperands) {
  std::mt19937 rng(99);
  for (const Shape& s : kShapes) {
    const Problem p = make_problem(rng, 5, s);
    const PackedBf16 packed = pack_bf16(p.w.data(), p.w_stride, p.out, p.in);
    for (Isa isa : levels_to_test()) {
      const CpuOps ops = cpu_ops_for(isa);
      std::vector<float> got(static_cast<size_t>(p.rows * p.y_stride), kSentinel);
      ops.linear_bf16(p.x.data(), p.x_stride, p.rows, packed.view(), got.data(), p.y_stride);
      for (int64_t r = 0; r < p.rows; ++r) {
        for (int64_t o = 0; o < p.out; ++o) {
          double exact = 0.0, mag = 0.0;
          for (int64_t k = 0; k < p.in; ++k) {
            const double t = double{from_bf16(to_bf16(p.x[r * p.x_stride + k]))} *
                             from_bf16(to_bf16(p.w[o * p.w_stride + k]));
            exact += t;
            mag += std::fabs(t);
          }
          const double tol = static_cast<double>(p.in + 2) * std::ldexp(1.0, -23) * mag + 1e-30;
          ASSERT_NEAR(got[r * p.y_stride + o], exact, tol) << describe(ops.linear_bf16_name, isa, p);
        }
      }
    }
  }
}

TEST(CpuKernelsConsistency, Int8LinearMatchesReferenceAndIsIdenticalAcrossIsas) {
  std::mt19937 rng(4321);
  for (const Shape& s : kShapes) {
    for (int64_t rows = 1; rows <= 17; ++rows) {
      const Problem p = make_problem(rng, rows, s);
      const std::vector<float> want = reference(p);
      const PackedInt8 packed = pack_int8(p.w.data(), p.w_stride, p.out, p.in);
      const Int8Weights wv = packed.view();
      std::vector<float> x_scale(static_cast<size_t>(rows));
      for (int64_t r = 0; r < rows; ++r) {
        float amax = 0.0f;
        for (int64_t k = 0; k < p.in; ++k) amax = std::max(amax, std::fabs(p.x[r * p.x_stride + k]));
        x_scale[r] = amax / 127.0f;
      }
      std::vector<float> scalar(want.size(), kSentinel);
      cpu_ops_for(Isa::kScalar).linear_int8(p.x.data(), p.x_stride, rows, wv, scalar.data(), p.y_stride);
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t o = 0; o < p.out; ++o) {
          // x^ w^ - x w = x (w^ - w) + w^ (x^ - x); |w^ - w| <= s_w / 2, |x^ - x| <= s_x / 2.
          double bound = 0.0;
          const double sw = wv.scales[o], sx = x_scale[r];
          for (int64_t k = 0; k < p.in; ++k) {
            bound += std::fabs(p.x[r * p.x_stride + k]) * sw / 2 + (std::fabs(p.w[o * p.w_stride + k]) + sw / 2) * sx / 2;
          }
          const double tol = 1.001 * bound + static_cast<double>(p.in + 4) * std::ldexp(1.0, -22) * abs_dot(p, r, o) + 1e-30;
          const size_t i = static_cast<size_t>(r * p.y_stride + o);
          ASSERT_LE(std::fabs(double{scalar[i]} - want[i]), tol) << describe("int8 scalar", Isa::kScalar, p);
        }
      }
      expect_padding_untouched(p, scalar, describe("int8 scalar", Isa::kScalar, p));
      for (Isa isa : levels_to_test()) {
        const CpuOps ops = cpu_ops_for(isa);
        std::vector<float> got(want.size(), kSentinel);
        ops.linear_int8(p.x.data(), p.x_stride, rows, wv, got.data(), p.y_stride);
        // Integer sums are exact and the epilogue order is shared: bit-identical results.
        ASSERT_EQ(got, scalar) << describe(ops.linear_int8_name, isa, p);
      }
    }
  }
}

TEST(CpuKernelsConsistency, SlicedWeightsGiveTheSameColumns) {
  std::mt19937 rng(7);
  const Problem p = make_problem(rng, 3, Shape{75, 97});
  const PackedBf16 bf = pack_bf16(p.w.data(), p.w_stride, p.out, p.in);
  const PackedInt8 i8 = pack_int8(p.w.data(), p.w_stride, p.out, p.in);
  const PackedInt4 i4 = pack_int4(p.w.data(), p.w_stride, p.out, 96, 32);  // first 96 inputs
  for (Isa isa : levels_to_test()) {
    const CpuOps ops = cpu_ops_for(isa);
    std::vector<float> whole(static_cast<size_t>(p.rows * p.y_stride), kSentinel), parts(whole.size(), kSentinel);
    ops.linear_bf16(p.x.data(), p.x_stride, p.rows, bf.view(), whole.data(), p.y_stride);
    ops.linear_bf16(p.x.data(), p.x_stride, p.rows, slice_blocks(bf.view(), 0, 2), parts.data(), p.y_stride);
    ops.linear_bf16(p.x.data(), p.x_stride, p.rows, slice_blocks(bf.view(), 2, 3), parts.data() + 32,
                    p.y_stride);
    EXPECT_EQ(parts, whole) << isa_name(isa);
    ops.linear_int8(p.x.data(), p.x_stride, p.rows, i8.view(), whole.data(), p.y_stride);
    ops.linear_int8(p.x.data(), p.x_stride, p.rows, slice_blocks(i8.view(), 0, 4), parts.data(), p.y_stride);
    ops.linear_int8(p.x.data(), p.x_stride, p.rows, slice_blocks(i8.view(), 4, 1), parts.data() + 64,
                    p.y_stride);
    EXPECT_EQ(parts, whole) << isa_name(isa);
    ops.linear_int4(p.x.data(), p.x_stride, p.rows, i4.view(), whole.data(), p.y_stride);
    ops.linear_int4(p.x.data(), p.x_stride, p.rows, slice_blocks(i4.view(), 0, 3), parts.data(), p.y_stride);
    ops.linear_int4(p.x.data(), p.x_stride, p.rows, slice_blocks(i4.view(), 3, 2), parts.data() + 48,
                    p.y_stride);
    EXPECT_EQ(parts, whole) << isa_name(isa);
  }
}

// Int4 shapes: in is always a multiple of the group (int4_shape_ok); out is odd on purpose.
struct Int4Shape {
  int64_t out, in, group;
};
const Int4Shape kInt4Shapes[] = {{1, 8, 8},      {15, 32, 32},   {17, 96, 32},  {33, 64, 8},  {31, 40, 8},
                                 {100, 224, 32}, {257, 1024, 128}, {48, 2048, 32}, {65, 160, 32}};

std::vector<float> dequantized(const Int4Weights& w) {
  std::vector<float> out(static_cast<size_t>(w.out * w.in));
  for (int64_t o = 0; o < w.out; ++o)
    for (int64_t k = 0; k < w.in; ++k) out[static_cast<size_t>(o * w.in + k)] = int4_weight(w, o, k);
  return out;
}

// Against the float32 reference on the dequantised weights, so the only rounding left is the
// int8 activations' (|x^ - x| <= s_x / 2 per element) and fp32 accumulation; then every ISA
// bit for bit against the scalar kernel.
TEST(CpuKernelsConsistency, Int4LinearMatchesReferenceAndIsIdenticalAcrossIsas) {
  std::mt19937 rng(2468);
  for (const Int4Shape& s : kInt4Shapes) {
    for (int64_t rows = 1; rows <= 17; ++rows) {
      const Problem p = make_problem(rng, rows, Shape{s.out, s.in});
      const PackedInt4 packed = pack_int4(p.w.data(), p.w_stride, p.out, p.in, s.group);
      const Int4Weights wv = packed.view();
      const std::vector<float> wd = dequantized(wv);
      std::vector<float> want(static_cast<size_t>(rows * p.y_stride), kSentinel);
      ref::linear(p.x.data(), p.x_stride, wd.data(), p.in, rows, p.in, p.out, want.data(), p.y_stride);
      std::vector<float> scalar(want.size(), kSentinel);
      cpu_ops_for(Isa::kScalar).linear_int4(p.x.data(), p.x_stride, rows, wv, scalar.data(), p.y_stride);
      const std::string what = describe("int4 scalar", Isa::kScalar, p) + " G=" + std::to_string(s.group);
      expect_padding_untouched(p, scalar, what);
      for (int64_t r = 0; r < rows; ++r) {
        float amax = 0.0f;
        for (int64_t k = 0; k < p.in; ++k) amax = std::max(amax, std::fabs(p.x[r * p.x_stride + k]));
        const double sx = amax / 127.0;
        for (int64_t o = 0; o < p.out; ++o) {
          double wsum = 0.0, mag = 0.0;
          for (int64_t k = 0; k < p.in; ++k) {
            wsum += std::fabs(wd[o * p.in + k]);
            mag += std::fabs(double{p.x[r * p.x_stride + k]} * wd[o * p.in + k]);
          }
          const double tol = 1.001 * wsum * sx / 2 + static_cast<double>(p.in + 4) * std::ldexp(1.0, -22) * mag + 1e-30;
          const size_t i = static_cast<size_t>(r * p.y_stride + o);
          ASSERT_LE(std::fabs(double{scalar[i]} - want[i]), tol) << what << " r=" << r << " o=" << o;
        }
      }
      for (Isa isa : levels_to_test()) {
        const CpuOps ops = cpu_ops_for(isa);
        std::vector<float> got(want.size(), kSentinel);
        ops.linear_int4(p.x.data(), p.x_stride, rows, wv, got.data(), p.y_stride);
        ASSERT_EQ(got, scalar) << describe(ops.linear_int4_name, isa, p) << " G=" << s.group;
      }
    }
  }
}

TEST(CpuKernelsConsistency, Bf16WeightsFloatActivationsMatchReference) {
  std::mt19937 rng(1357);
  for (const Shape& s : kShapes) {
    for (int64_t rows : {1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 40}) {
      const Problem p = make_problem(rng, rows, s);
      const PackedBf16 packed = pack_bf16(p.w.data(), p.w_stride, p.out, p.in);
      std::vector<float> wd(static_cast<size_t>(p.out * p.in));
      for (int64_t o = 0; o < p.out; ++o)
        for (int64_t k = 0; k < p.in; ++k) wd[o * p.in + k] = from_bf16(to_bf16(p.w[o * p.w_stride + k]));
      for (Isa isa : levels_to_test()) {
        const CpuOps ops = cpu_ops_for(isa);
        std::vector<float> got(static_cast<size_t>(rows * p.y_stride), kSentinel);
        ops.linear_bf16_f32act(p.x.data(), p.x_stride, rows, packed.view(), got.data(), p.y_stride);
        expect_f32act_close(p, wd, got, describe(ops.linear_bf16_f32act_name, isa, p) + " f32act");
      }
    }
  }
}

// Same for int4; the SIMD kernels take the scalar one's operations in its order, so they
// also agree with it bit for bit.
TEST(CpuKernelsConsistency, Int4WeightsFloatActivationsMatchReference) {
  std::mt19937 rng(8642);
  for (const Int4Shape& s : kInt4Shapes) {
    for (int64_t rows : {1, 2, 3, 4, 5, 8, 9, 17, 40}) {
      const Problem p = make_problem(rng, rows, Shape{s.out, s.in});
      const PackedInt4 packed = pack_int4(p.w.data(), p.w_stride, p.out, p.in, s.group);
      const std::vector<float> wd = dequantized(packed.view());
      std::vector<float> scalar(static_cast<size_t>(rows * p.y_stride), kSentinel);
      cpu_ops_for(Isa::kScalar).linear_int4_f32act(p.x.data(), p.x_stride, rows, packed.view(), scalar.data(),
                                                    p.y_stride);
      const std::string what = describe("int4 f32act", Isa::kScalar, p) + " G=" + std::to_string(s.group);
      expect_f32act_close(p, wd, scalar, what);
      for (Isa isa : levels_to_test()) {
        std::vector<float> got(scalar.size(), kSentinel);
        cpu_ops_for(isa).linear_int4_f32act(p.x.data(), p.x_stride, rows, packed.view(), got.data(), p.y_stride);
        ASSERT_EQ(got, scalar) << describe("int4 f32act", isa, p) << " G=" << s.group;
      }
    }
  }
}

// pack_int4: every weight within half a step of its group's scale, the scale bf16(max|w| / 7).
TEST(CpuKernelsConsistency, Int4PackingErrorIsHalfAStep) {
  std::mt19937 rng(11);
  Problem p = make_problem(rng, 1, Shape{37, 96});
  std::fill(p.w.begin() + 5 * p.w_stride, p.w.begin() + 5 * p.w_stride + 32, 0.0f);  // a zero group
  const PackedInt4 packed = pack_int4(p.w.data(), p.w_stride, p.out, p.in, 32);
  for (int64_t o = 0; o < p.out; ++o) {
    for (int64_t g = 0; g < 3; ++g) {
      float amax = 0.0f;
      for (int64_t k = g * 32; k < (g + 1) * 32; ++k) amax = std::max(amax, std::fabs(p.w[o * p.w_stride + k]));
      const float scale = from_bf16(to_bf16(amax / 7.0f));
      for (int64_t k = g * 32; k < (g + 1) * 32; ++k) {
        ASSERT_LE(std::fabs(int4_weight(packed.view(), o, k) - p.w[o * p.w_stride + k]), scale / 2 * 1.0001f)
            << "o=" << o << " k=" << k;
      }
    }
  }
  EXPECT_EQ(int4_weight(packed.view(), 5, 3), 0.0f);
}

// The checkpoint's pack-quantized INT4 (compressed-tensors, as workers/loader/convert.cpp
// reads it: int32 words, input 8j + n in bits 4n..4n+3 of word j, value = nibble - 8) and
// the same values given as floats pack to identical bytes. Values are chosen so the float
// packer recovers the same q and scale: q in [-7, 7] with a +-7 in every group, scales
// with few significant bits (7 * s and 7 * s / 7 exact).
TEST(CpuKernelsConsistency, Int4PackersAgreeOnCheckpointValues) {
  std::mt19937 rng(5);
  std::uniform_int_distribution<int> qdist(-7, 7), mant(1, 255), expo(-12, 2);
  for (const Int4Shape& s : kInt4Shapes) {
    const int64_t groups = s.in / s.group, words = s.in / 8;
    std::vector<int> q(static_cast<size_t>(s.out * s.in));
    std::vector<float> scales(static_cast<size_t>(s.out * groups)), w(q.size());
    std::vector<int32_t> packed(static_cast<size_t>(s.out * words), 0);
    for (int64_t o = 0; o < s.out; ++o) {
      for (int64_t g = 0; g < groups; ++g) {
        const float sc = std::ldexp(static_cast<float>(mant(rng)), expo(rng) - 8);
        scales[o * groups + g] = sc;
        for (int64_t k = g * s.group; k < (g + 1) * s.group; ++k) q[o * s.in + k] = qdist(rng);
        q[o * s.in + g * s.group + static_cast<int64_t>(rng() % s.group)] = (rng() & 1) ? 7 : -7;
        for (int64_t k = g * s.group; k < (g + 1) * s.group; ++k) w[o * s.in + k] = static_cast<float>(q[o * s.in + k]) * sc;
      }
      for (int64_t k = 0; k < s.in; ++k) {
        const uint32_t nibble = static_cast<uint32_t>(q[o * s.in + k] + 8);
        auto& word = packed[static_cast<size_t>(o * words + k / 8)];
        word = static_cast<int32_t>(static_cast<uint32_t>(word) | (nibble << (4 * (k % 8))));
      }
    }
    const PackedInt4 a = pack_int4(w.data(), s.in, s.out, s.in, s.group);
    const PackedInt4 b = pack_int4_from_packed(packed.data(), scales.data(), s.out, s.in, s.group);
    ASSERT_EQ(a.bytes(), b.bytes());
    const Int4Weights av = a.view(), bv = b.view();
    const size_t data_bytes = static_cast<size_t>(av.n_blocks() * av.block_bytes());
    const size_t scale_elems = static_cast<size_t>(av.n_blocks() * av.block_scales());
    EXPECT_EQ(std::memcmp(av.data, bv.data, data_bytes), 0) << "out=" << s.out << " in=" << s.in;
    EXPECT_EQ(std::memcmp(av.scales, bv.scales, scale_elems * 2), 0) << "out=" << s.out << " in=" << s.in;
    for (int64_t o = 0; o < s.out; ++o)
      for (int64_t k = 0; k < s.in; ++k) ASSERT_EQ(int4_weight(bv, o, k), w[o * s.in + k]);
  }
}

// -8 (nibble 0) exists in checkpoints though the float packer never makes it.
TEST(CpuKernelsConsistency, Int4RepackKeepsMinusEight) {
  const int32_t packed[2] = {static_cast<int32_t>(0x0123f8a0u), static_cast<int32_t>(0x88888888u)};
  const float scales[2] = {0.5f, 2.0f};
  const PackedInt4 p = pack_int4_from_packed(packed, scales, 1, 16, 8);
  const int want_q[8] = {0 - 8, 0xa - 8, 8 - 8, 0xf - 8, 3 - 8, 2 - 8, 1 - 8, 0 - 8};
  for (int k = 0; k < 8; ++k) EXPECT_EQ(int4_weight(p.view(), 0, k), want_q[k] * 0.5f) << k;
  for (int k = 8; k < 16; ++k) EXPECT_EQ(int4_weight(p.view(), 0, k), 0.0f) << k;
}

TEST(CpuKernelsConsistency, Int4ShapeRule) {
  EXPECT_TRUE(int4_shape_ok(64, 32));
  EXPECT_TRUE(int4_shape_ok(7168, 32));
  EXPECT_TRUE(int4_shape_ok(8, 8));
  EXPECT_FALSE(int4_shape_ok(48, 32));  // in not a multiple of the group
  EXPECT_FALSE(int4_shape_ok(36, 12));  // group not a multiple of 8
  EXPECT_FALSE(int4_shape_ok(64, 0));
  EXPECT_FALSE(int4_shape_ok(0, 32));
  EXPECT_FALSE(int4_shape_ok(2 * kMaxInt4Group, 2 * kMaxInt4Group));
  const std::vector<float> w(48, 1.0f);
  EXPECT_DEATH(pack_int4(w.data(), 48, 1, 48, 32), "unsupported shape");
  const std::vector<int32_t> packed(6, 0);
  const std::vector<float> scales(2, 1.0f);
  EXPECT_DEATH(pack_int4_from_packed(packed.data(), scales.data(), 1, 48, 32), "unsupported shape");
}

// MLA decode: shuffled block tables, several lengths (one row, a partial block, many
// blocks), heads and widths that are not multiples of 16. Only the summation order differs
// from the reference, so the bound is a few float ulps of the magnitudes involved.
// MLA naive (prefill) form, a chunk continuing after cached positions, split by q_offset as
// the model splits it across threads.
TEST(CpuKernelsConsistency, MlaNaiveMatchesReference) {
  std::mt19937 rng(78);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  for (auto [heads, nope, rope, v] : {std::tuple{4, 32, 16, 32}, std::tuple{3, 20, 8, 12}}) {
    ref::MlaDims d{.heads = heads, .nope_dim = nope, .rope_dim = rope, .v_dim = v, .kv_lora_rank = 32};
    const int64_t kv_tokens = 37, q_tokens = 21, q_offset = kv_tokens - q_tokens, kv_w = nope + v;
    std::vector<float> q(static_cast<size_t>(q_tokens * heads * d.qk_dim())), kv(static_cast<size_t>(kv_tokens * heads * kv_w)),
        k_pe(static_cast<size_t>(kv_tokens * (rope + 3)));
    for (auto* vec : {&q, &kv, &k_pe})
      for (float& x : *vec) x = dist(rng) * 0.5f;
    std::vector<float> want(static_cast<size_t>(q_tokens * heads * v));
    ref::mla_attention_naive(q.data(), kv.data(), k_pe.data(), rope + 3, q_tokens, kv_tokens, q_offset, d, 0.2f,
                             want.data());
    for (Isa isa : levels_to_test()) {
      std::vector<float> got(want.size(), -1.0f);
      const int64_t half = q_tokens / 2;
      mla_naive_for(isa)(q.data(), kv.data(), k_pe.data(), rope + 3, half, kv_tokens, q_offset, d, 0.2f, got.data());
      mla_naive_for(isa)(q.data() + half * heads * d.qk_dim(), kv.data(), k_pe.data(), rope + 3, q_tokens - half,
                         kv_tokens, q_offset + half, d, 0.2f, got.data() + half * heads * v);
      for (size_t i = 0; i < got.size(); ++i)
        ASSERT_NEAR(got[i], want[i], 1e-5 * (1.0 + std::fabs(want[i]))) << isa_name(isa) << " i " << i;
    }
  }
}

TEST(CpuKernelsConsistency, MlaDecodeMatchesReference) {
  std::mt19937 rng(77);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  for (auto [heads, kv_lora, rope] :
       {std::tuple{4, 64, 16}, std::tuple{3, 40, 8}, std::tuple{6, 72, 8}, std::tuple{16, 512, 64}}) {
    ref::MlaDims d{.heads = heads, .nope_dim = 16, .rope_dim = rope, .v_dim = 16, .kv_lora_rank = kv_lora};
    const int64_t row = d.latent_dim(), block = 8, num_blocks = 40, batch = 3, stride = 12;
    std::vector<float> cache(static_cast<size_t>(num_blocks * block * row));
    for (float& v : cache) v = dist(rng);
    std::vector<int32_t> tables(static_cast<size_t>(batch * stride));
    for (size_t i = 0; i < tables.size(); ++i) tables[i] = static_cast<int32_t>((i * 7 + 3) % num_blocks);
    const std::vector<int64_t> lens = {1, 13, 90};
    std::vector<float> q(static_cast<size_t>(batch * heads * row));
    for (float& v : q) v = dist(rng) * 0.2f;
    const ref::PagedLatentView view{cache.data(), num_blocks, block};
    std::vector<float> want(static_cast<size_t>(batch * heads * kv_lora));
    ref::mla_decode_paged(q.data(), batch, view, tables.data(), stride, lens.data(), d, 0.1f, want.data());
    for (Isa isa : levels_to_test()) {
      std::vector<float> got(want.size(), -1.0f);
      mla_decode_for(isa)(q.data(), batch, view, tables.data(), stride, lens.data(), d, 0.1f, got.data());
      for (size_t i = 0; i < got.size(); ++i)
        ASSERT_NEAR(got[i], want[i], 1e-5 * (1.0 + std::fabs(want[i]))) << isa_name(isa) << " heads " << heads << " i " << i;
    }
    // A bf16 cache: the kernel widens rows exactly, so it matches the reference over the
    // same bf16 rows to float reassociation, and the float32 cache's result to bf16 rounding
    // of the rows (relative 2^-8 on every score and value).
    std::vector<uint16_t> cache16(cache.size());
    for (size_t i = 0; i < cache.size(); ++i) cache16[i] = to_bf16(cache[i]);
    const ref::PagedLatentBf16View view16{cache16.data(), num_blocks, block};
    std::vector<float> want16(want.size());
    ref::mla_decode_paged_bf16(q.data(), batch, view16, tables.data(), stride, lens.data(), d, 0.1f, want16.data());
    double max_vs_f32 = 0.0;
    for (size_t i = 0; i < want.size(); ++i) max_vs_f32 = std::max(max_vs_f32, double{std::fabs(want16[i] - want[i])});
    EXPECT_GT(max_vs_f32, 0.0) << "the bf16 rows must round";
    EXPECT_LT(max_vs_f32, 0.05) << "heads " << heads;
    for (Isa isa : levels_to_test()) {
      std::vector<float> got(want.size(), -1.0f);
      mla_decode_bf16_for(isa)(q.data(), batch, view16, tables.data(), stride, lens.data(), d, 0.1f, got.data());
      for (size_t i = 0; i < got.size(); ++i)
        ASSERT_NEAR(got[i], want16[i], 1e-5 * (1.0 + std::fabs(want16[i]))) << isa_name(isa) << " bf16 heads " << heads;
    }
    // An fp8 cache (e4m3, one scale per tile): the kernel dequantises as the reference does,
    // so it matches the reference over the same fp8 rows to float reassociation; against the
    // float32 cache, each value moves by at most half an e4m3 step, 2^-4 of its tile's
    // largest value (|v| < 5 here), which bounds scores' and outputs' change.
    const int64_t row_bytes = ref::fp8_kv_row_bytes(row);
    std::vector<uint8_t> cache8(static_cast<size_t>(num_blocks * block * row_bytes));
    for (int64_t r = 0; r < num_blocks * block; ++r)
      ref::quantize_fp8_kv_row(cache.data() + r * row, row, cache8.data() + r * row_bytes);
    const ref::PagedLatentFp8View view8{cache8.data(), num_blocks, block};
    std::vector<float> want8(want.size());
    ref::mla_decode_paged_fp8(q.data(), batch, view8, tables.data(), stride, lens.data(), d, 0.1f, want8.data());
    double max8_vs_f32 = 0.0;
    for (size_t i = 0; i < want.size(); ++i) max8_vs_f32 = std::max(max8_vs_f32, double{std::fabs(want8[i] - want[i])});
    EXPECT_GT(max8_vs_f32, max_vs_f32) << "fp8 rounds more than bf16";
    EXPECT_LT(max8_vs_f32, 0.4) << "heads " << heads;
    for (Isa isa : levels_to_test()) {
      std::vector<float> got(want.size(), -1.0f);
      mla_decode_fp8_for(isa)(q.data(), batch, view8, tables.data(), stride, lens.data(), d, 0.1f, got.data());
      for (size_t i = 0; i < got.size(); ++i)
        ASSERT_NEAR(got[i], want8[i], 1e-5 * (1.0 + std::fabs(want8[i]))) << isa_name(isa) << " fp8 heads " << heads;
    }
    std::printf("mla decode heads %d: max |diff| vs float32 cache: bf16 %.3g, fp8 %.3g\n", heads, max_vs_f32,
                max8_vs_f32);
  }
}

TEST(CpuKernelsConsistency, Bf16RoundingIsNearestEven) {
  EXPECT_EQ(to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(to_bf16(std::bit_cast<float>(0x3f808000u)), 0x3f80);  // tie, even stays
  EXPECT_EQ(to_bf16(std::bit_cast<float>(0x3f818000u)), 0x3f82);  // tie, odd rounds up
  EXPECT_EQ(to_bf16(std::bit_cast<float>(0x3f808001u)), 0x3f81);
  EXPECT_TRUE(std::isnan(from_bf16(to_bf16(std::nanf("")))));
  EXPECT_EQ(from_bf16(to_bf16(-2.5f)), -2.5f);
}

// The fused gate+up kernel (interleaved blocks, SiLU-mul on a scratch tile) against the
// unfused kernels of the same ISA (bit for bit, every format, with and without a pool), and
// the bf16 one against the float32 reference. Widths with partial last blocks, odd inputs.
struct GateUpCase {
  int64_t width, in;
};

TEST(CpuKernelsConsistency, GateUpSiluMatchesUnfusedKernelsAndReference) {
  std::mt19937 rng(777);
  ThreadPoolOptions options;
  options.threads = 3;
  ThreadPool pool(options);
  const GateUpCase cases[] = {{1, 32}, {15, 64}, {16, 96}, {17, 160}, {100, 64}, {203, 96}};
  const double u = std::ldexp(1.0, -8);
  for (const GateUpCase& c : cases) {
    for (int64_t rows : {1, 2, 3, 5, 8, 9, 17, 40}) {
      const Problem pg = make_problem(rng, rows, Shape{c.width, c.in});
      const Problem pu = make_problem(rng, rows, Shape{c.width, c.in});
      const Problem& p = pg;  // x (and its stride) from the gate problem
      const int64_t h_stride = c.width + 3;
      std::vector<float> want_ref(static_cast<size_t>(rows * h_stride), kSentinel);
      ASSERT_EQ(pg.w_stride, pu.w_stride);
      ref::gate_up_silu(p.x.data(), p.x_stride, pg.w.data(), pu.w.data(), pg.w_stride, rows, c.in, c.width,
                        want_ref.data(), h_stride);
      const PackedBf16 gb = pack_bf16(pg.w.data(), pg.w_stride, c.width, c.in);
      const PackedBf16 ub = pack_bf16(pu.w.data(), pu.w_stride, c.width, c.in);
      const PackedBf16 gub = interleave_blocks(gb, ub);
      const PackedInt8 gi = pack_int8(pg.w.data(), pg.w_stride, c.width, c.in);
      const PackedInt8 ui = pack_int8(pu.w.data(), pu.w_stride, c.width, c.in);
      const PackedInt8 gui = interleave_blocks(gi, ui);
      const PackedInt4 g4 = pack_int4(pg.w.data(), pg.w_stride, c.width, c.in, 32);
      const PackedInt4 u4 = pack_int4(pu.w.data(), pu.w_stride, c.width, c.in, 32);
      const PackedInt4 gu4 = interleave_blocks(g4, u4);
      for (Isa isa : levels_to_test()) {
        const CpuOps ops = cpu_ops_for(isa);
        const std::string what = std::string("gate_up isa=") + isa_name(isa) + " M=" + std::to_string(rows) +
                                 " W=" + std::to_string(c.width) + " K=" + std::to_string(c.in);
        // Unfused: two linears, then ref::silu_mul.
        auto unfused = [&](auto linear, const auto& gw, const auto& uw) {
          std::vector<float> g(static_cast<size_t>(rows * c.width)), up(g.size());
          std::vector<float> h(static_cast<size_t>(rows * h_stride), kSentinel);
          linear(p.x.data(), p.x_stride, rows, gw.view(), g.data(), c.width);
          linear(p.x.data(), p.x_stride, rows, uw.view(), up.data(), c.width);
          for (int64_t r = 0; r < rows; ++r)
            ref::silu_mul(g.data() + r * c.width, up.data() + r * c.width, c.width, h.data() + r * h_stride);
          return h;
        };
        for (ThreadPool* tp : {static_cast<ThreadPool*>(nullptr), &pool}) {
          const std::string where = what + (tp ? " pool" : " inline");
          std::vector<float> got(want_ref.size(), kSentinel);
          gate_up_silu_bf16(tp, p.x.data(), p.x_stride, rows, gub.view(), c.width, got.data(), h_stride, isa,
                            ActivationPrecision::kFloat32);
          expect_gate_up_exact(unfused(ops.linear_bf16_f32act, gb, ub), got, rows, c.width, h_stride,
                               where + " bf16 f32act");
          std::fill(got.begin(), got.end(), kSentinel);
          gate_up_silu_int4(tp, p.x.data(), p.x_stride, rows, gu4.view(), c.width, got.data(), h_stride, isa,
                            ActivationPrecision::kFloat32);
          expect_gate_up_exact(unfused(ops.linear_int4_f32act, g4, u4), got, rows, c.width, h_stride,
                               where + " int4 f32act");
          std::fill(got.begin(), got.end(), kSentinel);
          gate_up_silu_bf16(tp, p.x.data(), p.x_stride, rows, gub.view(), c.width, got.data(), h_stride, isa);
          expect_gate_up_exact(unfused(ops.linear_bf16, gb, ub), got, rows, c.width, h_stride, where + " bf16");
          for (int64_t r = 0; r < rows; ++r) {
            for (int64_t j = 0; j < c.width; ++j) {
              double dg = 0.0, du = 0.0, g = 0.0, up = 0.0;
              for (int64_t k = 0; k < c.in; ++k) {
                const double xv = p.x[r * p.x_stride + k];
                g += xv * pg.w[j * pg.w_stride + k];
                up += xv * pu.w[j * pu.w_stride + k];
                dg += std::fabs(xv * pg.w[j * pg.w_stride + k]);
                du += std::fabs(xv * pu.w[j * pu.w_stride + k]);
              }
              const double rel = 2 * u + u * u + 2.0 * static_cast<double>(c.in + 2) * std::ldexp(1.0, -24);
              // silu' is within [-0.1, 1.1], so an error e in g moves silu(g) by at most 1.1 e.
              const double eg = rel * dg, eu = rel * du;
              const double tol = 1.1 * eg * (std::fabs(up) + eu) + (std::fabs(g) + eg) * eu + 1e-6;
              const size_t i = static_cast<size_t>(r * h_stride + j);
              ASSERT_LE(std::fabs(double{got[i]} - want_ref[i]), tol) << where << " bf16 vs reference";
            }
          }
          std::fill(got.begin(), got.end(), kSentinel);
          gate_up_silu_int8(tp, p.x.data(), p.x_stride, rows, gui.view(), c.width, got.data(), h_stride, isa);
          expect_gate_up_exact(unfused(ops.linear_int8, gi, ui), got, rows, c.width, h_stride, where + " int8");
          std::fill(got.begin(), got.end(), kSentinel);
          gate_up_silu_int4(tp, p.x.data(), p.x_stride, rows, gu4.view(), c.width, got.data(), h_stride, isa);
          expect_gate_up_exact(unfused(ops.linear_int4, g4, u4), got, rows, c.width, h_stride, where + " int4");
        }
      }
    }
  }
}

// The float32 kernel of the router keeps the reference's arithmetic exactly.
TEST(CpuKernelsConsistency, F32LinearIsBitIdenticalToReference) {
  std::mt19937 rng(4321);
  for (const Shape& s : kShapes) {
    for (int64_t rows : {1, 3, 17}) {
      const Problem p = make_problem(rng, rows, s);
      const std::vector<float> want = reference(p);
      std::vector<float> got(want.size(), kSentinel);
      linear_f32_exact(p.x.data(), p.x_stride, p.w.data(), p.w_stride, p.rows, p.in, p.out, got.data(), p.y_stride);
      for (size_t i = 0; i < want.size(); ++i)
        ASSERT_EQ(std::bit_cast<uint32_t>(got[i]), std::bit_cast<uint32_t>(want[i])) << describe("f32", Isa::kScalar, p);
    }
  }
}

TEST(CpuIsa, NamesRoundTripAndOverrideOnlyLowers) {
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512, Isa::kAvx512Bf16, Isa::kAmx}) {
    ASSERT_TRUE(parse_isa(isa_name(isa)).has_value());
    EXPECT_EQ(*parse_isa(isa_name(isa)), isa);
  }
  EXPECT_FALSE(parse_isa("native").has_value());
  EXPECT_EQ(apply_isa_override(Isa::kAvx512Bf16, nullptr), Isa::kAvx512Bf16);
  EXPECT_EQ(apply_isa_override(Isa::kAvx512Bf16, "avx2"), Isa::kAvx2);
  EXPECT_EQ(apply_isa_override(Isa::kAvx512Bf16, "scalar"), Isa::kScalar);
  EXPECT_EQ(apply_isa_override(Isa::kAvx2, "amx"), Isa::kAvx2);  // never above the CPU
  EXPECT_EQ(apply_isa_override(Isa::kAvx2, "bogus"), Isa::kAvx2);
}

TEST(CpuIsa, DetectionIsConsistent) {
  const IsaFeatures f = detect_features();
  // Each level needs the one below it.
  if (f.avx512) {
    EXPECT_TRUE(f.avx2);
  }
  if (f.avx512_bf16 || f.avx512_vnni || f.amx) {
    EXPECT_TRUE(f.avx512);
  }
  const Isa best = best_isa(f);
  EXPECT_LE(active_isa(), best);
  EXPECT_EQ(cpu_ops().isa, active_isa());
  EXPECT_NE(cpu_ops().linear_bf16, nullptr);
  EXPECT_NE(cpu_ops().linear_int8, nullptr);
  EXPECT_NE(cpu_ops().linear_int4, nullptr);
  // The build baseline is x86-64-v3, so a CPU running this test has AVX2.
  EXPECT_GE(best, Isa::kAvx2);
  std::printf("cpu features: avx2=%d avx512=%d bf16=%d vnni=%d amx=%d amx_permitted=%d -> %s (active %s)\n",
              f.avx2, f.avx512, f.avx512_bf16, f.avx512_vnni, f.amx, f.amx_permitted, isa_name(best),
              isa_name(active_isa()));
}

}  // namespace
}  // namespace k2::cpu
