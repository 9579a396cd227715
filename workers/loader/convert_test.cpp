#include "workers/loader/convert.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "workers/loader/checkpoint.h"
#include "workers/loader/test_util.h"

namespace k2 {
namespace {

using testing::RawTensor;
using testing::TempDir;
using testing::to_bytes;

TEST(Convert, Bf16) {
  EXPECT_EQ(bf16_to_f32(0x3f80), 1.0f);
  EXPECT_EQ(bf16_to_f32(0xc000), -2.0f);
  EXPECT_EQ(bf16_to_f32(0x3fc0), 1.5f);
  EXPECT_TRUE(std::isinf(bf16_to_f32(0x7f80)));
  EXPECT_TRUE(std::isnan(bf16_to_f32(0x7fc0)));
}

TEST(Convert, F16) {
  EXPECT_EQ(f16_to_f32(0x3c00), 1.0f);
  EXPECT_EQ(f16_to_f32(0xc000), -2.0f);
  EXPECT_EQ(f16_to_f32(0x7bff), 65504.0f);
  EXPECT_EQ(f16_to_f32(0x0001), std::ldexp(1.0f, -24));   // smallest subnormal
  EXPECT_EQ(f16_to_f32(0x03ff), std::ldexp(1023.0f, -24));  // largest subnormal
  EXPECT_EQ(f16_to_f32(0x0400), std::ldexp(1.0f, -14));   // smallest normal
  EXPECT_TRUE(std::signbit(f16_to_f32(0x8000)));
  EXPECT_EQ(f16_to_f32(0xfc00), -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(f16_to_f32(0x7e00)));
}

TEST(Convert, E4m3fn) {
  EXPECT_EQ(e4m3_to_f32(0x38), 1.0f);             // exponent 7 = bias
  EXPECT_EQ(e4m3_to_f32(0x40), 2.0f);
  EXPECT_EQ(e4m3_to_f32(0x3c), 1.5f);
  EXPECT_EQ(e4m3_to_f32(0xb8), -1.0f);
  EXPECT_EQ(e4m3_to_f32(0x7e), 448.0f);           // max finite
  EXPECT_EQ(e4m3_to_f32(0xfe), -448.0f);
  EXPECT_EQ(e4m3_to_f32(0x08), std::ldexp(1.0f, -6));  // smallest normal
  EXPECT_EQ(e4m3_to_f32(0x01), std::ldexp(1.0f, -9));  // smallest subnormal
  EXPECT_EQ(e4m3_to_f32(0x07), std::ldexp(7.0f, -9));
  EXPECT_EQ(e4m3_to_f32(0x00), 0.0f);
  EXPECT_TRUE(std::signbit(e4m3_to_f32(0x80)));
  int nans = 0;
  for (int b = 0; b < 256; ++b) {
    const float v = e4m3_to_f32(static_cast<uint8_t>(b));
    EXPECT_FALSE(std::isinf(v)) << b;
    if (std::isnan(v)) ++nans;
    else EXPECT_LE(std::fabs(v), 448.0f);
  }
  EXPECT_EQ(nans, 2);  // 0x7f and 0xff only
  EXPECT_TRUE(std::isnan(e4m3_to_f32(0x7f)));
  EXPECT_TRUE(std::isnan(e4m3_to_f32(0xff)));
}

TensorView make_view(const std::string& name, DType dtype, std::vector<int64_t> shape,
                     const std::vector<uint8_t>& bytes) {
  TensorView v;
  v.name = name;
  v.dtype = dtype;
  v.shape = std::move(shape);
  v.data = bytes.data();
  v.bytes = bytes.size();
  return v;
}

TEST(Convert, WidensAndRejects) {
  std::vector<uint16_t> bf = {0x3f80, 0xc000, 0x0000};
  auto bytes = to_bytes(bf);
  auto t = to_f32(make_view("w", DType::kBF16, {3}, bytes));
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->data, (std::vector<float>{1.0f, -2.0f, 0.0f}));

  auto ints = to_bytes(std::vector<int32_t>{3, -4});
  auto bad = to_f32(make_view("idx", DType::kI32, {2}, ints));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("idx"), std::string::npos);
  auto widened = to_i64(make_view("idx", DType::kI32, {2}, ints));
  ASSERT_TRUE(widened.ok());
  EXPECT_EQ(*widened, (std::vector<int64_t>{3, -4}));
  EXPECT_FALSE(to_f32(make_view("short", DType::kBF16, {4}, bytes)).ok());  // 6 bytes for 4 elements
}

