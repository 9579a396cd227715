#include "kernels/ref/rope.h"

#include <gtest/gtest.h>

#include <cmath>
#include <numbers>

namespace k2::ref {
namespace {

YarnParams tiny_yarn() {
  YarnParams p;
  p.rope_dim = 16;
  p.theta = 50000.0;
  p.factor = 32.0;
  p.original_max_pos = 64;
  p.beta_fast = 1.0;
  p.beta_slow = 1.0;
  return p;
}

TEST(Yarn, PlainRopeWithoutScaling) {
  YarnParams p = tiny_yarn();
  p.factor = 1.0;
  float f[8];
  yarn_inv_freq(p, f);
  for (int i = 0; i < 8; ++i) EXPECT_FLOAT_EQ(f[i], static_cast<float>(std::pow(50000.0, -2.0 * i / 16)));
}

TEST(Yarn, HardSwitchBounds) {
  // corr(1) = 16 ln(64 / 2π) / (2 ln 50000) = 1.716: low = floor = 1, high = ceil = 2.
  const YarnParams p = tiny_yarn();
  double low, high;
  yarn_bounds(p, &low, &high);
  EXPECT_EQ(low, 1.0);
  EXPECT_EQ(high, 2.0);
  float f[8];
  yarn_inv_freq(p, f);
  EXPECT_FLOAT_EQ(f[0], 1.0f);
  EXPECT_FLOAT_EQ(f[1], static_cast<float>(std::pow(50000.0, -0.125)));  // ramp 0: extrapolated
  EXPECT_FLOAT_EQ(f[2], static_cast<float>(std::pow(50000.0, -0.25) / 32.0));  // ramp 1: interpolated
  EXPECT_FLOAT_EQ(f[7], static_cast<float>(std::pow(50000.0, -0.875) / 32.0));
}

TEST(Yarn, LinearBlend) {
  YarnParams p = tiny_yarn();
  p.beta_fast = 32.0;  // corr(32) < 0 -> low = 0, high = 2
  double low, high;
  yarn_bounds(p, &low, &high);
  EXPECT_EQ(low, 0.0);
  EXPECT_EQ(high, 2.0);
  float f[8];
  yarn_inv_freq(p, f);
  const double extra = std::pow(50000.0, -0.125);
  EXPECT_FLOAT_EQ(f[1], static_cast<float>(0.5 * extra / 32.0 + 0.5 * extra));
}

TEST(Yarn, EqualBoundsGetNudged) {
  YarnParams p = tiny_yarn();
  p.beta_fast = 32.0;
  p.beta_slow = 20.0;  // both corrections <= 0: low = high = 0
  double low, high;
  yarn_bounds(p, &low, &high);
  EXPECT_EQ(low, 0.0);
  EXPECT_DOUBLE_EQ(high, 0.001);
}

TEST(Yarn, SoftmaxScale) {
  // 48^-0.5 × (0.1 ln 32 + 1)^2
  EXPECT_NEAR(yarn_softmax_scale(48, 32.0, 1.0), 0.2617216, 1e-7);
  EXPECT_NEAR(yarn_softmax_scale(192, 1.0, 1.0), 1.0 / std::sqrt(192.0), 1e-12);
  EXPECT_DOUBLE_EQ(yarn_mscale(64.0, 0.0), 1.0);
}

TEST(Rope, RotatesAdjacentPairsOnlyInTheRopeSlice) {
  // Two rows (positions 0 and 1), two heads of width 3 (rope_dim 2, one untouched value).
  float x[] = {1, 0, 7, 0, 1, 7, 1, 0, 7, 0, 1, 7};
  const int64_t pos[] = {0, 1};
  const float inv_freq[] = {static_cast<float>(std::numbers::pi / 2)};
  rope_interleaved(x, 2, 6, 2, 3, 2, pos, inv_freq);
  EXPECT_FLOAT_EQ(x[0], 1.0f);  // position 0: identity
  EXPECT_FLOAT_EQ(x[4], 1.0f);
  EXPECT_NEAR(x[6], 0.0f, 1e-6);  // (1, 0) by 90 degrees -> (0, 1)
  EXPECT_NEAR(x[7], 1.0f, 1e-6);
  EXPECT_NEAR(x[9], -1.0f, 1e-6);  // (0, 1) -> (-1, 0)
  EXPECT_NEAR(x[10], 0.0f, 1e-6);
  EXPECT_FLOAT_EQ(x[8], 7.0f);
  EXPECT_FLOAT_EQ(x[11], 7.0f);
}

}  // namespace
}  // namespace k2::ref
