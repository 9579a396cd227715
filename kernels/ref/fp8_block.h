// The FP8-block weight format of DeepSeek-V3 / Kimi-K2 checkpoints, dequantised the plain
// way: the scalar float32 oracle that the CPU fp8 kernels (kernels/cpu/packed_fp8.h) are
// tested against. Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <vector>

namespace k2::ref {

// W[o, k] = e4m3(q[o, k]) · scale_inv[o / block_out, k / block_in] in float32 (one rounding).
// q: [out, in] (row stride q_stride), scale_inv: [ceil(out / block_out), ceil(in / block_in)]
// (row stride s_stride). Returns W as [out, in], row-major.
std::vector<float> dequantize_fp8_block(const uint8_t* q, int64_t q_stride, const float* scale_inv, int64_t s_stride,
                                        int64_t out, int64_t in, int64_t block_out, int64_t block_in);

}  // namespace k2::ref
