// Every CPU kernel this machine can run, at its own ISA level and each forced lower level,
// against the float32 reference (kernels/ref) on random shapes with odd sizes. Tolerances
// come from the quantisation: bf16 rounds each operand to 8 significant bits (relative
// error <= 2^-8), int8 to half a quantisation step (scale / 2); fp32 accumulation adds
// at most ~K * 2^-24 of sum |x * w| on each side.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu/isa.h"
#include "kernels/cpu/ops.h"
#include "kernels/cpu/packed.h"
#include "kernels/ref/dense.h"

namespace k2::cpu {
namespace {

constexpr float kSentinel = -12345.0f;

struct Shape {
  int64_t out, in;
};

// Shapes chosen so neither size is a multiple of 16/32/64 unless on purpose (edge blocks).
const Shape kShapes[] = {{1, 1},    {15, 3},   {16, 32},  {17, 33},  {33, 63},
                         {100, 130}, {64, 256}, {257, 1001}, {48, 2050}};

std::vector<Isa> levels_to_test() {
  std::vector<Isa> out;
  const Isa best = best_isa(detect_features());
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512, Isa::kAvx512Bf16, Isa::kAmx}) {
    if (isa <= best) out.push_back(isa);
  }
  return out;
}

struct Problem {
  int64_t rows, out, in, x_stride, w_stride, y_stride;
  std::vector<float> x, w;
};

Problem make_problem(std::mt19937& rng, int64_t rows, Shape s) {
  Problem p{rows, s.out, s.in, s.in + 3, s.in + 1, s.out + 2, {}, {}};
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<float> row_scale(0.01f, 4.0f);
  p.x.resize(static_cast<size_t>(rows * p.x_stride));
  p.w.resize(static_cast<size_t>(s.out * p.w_stride));
  for (auto& v : p.x) v = normal(rng);
  for (int64_t o = 0; o < s.out; ++o) {
    const float scale = row_scale(rng);  // outputs of very different magnitude
    for (int64_t k = 0; k < p.w_stride; ++k) p.w[o * p.w_stride + k] = scale * normal(rng);
  }
  if (rows > 2) std::fill(p.x.begin() + p.x_stride, p.x.begin() + 2 * p.x_stride, 0.0f);  // a zero row
  return p;
}

std::vector<float> reference(const Problem& p) {
  std::vector<float> y(static_cast<size_t>(p.rows * p.y_stride), kSentinel);
  ref::linear(p.x.data(), p.x_stride, p.w.data(), p.w_stride, p.rows, p.in, p.out, y.data(), p.y_stride);
  return y;
}

double abs_dot(const Problem& p, int64_t r, int64_t o) {
  double s = 0.0;
  for (int64_t k = 0; k < p.in; ++k) s += std::fabs(double{p.x[r * p.x_stride + k]} * p.w[o * p.w_stride + k]);
  return s;
}

// Columns past `out` in each y row must keep the sentinel.
void expect_padding_untouched(const Problem& p, const std::vector<float>& y, const std::string& what) {
  for (int64_t r = 0; r < p.rows; ++r) {
    for (int64_t o = p.out; o < p.y_stride; ++o) ASSERT_EQ(y[r * p.y_stride + o], kSentinel) << what;
  }
}

std::string describe(const char* kernel, Isa isa, const Problem& p) {
  return std::string(kernel) + " isa=" + isa_name(isa) + " M=" + std::to_string(p.rows) +
         " N=" + std::to_string(p.out) + " K=" + std::to_string(p.in);
}

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
  // The build baseline is x86-64-v3, so a CPU running this test has AVX2.
  EXPECT_GE(best, Isa::kAvx2);
  std::printf("cpu features: avx2=%d avx512=%d bf16=%d vnni=%d amx=%d amx_permitted=%d -> %s (active %s)\n",
              f.avx2, f.avx512, f.avx512_bf16, f.avx512_vnni, f.amx, f.amx_permitted, isa_name(best),
              isa_name(active_isa()));
}

}  // namespace
}  // namespace k2::cpu
