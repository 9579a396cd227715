#include "kernels/ref/dense.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

namespace k2::ref {
namespace {

TEST(RmsNorm, HandComputed) {
  const float x[] = {3.0f, 4.0f, 1.0f, 1.0f};
  const float w[] = {1.0f, 2.0f};
  float y[4];
  rms_norm(x, 2, w, 2, 2, 0.0f, y, 2);
  // mean(9, 16) = 12.5
  EXPECT_NEAR(y[0], 3.0f / std::sqrt(12.5f), 1e-6);
  EXPECT_NEAR(y[1], 2.0f * 4.0f / std::sqrt(12.5f), 1e-6);
  EXPECT_NEAR(y[2], 1.0f, 1e-6);
  EXPECT_NEAR(y[3], 2.0f, 1e-6);
}

TEST(RmsNorm, EpsMattersAndInPlaceWorks) {
  float x[] = {1.0f, 1.0f};
  const float w[] = {1.0f, 1.0f};
  rms_norm(x, 2, w, 1, 2, 1.0f, x, 2);  // 1 / sqrt(1 + 1)
  EXPECT_NEAR(x[0], 1.0f / std::sqrt(2.0f), 1e-6);
  EXPECT_NEAR(x[1], 1.0f / std::sqrt(2.0f), 1e-6);
}

TEST(Linear, HandComputedWithStrides) {
  // x rows (1,2,3) and (0,1,0) inside rows of stride 4; W = [[1,0,1],[2,1,0]] stride 3.
  const float x[] = {1, 2, 3, 99, 0, 1, 0, 99};
  const float w[] = {1, 0, 1, 2, 1, 0};
  float y[6] = {0, 0, -7, 0, 0, -7};
  linear(x, 4, w, 3, 2, 3, 2, y, 3);
  EXPECT_FLOAT_EQ(y[0], 4.0f);
  EXPECT_FLOAT_EQ(y[1], 4.0f);
  EXPECT_FLOAT_EQ(y[2], -7.0f);  // past `out`: untouched
  EXPECT_FLOAT_EQ(y[3], 0.0f);
  EXPECT_FLOAT_EQ(y[4], 1.0f);
}

TEST(Linear, LongRowsMatchDoubleSum) {
  const int64_t in = 37, out = 5, rows = 3;  // not a multiple of the 8 partial sums
  std::vector<float> x(rows * in), w(out * in), y(rows * out);
  for (int64_t i = 0; i < rows * in; ++i) x[i] = std::sin(0.37f * i);
  for (int64_t i = 0; i < out * in; ++i) w[i] = std::cos(0.11f * i);
  linear(x.data(), in, w.data(), in, rows, in, out, y.data(), out);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t o = 0; o < out; ++o) {
      double want = 0;
      for (int64_t k = 0; k < in; ++k) want += double(x[r * in + k]) * w[o * in + k];
      EXPECT_NEAR(y[r * out + o], want, 1e-5);
    }
  }
}

TEST(Matmul, HandComputed) {
  // x = [1, 2], W [2, 3] = [[1, 2, 3], [4, 5, 6]] -> [9, 12, 15]
  const float x[] = {1, 2};
  const float w[] = {1, 2, 3, 4, 5, 6};
  float y[3];
  matmul(x, 2, w, 3, 1, 2, 3, y, 3);
  EXPECT_FLOAT_EQ(y[0], 9.0f);
  EXPECT_FLOAT_EQ(y[1], 12.0f);
  EXPECT_FLOAT_EQ(y[2], 15.0f);
}

TEST(SiluMul, HandComputed) {
  const float gate[] = {0.0f, 1.0f, -2.0f};
  const float up[] = {5.0f, 2.0f, 1.0f};
  float out[3];
  silu_mul(gate, up, 3, out);
  EXPECT_FLOAT_EQ(out[0], 0.0f);
  EXPECT_NEAR(out[1], 2.0f / (1.0f + std::exp(-1.0f)), 1e-6);
  EXPECT_NEAR(out[2], -2.0f / (1.0f + std::exp(2.0f)), 1e-6);
}

TEST(Softmax, HandComputedAndStable) {
  float x[] = {0.0f, std::log(2.0f), std::log(3.0f)};
  softmax(x, 3);
  EXPECT_NEAR(x[0], 1.0f / 6, 1e-6);
  EXPECT_NEAR(x[1], 2.0f / 6, 1e-6);
  EXPECT_NEAR(x[2], 3.0f / 6, 1e-6);
  float big[] = {1000.0f, 1000.0f};
  softmax(big, 2);
  EXPECT_FLOAT_EQ(big[0], 0.5f);
  EXPECT_FLOAT_EQ(big[1], 0.5f);
}

TEST(ArgmaxTopK, TiesGoToLowerIndex) {
  const float x[] = {1.0f, 3.0f, 2.0f, 3.0f, -1.0f};
  EXPECT_EQ(argmax(x, 5), 1);
  int32_t idx[3];
  float val[3];
  top_k(x, 5, 3, idx, val);
  EXPECT_EQ(idx[0], 1);
  EXPECT_EQ(idx[1], 3);
  EXPECT_EQ(idx[2], 2);
  EXPECT_FLOAT_EQ(val[2], 2.0f);
}

TEST(KernelCheckDeathTest, BrokenInvariantAborts) {
  const float x[] = {1.0f};
  int32_t idx[2];
  EXPECT_DEATH(top_k(x, 1, 2, idx, nullptr), "top_k");
}

}  // namespace
}  // namespace k2::ref
