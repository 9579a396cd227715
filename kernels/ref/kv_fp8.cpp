#include "kernels/ref/kv_fp8.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>

namespace k2::ref {
namespace {

constexpr float decode_bits(uint8_t bits) {
  const int sign = bits >> 7, exp = (bits >> 3) & 0xF, man = bits & 0x7;
  if (exp == 0xF && man == 0x7) return std::numeric_limits<float>::quiet_NaN();
  // Subnormals: man · 2^-9; normals: (1 + man / 8) · 2^(exp - 7).
  float mag = exp == 0 ? static_cast<float>(man) / 512.0f : (1.0f + static_cast<float>(man) / 8.0f);
  for (int e = 7; exp != 0 && e < exp; ++e) mag *= 2.0f;
  for (int e = exp; exp != 0 && e < 7; ++e) mag /= 2.0f;
  return sign ? -mag : mag;
}

constexpr std::array<float, 256> make_table() {
  std::array<float, 256> t{};
  for (int i = 0; i < 256; ++i) t[static_cast<size_t>(i)] = decode_bits(static_cast<uint8_t>(i));
  return t;
}
constexpr std::array<float, 256> kTable = make_table();

}  // namespace

float fp8_e4m3_to_f32(uint8_t bits) { return kTable[bits]; }

uint8_t f32_to_fp8_e4m3(float v) {
  const uint8_t sign = std::signbit(v) ? 0x80 : 0x00;
  if (std::isnan(v)) return 0x7F;
  const float a = std::fabs(v);
  if (a >= kFp8E4m3Max) return sign | 0x7E;
  // The two neighbours among the 127 non-negative finite codes, then nearest (ties to even
  // code, whose mantissa's last bit is 0).
  uint8_t lo = 0, hi = 0x7E;
  while (hi - lo > 1) {
    const uint8_t mid = static_cast<uint8_t>((lo + hi) / 2);
    (kTable[mid] <= a ? lo : hi) = mid;
  }
  const float dlo = a - kTable[lo], dhi = kTable[hi] - a;
  const uint8_t code = dlo < dhi ? lo : (dhi < dlo ? hi : ((lo & 1) == 0 ? lo : hi));
  return sign | code;
}

void quantize_fp8_kv_row(const float* src, int64_t n, uint8_t* dst) {
  const int64_t data_bytes = (n + 3) / 4 * 4;
  std::fill(dst + n, dst + data_bytes, uint8_t{0});
  for (int64_t t0 = 0; t0 < n; t0 += kFp8KvTile) {
    const int64_t t1 = std::min(n, t0 + kFp8KvTile);
    float amax = 0.0f;
    for (int64_t i = t0; i < t1; ++i) amax = std::max(amax, std::fabs(src[i]));
    const float scale = amax > 0.0f && std::isfinite(amax) ? amax / kFp8E4m3Max : 1.0f;
    for (int64_t i = t0; i < t1; ++i) dst[i] = f32_to_fp8_e4m3(src[i] / scale);
    std::memcpy(dst + data_bytes + (t0 / kFp8KvTile) * static_cast<int64_t>(sizeof(float)), &scale, sizeof(float));
  }
}

void dequantize_fp8_kv_row(const uint8_t* src, int64_t n, float* dst) {
  const int64_t data_bytes = (n + 3) / 4 * 4;
  for (int64_t t0 = 0; t0 < n; t0 += kFp8KvTile) {
    float scale;
    std::memcpy(&scale, src + data_bytes + (t0 / kFp8KvTile) * static_cast<int64_t>(sizeof(float)), sizeof(float));
    const int64_t t1 = std::min(n, t0 + kFp8KvTile);
    for (int64_t i = t0; i < t1; ++i) dst[i] = kTable[src[i]] * scale;
  }
}

}  // namespace k2::ref
