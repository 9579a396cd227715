#include "workers/models/linear.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

namespace k2 {
namespace {

TensorF32 random_matrix(int64_t out, int64_t in, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f / std::sqrt(static_cast<float>(in)));
  TensorF32 t{{out, in}, std::vector<float>(static_cast<size_t>(out * in))};
  for (float& v : t.data) v = dist(rng);
  return t;
}

// Packed layouts against the float32 one, with the strides the model uses (a head's slice of
// a wider row in and out). Bounds: bf16 rounds weights and activations (2^-8 relative each),
// int8 quantises both (1/127 of the row maximum), over sums of `in` terms of size ~1/sqrt(in).
TEST(Linear, PackedLayoutsAgreeWithFloat32) {
  struct Shape { int64_t out, in, rows, x_stride, y_stride; };
  for (Shape s : {Shape{64, 32, 3, 192, 320}, Shape{17, 33, 5, 40, 20}, Shape{1024, 256, 1, 256, 1024},
                  Shape{32, 64, 7, 320, 128}}) {
    TensorF32 w = random_matrix(s.out, s.in, 1);
    std::vector<float> x(static_cast<size_t>(s.rows * s.x_stride));
    std::mt19937 rng(2);
    std::normal_distribution<float> dist(0.0f, 1.0f);
    for (float& v : x) v = dist(rng);
    Linear exact = Linear::from(w, WeightLayout::kF32);
    std::vector<float> want(static_cast<size_t>(s.rows * s.y_stride), 0.0f);
    exact.forward(x.data(), s.x_stride, s.rows, want.data(), s.y_stride);
    for (auto [layout, tol] : {std::pair{WeightLayout::kBf16, 0.03}, std::pair{WeightLayout::kInt8, 0.06}}) {
      Linear fast = Linear::from(w, layout);
      EXPECT_EQ(fast.out(), s.out);
      EXPECT_EQ(fast.in(), s.in);
      std::vector<float> got(want.size(), 0.0f);
      fast.forward(x.data(), s.x_stride, s.rows, got.data(), s.y_stride);
      double worst = 0.0;
      for (int64_t r = 0; r < s.rows; ++r)
        for (int64_t o = 0; o < s.out; ++o) worst = std::max(worst, std::fabs(double(got[r * s.y_stride + o]) - want[r * s.y_stride + o]));
      EXPECT_LT(worst, tol) << weight_layout_name(layout) << " out " << s.out << " in " << s.in;
    }
  }
}

// INT4 from a pack-quantized tensor keeps its values: q * scale exactly, so the product
// differs from float32 only by the int8 rounding of the activations.
TEST(Linear, Int4FromPackedKeepsTheStoredValues) {
  const int64_t out = 20, in = 64, group = 32;
  std::vector<int32_t> packed(static_cast<size_t>(out * in / 8));
  std::vector<float> scales(static_cast<size_t>(out * in / group));
  TensorF32 w{{out, in}, std::vector<float>(static_cast<size_t>(out * in))};
  std::mt19937 rng(5);
  for (int64_t o = 0; o < out; ++o) {
    for (int64_t g = 0; g < in / group; ++g) scales[o * (in / group) + g] = 0.01f * static_cast<float>(1 + rng() % 8);
    for (int64_t k = 0; k < in; ++k) {
      const int q = static_cast<int>(rng() % 16) - 8;
      packed[(o * in + k) / 8] |= static_cast<int32_t>(static_cast<uint32_t>(q + 8) << (4 * (k % 8)));
      w.data[o * in + k] = static_cast<float>(q) * scales[o * (in / group) + k / group];
    }
  }
  auto int4 = Linear::int4_from_packed(packed.data(), scales.data(), out, in, group);
  ASSERT_TRUE(int4.ok());
  EXPECT_EQ(int4->layout(), WeightLayout::kInt4);
  Linear exact = Linear::from(w, WeightLayout::kF32);
  std::vector<float> x(static_cast<size_t>(2 * in));
  for (float& v : x) v = std::normal_distribution<float>(0.0f, 1.0f)(rng);
  std::vector<float> want(static_cast<size_t>(2 * out)), got(want.size());
  exact.forward(x.data(), 2, want.data());
  int4->forward(x.data(), 2, got.data());
  for (int64_t r = 0; r < 2; ++r) {
    float amax = 0.0f;
    for (int64_t k = 0; k < in; ++k) amax = std::max(amax, std::fabs(x[r * in + k]));
    for (int64_t o = 0; o < out; ++o) {
      double bound = 1e-4;  // activations round to int8 steps of amax / 127: half a step per term
      for (int64_t k = 0; k < in; ++k) bound += std::fabs(w.data[o * in + k]) * amax / 127.0 / 2.0;
      EXPECT_NEAR(got[r * out + o], want[r * out + o], bound) << r << "," << o;
    }
  }
  EXPECT_FALSE(Linear::int4_from_packed(packed.data(), scales.data(), out, 60, 30).ok());
  EXPECT_FALSE(Linear::int4_from(TensorF32{{2, 48}, std::vector<float>(96)}, 32).ok());
}

TEST(Linear, RowSlicesAndTransposes) {
  TensorF32 w = random_matrix(6, 4, 3);
  Linear rows = Linear::from_rows(w, 2, 3, WeightLayout::kF32);  // rows 2..4: [3, 4]
  Linear cols = Linear::from_rows_transposed(w, 2, 3, WeightLayout::kF32);  // [4, 3]
  const float x4[4] = {1, 2, 3, 4}, x3[3] = {1, -1, 2};
  float y3[3], y4[4];
  rows.forward(x4, 1, y3);
  cols.forward(x3, 1, y4);
  for (int o = 0; o < 3; ++o) {
    float want = 0;
    for (int k = 0; k < 4; ++k) want += w.data[(2 + o) * 4 + k] * x4[k];
    EXPECT_FLOAT_EQ(y3[o], want);
  }
  for (int k = 0; k < 4; ++k) {
    float want = 0;
    for (int o = 0; o < 3; ++o) want += w.data[(2 + o) * 4 + k] * x3[o];
    EXPECT_FLOAT_EQ(y4[k], want);
  }
}

TEST(Linear, LayoutsFromVllmFlags) {
  EXPECT_EQ(weight_layouts_for("float32", "")->dense, WeightLayout::kF32);
  EXPECT_TRUE(weight_layouts_for("float32", "")->exact());
  EXPECT_EQ(weight_layouts_for("auto", "")->experts, WeightLayout::kBf16);
  EXPECT_EQ(weight_layouts_for("bfloat16", "int8")->experts, WeightLayout::kInt8);
  EXPECT_EQ(weight_layouts_for("float32", "int8")->dense, WeightLayout::kF32);
  EXPECT_FALSE(weight_layouts_for("float16", "").ok());
  EXPECT_FALSE(weight_layouts_for("auto", "awq").ok());
}

}  // namespace
}  // namespace k2
