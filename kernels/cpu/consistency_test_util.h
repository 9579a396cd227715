// Fixtures shared by the CPU kernel consistency test (consistency_test.cpp and its
// per-format parts, one test binary): random problems with padded strides, the float32
// reference on them, and the checks every kernel must pass (padding untouched, tolerance of
// fp32 summation order, bit-exact fused gate+up). Header-only test helpers; stateless.
#pragma once

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu/isa.h"
#include "kernels/ref/dense.h"

namespace k2::cpu::consistency {

inline constexpr float kSentinel = -12345.0f;

struct Shape {
  int64_t out, in;
};

// Shapes chosen so neither size is a multiple of 16/32/64 unless on purpose (edge blocks).
inline const Shape kShapes[] = {{1, 1},    {15, 3},   {16, 32},  {17, 33},  {33, 63},
                         {100, 130}, {64, 256}, {257, 1001}, {48, 2050}};

inline std::vector<Isa> levels_to_test() { return supported_isas(); }

struct Problem {
  int64_t rows, out, in, x_stride, w_stride, y_stride;
  std::vector<float> x, w;
};

inline Problem make_problem(std::mt19937& rng, int64_t rows, Shape s) {
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

inline std::vector<float> reference(const Problem& p) {
  std::vector<float> y(static_cast<size_t>(p.rows * p.y_stride), kSentinel);
  ref::linear(p.x.data(), p.x_stride, p.w.data(), p.w_stride, p.rows, p.in, p.out, y.data(), p.y_stride);
  return y;
}

inline double abs_dot(const Problem& p, int64_t r, int64_t o) {
  double s = 0.0;
  for (int64_t k = 0; k < p.in; ++k) s += std::fabs(double{p.x[r * p.x_stride + k]} * p.w[o * p.w_stride + k]);
  return s;
}

// Columns past `out` in each y row must keep the sentinel.
inline void expect_padding_untouched(const Problem& p, const std::vector<float>& y, const std::string& what) {
  for (int64_t r = 0; r < p.rows; ++r) {
    for (int64_t o = p.out; o < p.y_stride; ++o) ASSERT_EQ(y[r * p.y_stride + o], kSentinel) << what;
  }
}

inline std::string describe(const char* kernel, Isa isa, const Problem& p) {
  return std::string(kernel) + " isa=" + isa_name(isa) + " M=" + std::to_string(p.rows) +
         " N=" + std::to_string(p.out) + " K=" + std::to_string(p.in);
}

// The float32-activation kernels (the fast path's: bf16 or a checkpoint's int4 weights,
// activations unrounded) against the reference on the weights they hold (bf16-rounded or
// dequantised, both exact in float32): only fp32 summation order may differ, on each side
// at most ~(K + 2) * 2^-24 of sum |x * w|. Rows up to 17 and 40 reach the panel path.
inline double f32act_tol(const Problem& p, const std::vector<float>& wd, int64_t r, int64_t o) {
  double mag = 0.0;
  for (int64_t k = 0; k < p.in; ++k) mag += std::fabs(double{p.x[r * p.x_stride + k]} * wd[o * p.in + k]);
  return 2.0 * static_cast<double>(p.in + 2) * std::ldexp(1.0, -24) * mag + 1e-30;
}

inline void expect_f32act_close(const Problem& p, const std::vector<float>& wd, const std::vector<float>& got,
                         const std::string& what) {
  std::vector<float> want(got.size(), kSentinel);
  ref::linear(p.x.data(), p.x_stride, wd.data(), p.in, p.rows, p.in, p.out, want.data(), p.y_stride);
  expect_padding_untouched(p, got, what);
  for (int64_t r = 0; r < p.rows; ++r) {
    for (int64_t o = 0; o < p.out; ++o) {
      const size_t i = static_cast<size_t>(r * p.y_stride + o);
      ASSERT_LE(std::fabs(double{got[i]} - want[i]), f32act_tol(p, wd, r, o)) << what << " r=" << r << " o=" << o;
    }
  }
}

inline void expect_gate_up_exact(const std::vector<float>& want, const std::vector<float>& got, int64_t rows, int64_t width,
                          int64_t h_stride, const std::string& what) {
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < h_stride; ++j) {
      const size_t i = static_cast<size_t>(r * h_stride + j);
      if (j >= width) {
        ASSERT_EQ(got[i], kSentinel) << what << " wrote padding";
      } else {
        ASSERT_EQ(std::bit_cast<uint32_t>(got[i]), std::bit_cast<uint32_t>(want[i])) << what << " r=" << r << " j=" << j;
      }
    }
  }
}

}  // namespace k2::cpu::consistency