// The value of each FP8 code used below, written out rather than computed by the code under test.
struct Code8 {
  uint8_t bits;
  float value;
};
constexpr Code8 kCodes[] = {{0x38, 1.0f}, {0x40, 2.0f}, {0xb8, -1.0f}, {0x30, 0.5f}, {0x3c, 1.5f},
                            {0x7e, 448.0f}, {0x01, 0.001953125f}, {0x00, 0.0f}, {0xc4, -3.0f}};

// Writes one FP8 Linear (rows x cols, blocks of bo x bi) into <dir>/model.safetensors and
// checks linear_f32 against the element-wise definition.
void check_fp8(int64_t rows, int64_t cols, int64_t bo, int64_t bi) {
  const int64_t srows = (rows + bo - 1) / bo, scols = (cols + bi - 1) / bi;
  std::vector<uint8_t> q(rows * cols);
  std::vector<float> expect_value(rows * cols);
  for (int64_t i = 0; i < rows * cols; ++i) {
    const Code8& c = kCodes[(i * 7 + i / cols) % std::size(kCodes)];
    q[i] = c.bits;
    expect_value[i] = c.value;
  }
  std::vector<float> scale(srows * scols);
  for (int64_t i = 0; i < srows * scols; ++i) scale[i] = 0.25f * static_cast<float>(i + 1);
  TempDir dir;
  testing::write_file(dir / "model.safetensors",
                      testing::file_bytes(std::vector<RawTensor>{
                          {"lin.weight", "F8_E4M3", {rows, cols}, q},
                          {"lin.weight_scale_inv", "F32", {srows, scols}, to_bytes(scale)}}));
  ModelConfig config;
  config.fp8_block_out = bo;
  config.fp8_block_in = bi;
  auto ckpt = Checkpoint::open(dir.path(), config);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status().to_string();
  auto w = ckpt->linear_f32("lin");
  ASSERT_TRUE(w.ok()) << w.status().to_string();
  ASSERT_EQ(w->shape, (std::vector<int64_t>{rows, cols}));
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t j = 0; j < cols; ++j) {
      const float want = expect_value[i * cols + j] * scale[(i / bo) * scols + j / bi];
      ASSERT_EQ(w->data[i * cols + j], want) << i << "," << j;
    }
  }
}

TEST(Convert, Fp8BlockWithPartialEdgeBlocks) {
  check_fp8(5, 7, 2, 3);       // scale [3, 3], last row and column blocks partial
  check_fp8(130, 129, 128, 128);  // the real block size, edges of 2 rows and 1 column
  check_fp8(3, 4, 128, 128);   // smaller than one block
}

TEST(Convert, Fp8ErrorsNameFileAndTensor) {
  TempDir dir;
  std::vector<uint8_t> q(6, 0x38);
  testing::write_file(dir / "model.safetensors",
                      testing::file_bytes(std::vector<RawTensor>{
                          {"bad.weight", "F8_E4M3", {2, 3}, q},
                          {"bad.weight_scale_inv", "F32", {2, 1}, to_bytes(std::vector<float>{1, 1})},
                          {"noscale.weight", "F8_E4M3", {2, 3}, q}}));
  auto ckpt = Checkpoint::open(dir.path());
  ASSERT_TRUE(ckpt.ok());
  auto status = ckpt->linear_f32("bad").status();  // scale must be [1, 1] for 128-blocks
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find("model.safetensors"), std::string::npos) << status.message();
  EXPECT_NE(status.message().find("bad.weight_scale_inv"), std::string::npos) << status.message();
  status = ckpt->linear_f32("noscale").status();
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find("noscale.weight_scale_inv"), std::string::npos) << status.message();
  // tensor_f32 widens the raw codes without a scale.
  auto raw = ckpt->tensor_f32("noscale.weight");
  ASSERT_TRUE(raw.ok());
  EXPECT_EQ(raw->data[0], 1.0f);
}

