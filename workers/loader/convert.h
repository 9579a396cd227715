// Conversions of checkpoint tensors to float32: plain widening (BF16, F16, F32, F8_E4M3),
// FP8 block dequantisation (weight + weight_scale_inv) and INT4 compressed-tensors
// pack-quantized dequantisation (weight_packed + weight_scale + weight_shape).
//
// Every result is exact: each element is one float32 multiply of exactly representable
// values, which is what the fp32 reference (and the goldens) compute. Pure functions of
// their arguments; thread-safe.
#pragma once

#include <cstdint>
#include <vector>

#include "shm/status.h"
#include "workers/loader/safetensors.h"

namespace k2 {

// An owning float32 tensor, row-major.
struct TensorF32 {
  std::vector<int64_t> shape;
  std::vector<float> data;
  int64_t numel() const;
};

float bf16_to_f32(uint16_t bits);
float f16_to_f32(uint16_t bits);
// float8_e4m3fn: bias 7, no infinities, max 448; 0x7F and 0xFF are NaN.
float e4m3_to_f32(uint8_t bits);

// BF16 / F16 / F32 / F8_E4M3 widened to float32; integer dtypes are an error naming the tensor.
Result<TensorF32> to_f32(const TensorView& view);
// I32 / I64 / U8 / I8 widened to int64 (weight_shape, router indices).
Result<std::vector<int64_t>> to_i64(const TensorView& view);

// W[i, j] = e4m3(weight[i, j]) * scale_inv[i / block_out, j / block_in]; weight is F8_E4M3
// [out, in], scale_inv any float dtype of shape [ceil(out/block_out), ceil(in/block_in)]
// (edge blocks are partial).
Result<TensorF32> dequant_fp8_block(const TensorView& weight, const TensorView& scale_inv, int64_t block_out,
                                    int64_t block_in);

// q = ((u32(packed[o, i/8]) >> 4*(i%8)) & 15) - 8, W[o, i] = q * float(scale[o, i/group]);
// packed I32 [out, ceil(in/8)], scale a float dtype [out, ceil(in/group)], shape I32/I64 [2].
Result<TensorF32> dequant_int4_packed(const TensorView& packed, const TensorView& scale, const TensorView& shape,
                                      int64_t group_size);

}  // namespace k2
