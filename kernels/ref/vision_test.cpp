#include "kernels/ref/vision.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

namespace k2::ref {
namespace {

TEST(LayerNorm, NormalisesThenScalesAndShifts) {
  // mean 2.5, biased variance 1.25.
  const std::vector<float> x = {1, 2, 3, 4, 5, 5, 5, 5};
  const std::vector<float> w = {2, 2, 2, 2}, b = {1, 0, -1, 0.5f};
  std::vector<float> y(8);
  layer_norm(x.data(), 4, w.data(), b.data(), 2, 4, 0.0f, y.data(), 4);
  const float s = 1.0f / std::sqrt(1.25f);
  EXPECT_NEAR(y[0], -1.5f * s * 2 + 1, 1e-6);
  EXPECT_NEAR(y[1], -0.5f * s * 2, 1e-6);
  EXPECT_NEAR(y[2], 0.5f * s * 2 - 1, 1e-6);
  EXPECT_NEAR(y[3], 1.5f * s * 2 + 0.5f, 1e-6);
  // A constant row has zero variance: eps 0 would divide by zero, so the row is just b.
  layer_norm(x.data() + 4, 4, w.data(), b.data(), 1, 4, 1e-5f, y.data() + 4, 4);
  for (int i = 0; i < 4; ++i) EXPECT_FLOAT_EQ(y[4 + i], b[i]);
}

TEST(LayerNorm, EpsEntersTheVariance) {
  const std::vector<float> x = {-1, 1}, w = {1, 1}, b = {0, 0};
  std::vector<float> y(2);
  layer_norm(x.data(), 2, w.data(), b.data(), 1, 2, 3.0f, y.data(), 2);  // var 1, +3 → /2
  EXPECT_FLOAT_EQ(y[0], -0.5f);
  EXPECT_FLOAT_EQ(y[1], 0.5f);
}

TEST(Gelu, TanhAndErfForms) {
  const std::vector<float> x = {0.0f, 1.0f, -1.0f, 10.0f, -10.0f};
  std::vector<float> t(5), e(5);
  gelu_tanh(x.data(), 5, t.data());
  gelu_erf(x.data(), 5, e.data());
  EXPECT_EQ(t[0], 0.0f);
  EXPECT_EQ(e[0], 0.0f);
  EXPECT_NEAR(e[1], 0.8413447461f, 1e-7);   // Φ(1)
  EXPECT_NEAR(t[1], 0.8411919906f, 1e-7);   // 0.5(1 + tanh(√(2/π)·1.044715))
  EXPECT_NEAR(e[2], -0.1586552539f, 1e-7);  // x − gelu(−x) = x
  EXPECT_NEAR(t[2], -0.1588080094f, 1e-7);
  EXPECT_FLOAT_EQ(t[3], 10.0f);
  EXPECT_FLOAT_EQ(e[3], 10.0f);
  EXPECT_NEAR(t[4], 0.0f, 1e-6);
  EXPECT_NEAR(e[4], 0.0f, 1e-6);
}

TEST(Rope2d, InverseFrequencies) {
  std::vector<float> f(2);
  rope_2d_inv_freq(8, 10000.0f, f.data());
  EXPECT_FLOAT_EQ(f[0], 1.0f);
  EXPECT_FLOAT_EQ(f[1], 0.01f);  // 10000^(−4/8)
}

TEST(Rope2d, ColumnOnEvenPairsRowOnOddPairs) {
  // Two heads of width 8; every pair starts at (1, 0), so it ends at (cos θ, sin θ).
  std::vector<float> x(16);
  for (size_t i = 0; i < x.size(); i += 2) x[i] = 1.0f;
  const std::vector<float> f = {1.0f, 0.5f};
  const int64_t row = 2, col = 3;
  rope_2d(x.data(), 1, 16, 2, 8, 8, &row, &col, f.data());
  const float angles[4] = {3.0f, 2.0f, 1.5f, 1.0f};  // (col·f0, row·f0, col·f1, row·f1)
  for (int h = 0; h < 2; ++h) {
    for (int m = 0; m < 4; ++m) {
      EXPECT_NEAR(x[h * 8 + 2 * m], std::cos(angles[m]), 1e-6) << h << " " << m;
      EXPECT_NEAR(x[h * 8 + 2 * m + 1], std::sin(angles[m]), 1e-6) << h << " " << m;
    }
  }
}

TEST(Rope2d, RotationIsComplexMultiplication) {
  std::vector<float> x = {2.0f, 3.0f, 0.0f, 0.0f};
  const float f = 1.0f;
  const int64_t row = 0, col = 1;
  rope_2d(x.data(), 1, 4, 1, 4, 4, &row, &col, &f);
  const float c = std::cos(1.0f), s = std::sin(1.0f);
  EXPECT_NEAR(x[0], 2 * c - 3 * s, 1e-6);
  EXPECT_NEAR(x[1], 2 * s + 3 * c, 1e-6);
  EXPECT_EQ(x[2], 0.0f);  // row 0: no turn
}

TEST(AttentionFull, EqualScoresAverageTheValues) {
  // Three tokens, one head of width 2; all keys zero, so every query averages v.
  const std::vector<float> q = {1, 2, 3, 4, 5, 6}, k0 = {0, 0, 0, 0, 0, 0}, v = {3, 0, 6, 3, 0, 3};
  std::vector<float> out(6);
  attention_full(q.data(), 2, k0.data(), 2, v.data(), 2, 3, 1, 2, 1.0f, out.data(), 2);
  for (int i = 0; i < 3; ++i) {
    EXPECT_NEAR(out[i * 2], 3.0f, 1e-6);
    EXPECT_NEAR(out[i * 2 + 1], 2.0f, 1e-6);
  }
}

TEST(AttentionFull, TwoTokensByHand) {
  // Heads 0 and 1 of width 1; head 1 has scores large enough to pick one key.
  const std::vector<float> q = {1, 100, 0, -100};
  const std::vector<float> k = {0, 1, std::log(3.0f), -1};
  const std::vector<float> v = {10, 7, 20, 9};
  std::vector<float> out(4);
  attention_full(q.data(), 2, k.data(), 2, v.data(), 2, 2, 2, 1, 1.0f, out.data(), 2);
  // Query 0, head 0: scores (0, ln 3) → weights (1/4, 3/4).
  EXPECT_NEAR(out[0], 0.25f * 10 + 0.75f * 20, 1e-5);
  EXPECT_NEAR(out[1], 7.0f, 1e-5);  // scores (100, −100)
  EXPECT_NEAR(out[2], 15.0f, 1e-5);  // query 1, head 0: q = 0, uniform
  EXPECT_NEAR(out[3], 9.0f, 1e-5);   // scores (−100, 100)
}

TEST(AttentionFull, ScaleMultipliesTheScores) {
  const std::vector<float> q = {1, 1}, k = {0, std::log(3.0f)}, v = {0, 4};
  std::vector<float> out(2);
  attention_full(q.data(), 1, k.data(), 1, v.data(), 1, 2, 1, 1, 2.0f, out.data(), 1);
  EXPECT_NEAR(out[0], 4.0f * 9 / 10, 1e-5);  // scores (0, 2 ln 3) → weights (1/10, 9/10)
}

TEST(Bicubic, SameSizeIsTheIdentity) {
  std::vector<float> src(3 * 5 * 2);
  for (size_t i = 0; i < src.size(); ++i) src[i] = std::sin(static_cast<float>(i) * 0.7f);
  std::vector<float> dst(src.size());
  bicubic_interpolate(src.data(), 3, 5, 2, 3, 5, dst.data());
  for (size_t i = 0; i < src.size(); ++i) EXPECT_FLOAT_EQ(dst[i], src[i]);
}

TEST(Bicubic, UpscaleByHand) {
  // 2x2 → 4x4 of the separable grid a[y]·a[x], a = (0, 1), two channels (c1 = 2·c0).
  // Along one axis 2 → 4 gives u = (−27, 58, 198, 283) / 256 (A = −0.75, edge-clamped taps).
  const std::vector<float> src = {0, 0, 0, 0, 0, 0, 1, 2};
  std::vector<float> dst(32);
  bicubic_interpolate(src.data(), 2, 2, 2, 4, 4, dst.data());
  const float u[4] = {-27 / 256.0f, 58 / 256.0f, 198 / 256.0f, 283 / 256.0f};
  for (int y = 0; y < 4; ++y) {
    for (int x = 0; x < 4; ++x) {
      EXPECT_FLOAT_EQ(dst[(y * 4 + x) * 2], u[y] * u[x]) << y << " " << x;
      EXPECT_FLOAT_EQ(dst[(y * 4 + x) * 2 + 1], 2 * u[y] * u[x]) << y << " " << x;
    }
  }
}

TEST(Bicubic, DownscaleByHandWithoutAntialias) {
  // 1x4 → 1x2 of (0, 1, 2, 3): taps at src 0.5 and 2.5 with weights (−3, 19, 19, −3) / 32.
  const std::vector<float> src = {0, 1, 2, 3};
  std::vector<float> dst(2);
  bicubic_interpolate(src.data(), 1, 4, 1, 1, 2, dst.data());
  EXPECT_FLOAT_EQ(dst[0], 0.40625f);  // (19·1 − 3·2) / 32
  EXPECT_FLOAT_EQ(dst[1], 2.59375f);  // (−3·1 + 19·2 + 19·3 − 3·3) / 32
}

TEST(Bicubic, HeightAndWidthAreNotSwapped) {
  // A 1x2 row (0, 1) grown to 3x4: every output row is the 2 → 4 profile along x.
  const std::vector<float> src = {0, 1};
  std::vector<float> dst(12);
  bicubic_interpolate(src.data(), 1, 2, 1, 3, 4, dst.data());
  for (int y = 0; y < 3; ++y) {
    // Along y (1 → 3) the weights sum to 1 only up to float rounding.
    EXPECT_NEAR(dst[y * 4 + 0], -27 / 256.0f, 1e-6);
    EXPECT_NEAR(dst[y * 4 + 3], 283 / 256.0f, 1e-6);
  }
}

TEST(SincosEmbedding, HalvesAreSinThenCos) {
  std::vector<float> e(4);
  sincos_embedding(0.0f, 4, e.data());
  EXPECT_EQ(e, (std::vector<float>{0, 0, 1, 1}));
  sincos_embedding(2.0f, 4, e.data());  // ω = (1, 10000^(−1/2))
  EXPECT_NEAR(e[0], std::sin(2.0f), 1e-6);
  EXPECT_NEAR(e[1], std::sin(0.02f), 1e-6);
  EXPECT_NEAR(e[2], std::cos(2.0f), 1e-6);
  EXPECT_NEAR(e[3], std::cos(0.02f), 1e-6);
}

}  // namespace
}  // namespace k2::ref
