#include "workers/models/linear.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "kernels/cpu/packed.h"
#include "kernels/cpu/thread_pool.h"
#include "workers/loader/checkpoint.h"
#include "workers/loader/model_config.h"
#include "workers/models/weight_loader.h"

namespace k2 {
namespace {

TensorF32 random_matrix(int64_t out, int64_t in, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f / std::sqrt(static_cast<float>(in)));
  TensorF32 t{{out, in}, std::vector<float>(static_cast<size_t>(out * in))};
  for (float& v : t.data) v = dist(rng);
  return t;
}

TensorF32 rounded_to_bf16(TensorF32 t) {
  for (float& v : t.data) v = cpu::from_bf16(cpu::to_bf16(v));
  return t;
}

// Packed layouts against the float32 one, with the strides the model uses (a head's slice of
// a wider row in and out). Bounds: bf16 keeps float32 activations, so on weights bf16 holds
// exactly only the summation order differs (~in * 2^-24 of values ~1); int8 quantises
// weights and activations (1/127 of the row maximum), over sums of `in` terms of size ~1/sqrt(in).
TEST(Linear, PackedLayoutsAgreeWithFloat32) {
  struct Shape { int64_t out, in, rows, x_stride, y_stride; };
  for (Shape s : {Shape{64, 32, 3, 192, 320}, Shape{17, 33, 5, 40, 20}, Shape{1024, 256, 1, 256, 1024},
                  Shape{32, 64, 7, 320, 128}}) {
    TensorF32 w = rounded_to_bf16(random_matrix(s.out, s.in, 1));
    std::vector<float> x(static_cast<size_t>(s.rows * s.x_stride));
    std::mt19937 rng(2);
    std::normal_distribution<float> dist(0.0f, 1.0f);
    for (float& v : x) v = dist(rng);
    Linear exact = Linear::from(w, WeightLayout::kF32);
    std::vector<float> want(static_cast<size_t>(s.rows * s.y_stride), 0.0f);
    exact.forward(x.data(), s.x_stride, s.rows, want.data(), s.y_stride);
    for (auto [layout, tol] : {std::pair{WeightLayout::kBf16, 1e-5}, std::pair{WeightLayout::kInt8, 0.06}}) {
      Linear fast = Linear::from(w, layout);
      EXPECT_EQ(fast.layout(), layout);
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

// A bfloat16 request keeps a matrix bf16 cannot hold exactly (dequantised FP8/INT4 weights)
// in float32, so the fast path never changes a weight: on the calling thread it is the
// reference itself, over a pool the reference-exact kernel, both bit for bit. A gate/up pair
// of which only one was exact runs both in float32.
TEST(Linear, BfloatRequestKeepsInexactWeightsInFloat32) {
  const TensorF32 w = random_matrix(70, 48, 4);
  Linear exact = Linear::from(w, WeightLayout::kF32);
  Linear kept = Linear::from(w, WeightLayout::kBf16);
  EXPECT_EQ(kept.layout(), WeightLayout::kF32);
  EXPECT_EQ(Linear::from_rows(w, 3, 20, WeightLayout::kBf16).layout(), WeightLayout::kF32);
  EXPECT_EQ(Linear::from(rounded_to_bf16(w), WeightLayout::kBf16).layout(), WeightLayout::kBf16);
  std::vector<float> x(static_cast<size_t>(9 * 48));
  std::mt19937 rng(6);
  for (float& v : x) v = std::normal_distribution<float>(0.0f, 1.0f)(rng);
  std::vector<float> want(static_cast<size_t>(9 * 70)), got(want.size(), 0.0f);
  exact.forward(x.data(), 9, want.data());
  kept.forward(x.data(), 9, got.data());
  EXPECT_EQ(got, want);
  cpu::ThreadPoolOptions options;
  options.threads = 2;
  cpu::ThreadPool pool(options);
  {
    ParallelScope scope(&pool);
    std::fill(got.begin(), got.end(), 0.0f);
    kept.forward(x.data(), 9, got.data());
  }
  EXPECT_EQ(got, want);

  const TensorF32 gate = rounded_to_bf16(random_matrix(40, 48, 7)), up = random_matrix(40, 48, 8);
  auto mixed = GateUpLinear::from(Linear::from(gate, WeightLayout::kBf16), Linear::from(up, WeightLayout::kBf16));
  auto ref = GateUpLinear::from(Linear::from(gate, WeightLayout::kF32), Linear::from(up, WeightLayout::kF32));
  ASSERT_TRUE(mixed.ok());
  ASSERT_TRUE(ref.ok());
  std::vector<float> h_want(static_cast<size_t>(9 * 40)), h_got(h_want.size());
  ref->forward(x.data(), 9, h_want.data());
  mixed->forward(x.data(), 9, h_got.data());
  EXPECT_EQ(h_got, h_want);
}

// INT4 from a pack-quantized tensor keeps its values (q * scale exactly) and runs with
// float32 activations, so the product differs from float32 only in summation order.
TEST(Linear, Int4FromPackedKeepsTheStoredValues) {
  const int64_t out = 20, in = 64, group = 32;
  std::vector<int32_t> packed(static_cast<size_t>(out * in / 8));
  std::vector<float> scales(static_cast<size_t>(out * in / group));
  TensorF32 w{{out, in}, std::vector<float>(static_cast<size_t>(out * in))};
  std::mt19937 rng(5);
  for (int64_t o = 0; o < out; ++o) {
    for (int64_t g = 0; g < in / group; ++g) {  // bf16 values, as a checkpoint's scales are
      scales[o * (in / group) + g] = cpu::from_bf16(cpu::to_bf16(0.01f * static_cast<float>(1 + rng() % 8)));
    }
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
    for (int64_t o = 0; o < out; ++o) {
      double bound = 1e-30;  // fp32 summation, both sides: 2 (in + 2) 2^-24 of sum |x w|
      for (int64_t k = 0; k < in; ++k) bound += std::fabs(w.data[o * in + k] * x[r * in + k]) * 2 * (in + 2) * 0x1p-24;
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

// An FP8-block checkpoint under a bf16 request: its matrices stay FP8 (one byte per weight
// plus block scales, not float32) and compute what the float32 path computes from the same
// checkpoint up to summation order, alone and split over a pool; shards that do not start on
// a block boundary, and gate/up pairs of mixed layouts, fall back to float32.
TEST(Linear, Fp8CheckpointMatricesStayFp8AndMatchFloat32) {
  const std::string dir = std::string(K2_TEST_DATA_DIR) + "/models/tiny-fp8";
  const ModelConfig config = ModelConfig::from_dir(dir).value();
  const Checkpoint checkpoint = Checkpoint::open(dir, config).value();
  WeightLoader loader(checkpoint, nullptr);
  const int64_t width = config.intermediate_size, hidden = config.hidden_size;
  const std::string gate = "model.layers.0.mlp.gate_proj";
  Linear fp8 = loader.linear(gate, width, hidden, WeightLayout::kBf16).value();
  Linear exact = loader.linear(gate, width, hidden, WeightLayout::kF32).value();
  ASSERT_EQ(fp8.layout(), WeightLayout::kFp8);
  ASSERT_EQ(exact.layout(), WeightLayout::kF32);
  EXPECT_LT(fp8.bytes(), static_cast<size_t>(width * hidden) * 11 / 10);  // ~1 byte per weight
  const int64_t rows = 5;
  std::vector<float> x(static_cast<size_t>(rows * hidden));
  std::mt19937 rng(3);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  for (float& v : x) v = dist(rng);
  std::vector<float> want(static_cast<size_t>(rows * width)), got(want.size()), threaded(want.size());
  exact.forward(x.data(), rows, want.data());
  fp8.forward(x.data(), rows, got.data());
  cpu::ThreadPoolOptions options;
  options.threads = 2;
  cpu::ThreadPool pool(options);
  {
    ParallelScope scope(&pool);
    fp8.forward(x.data(), rows, threaded.data());
  }
  EXPECT_EQ(got, threaded);
  for (size_t i = 0; i < want.size(); ++i) {
    ASSERT_NEAR(got[i], want[i], 1e-5 * (1.0 + std::fabs(want[i]))) << i;
    ASSERT_NE(got[i], 0.0f);
  }
  EXPECT_EQ(loader.linear_rows(gate, width, hidden, 128, 128, WeightLayout::kBf16)->layout(), WeightLayout::kFp8);
  EXPECT_EQ(loader.linear_rows(gate, width, hidden, 16, 128, WeightLayout::kBf16)->layout(), WeightLayout::kF32);
  EXPECT_EQ(loader.linear(gate, width, hidden, WeightLayout::kInt8)->layout(), WeightLayout::kInt8);

  Result<GateUpLinear> mixed = GateUpLinear::from(loader.linear(gate, width, hidden, WeightLayout::kBf16).value(),
                                                  loader.linear(gate, width, hidden, WeightLayout::kF32).value());
  ASSERT_TRUE(mixed.ok()) << mixed.status().to_string();
  Result<GateUpLinear> packed = GateUpLinear::from(loader.linear(gate, width, hidden, WeightLayout::kBf16).value(),
                                                   loader.linear(gate, width, hidden, WeightLayout::kBf16).value());
  ASSERT_TRUE(packed.ok());
  std::vector<float> h_mixed(want.size()), h_packed(want.size());
  mixed->forward(x.data(), rows, h_mixed.data());
  packed->forward(x.data(), rows, h_packed.data());
  for (size_t i = 0; i < want.size(); ++i) ASSERT_NEAR(h_packed[i], h_mixed[i], 1e-5 * (1.0 + std::fabs(h_mixed[i])));
}

}  // namespace
}  // namespace k2