TEST(Convert, Int4NibbleOrderAndGroups) {
  // Row 0: word 0 holds nibbles 0..7 (q = -8..-1), word 1 nibbles 8..15 (q = 0..7);
  // row 1: all nibbles 0xf (q = 7). 40 columns: 5 words, scale groups of 32 -> 2 groups.
  const int64_t rows = 2, cols = 40, group = 32;
  std::vector<uint32_t> packed = {0x76543210u, 0xfedcba98u, 0x76543210u, 0xfedcba98u, 0x00000088u,
                                  0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu};
  std::vector<uint16_t> scale = {0x3f80 /*1*/, 0x4000 /*2*/, 0x3f00 /*0.5*/, 0xbe80 /*-0.25*/};
  TempDir dir;
  testing::write_file(dir / "model.safetensors",
                      testing::file_bytes(std::vector<RawTensor>{
                          {"e.weight_packed", "I32", {rows, 5}, to_bytes(packed)},
                          {"e.weight_scale", "BF16", {rows, 2}, to_bytes(scale)},
                          {"e.weight_shape", "I64", {2}, to_bytes(std::vector<int64_t>{rows, cols})}}));
  ModelConfig config;
  config.int4_group_size = group;
  auto ckpt = Checkpoint::open(dir.path(), config);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status().to_string();
  auto w = ckpt->linear_f32("e");
  ASSERT_TRUE(w.ok()) << w.status().to_string();
  ASSERT_EQ(w->shape, (std::vector<int64_t>{rows, cols}));
  for (int64_t i = 0; i < 32; ++i) EXPECT_EQ(w->data[i], static_cast<float>((i % 16) - 8)) << i;
  EXPECT_EQ(w->data[32], 0.0f * 2.0f);  // nibble 8 -> q 0, second group scale 2
  EXPECT_EQ(w->data[33], 0.0f);
  EXPECT_EQ(w->data[34], -16.0f);       // nibble 0 -> q -8, x 2
  EXPECT_EQ(w->data[39], -16.0f);
  for (int64_t i = 0; i < 32; ++i) EXPECT_EQ(w->data[cols + i], 3.5f);
  for (int64_t i = 32; i < 40; ++i) EXPECT_EQ(w->data[cols + i], -1.75f);
}

TEST(Convert, Int4ShapeErrorsNameTheTensor) {
  TempDir dir;
  testing::write_file(dir / "model.safetensors",
                      testing::file_bytes(std::vector<RawTensor>{
                          {"e.weight_packed", "I32", {2, 4}, to_bytes(std::vector<int32_t>(8))},
                          {"e.weight_scale", "BF16", {2, 2}, to_bytes(std::vector<uint16_t>(4))},
                          {"e.weight_shape", "I32", {2}, to_bytes(std::vector<int32_t>{2, 64})}}));
  auto ckpt = Checkpoint::open(dir.path());
  ASSERT_TRUE(ckpt.ok());
  auto status = ckpt->linear_f32("e").status();  // 64 columns need 8 packed words, not 4
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find("e.weight_packed"), std::string::npos) << status.message();
  EXPECT_NE(status.message().find("model.safetensors"), std::string::npos) << status.message();
}

// Dequantises every int4_check.<name> matrix of a golden set and requires bit equality.
void check_int4_golden(const std::string& set) {
  const std::filesystem::path dir = std::filesystem::path(K2_TEST_DATA_DIR) / "models" / set;
  auto config = ModelConfig::from_dir(dir);
  ASSERT_TRUE(config.ok()) << config.status().to_string();
  auto ckpt = Checkpoint::open(dir, *config);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status().to_string();
  auto golden = SafetensorsFile::open(dir / "golden.safetensors");
  ASSERT_TRUE(golden.ok()) << golden.status().to_string();
  const std::string tag = "int4_check.";
  const std::string suffix = ".weight";
  int checked = 0;
  for (const auto& [name, entry] : (*golden)->header().tensors) {
    if (name.rfind(tag, 0) != 0) continue;
    std::string module = name.substr(tag.size(), name.size() - tag.size() - suffix.size());
    ASSERT_EQ(module.rfind(config->tensor_prefix, 0), 0u) << module;
    module = module.substr(config->tensor_prefix.size());
    ASSERT_TRUE(ckpt->has(module + ".weight_packed")) << module;
    auto want = to_f32(*(*golden)->view(name));
    auto got = ckpt->linear_f32(module);
    ASSERT_TRUE(want.ok() && got.ok()) << got.status().to_string();
    ASSERT_EQ(got->shape, want->shape) << module;
    int64_t differing = 0;
    for (size_t i = 0; i < want->data.size(); ++i) differing += got->data[i] != want->data[i];
    EXPECT_EQ(differing, 0) << module;
    ++checked;
  }
  EXPECT_GE(checked, 2) << set;
}

TEST(Convert, Int4MatchesGoldenExactly) {
  check_int4_golden("tiny-int4");
  check_int4_golden("tiny-k25");
}

}  // namespace
}  // namespace k2
