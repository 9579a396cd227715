// The fp8 latent-KV row format (--kv-cache-dtype fp8): float8_e4m3fn values with one float32
// scale per tile of kFp8KvTile consecutive elements, as DeepSeek's FlashMLA FP8 cache does
// (it scales 128-element tiles of the latent and keeps the 64 rope values in bf16). Here every
// tile, the rope part included, is e4m3: with 64-element tiles a DeepSeek row [512 latent |
// 64 rope] gives the rope its own tile and scale, so large latent values cannot flush it.
//
// A row of n elements takes fp8_kv_row_bytes(n) bytes: [n e4m3 bytes, zero-padded to 4]
// [ceil(n / kFp8KvTile) float32 scales]. scale = amax(tile) / 448 (1 for an all-zero tile),
// e4m3 = round-to-nearest-even of value / scale, so no value saturates.
//
// Pure functions; thread-safe.
#pragma once

#include <cstdint>

namespace k2::ref {

inline constexpr int64_t kFp8KvTile = 64;
inline constexpr float kFp8E4m3Max = 448.0f;

inline int64_t fp8_kv_row_bytes(int64_t n) {
  return (n + 3) / 4 * 4 + (n + kFp8KvTile - 1) / kFp8KvTile * static_cast<int64_t>(sizeof(float));
}

// float8_e4m3fn (bias 7, no infinities, max 448, 0x7F/0xFF NaN). Encoding rounds to
// nearest even and saturates to ±448; NaN stays NaN.
float fp8_e4m3_to_f32(uint8_t bits);
uint8_t f32_to_fp8_e4m3(float v);

// src: n floats -> dst: fp8_kv_row_bytes(n) bytes (any alignment), and back.
void quantize_fp8_kv_row(const float* src, int64_t n, uint8_t* dst);
void dequantize_fp8_kv_row(const uint8_t* src, int64_t n, float* dst);

}  // namespace k2::ref
