#include "kernels/ref/kv_fp8.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

namespace k2::ref {
namespace {

TEST(Fp8Kv, E4m3CodesRoundTripAndRoundToNearestEven) {
  EXPECT_EQ(fp8_e4m3_to_f32(0x38), 1.0f);
  EXPECT_EQ(fp8_e4m3_to_f32(0x7E), 448.0f);
  EXPECT_EQ(fp8_e4m3_to_f32(0x01), std::ldexp(1.0f, -9));  // smallest subnormal
  EXPECT_TRUE(std::isnan(fp8_e4m3_to_f32(0x7F)));
  for (int c = 0; c < 256; ++c) {
    if ((c & 0x7F) == 0x7F) continue;
    const float v = fp8_e4m3_to_f32(static_cast<uint8_t>(c));
    if (v == 0.0f) continue;  // ±0 both decode to a zero
    EXPECT_EQ(f32_to_fp8_e4m3(v), c) << c;
  }
  EXPECT_EQ(f32_to_fp8_e4m3(1.0625f), 0x38);  // halfway 1 and 1.125: to the even code (1.0)
  EXPECT_EQ(f32_to_fp8_e4m3(1.1875f), 0x3A);  // halfway 1.125 and 1.25: to 1.25 (even)
  EXPECT_EQ(f32_to_fp8_e4m3(1.07f), 0x39);
  EXPECT_EQ(f32_to_fp8_e4m3(1e6f), 0x7E);     // saturates
  EXPECT_EQ(f32_to_fp8_e4m3(-1e6f), 0xFE);
  EXPECT_EQ(f32_to_fp8_e4m3(std::nanf("")), 0x7F);
}

TEST(Fp8Kv, RowsKeepEachTileWithinHalfAStepOfItsLargestValue) {
  std::mt19937 rng(5);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  for (int64_t n : {1, 3, 64, 65, 576}) {
    std::vector<float> row(static_cast<size_t>(n)), back(row.size());
    for (int64_t i = 0; i < n; ++i) row[i] = dist(rng) * (i >= n - 8 ? 100.0f : 1.0f);  // a loud last tile
    if (n > 2) row[1] = 0.0f;
    std::vector<uint8_t> bytes(static_cast<size_t>(fp8_kv_row_bytes(n)), 0xAB);
    quantize_fp8_kv_row(row.data(), n, bytes.data());
    dequantize_fp8_kv_row(bytes.data(), n, back.data());
    for (int64_t t0 = 0; t0 < n; t0 += kFp8KvTile) {
      float amax = 0.0f;
      for (int64_t i = t0; i < std::min(n, t0 + kFp8KvTile); ++i) amax = std::max(amax, std::fabs(row[i]));
      for (int64_t i = t0; i < std::min(n, t0 + kFp8KvTile); ++i) {
        // Half a step: 2^-4 relative for normals, the subnormal step 2^-9 · scale below them.
        const double tol = std::max(std::fabs(row[i]) / 16.0, amax / 448.0 * std::ldexp(1.0, -10)) * (1 + 1e-6);
        EXPECT_LE(std::fabs(back[i] - row[i]), tol) << "n " << n << " i " << i;
      }
      if (amax > 0.0f) {
        const auto it = std::find_if(row.begin() + t0, row.begin() + std::min(n, t0 + kFp8KvTile),
                                     [&](float v) { return std::fabs(v) == amax; });
        EXPECT_NEAR(back[it - row.begin()], *it, 1e-6 * amax) << "the tile's largest value is exact";
      }
    }
    if (n > 2) {
      EXPECT_EQ(back[1], 0.0f);
    }
  }
  EXPECT_EQ(fp8_kv_row_bytes(576), 576 + 9 * 4);
  EXPECT_EQ(fp8_kv_row_bytes(3), 4 + 4);
}

}  // namespace
}  // namespace k2::ref
