// FP8-block weights (DeepSeek-V3 / Kimi-K2 checkpoints: float8_e4m3fn values plus one float32
// scale_inv per block_out x block_in block) in the layout the CPU linear kernels read, kept
// at one byte per weight.
//
// Layout, "weight stationary, 16 outputs per block" like packed.h's formats:
//   data:   [block][k][16 outputs]  e4m3 bytes as stored, one 16-byte load per k and block
//           (the last block's missing outputs are zero bytes, i.e. +0.0)
//   scales: [block][group]  float, group = k / block_in: the checkpoint's scale_inv times
//           2^kFp8ScaleExponent, so that a kernel can widen a byte with integer ops only
//           (sign | (byte & 0x7f) << 20 read as float is e4m3(byte) · 2^-120, exactly, as a
//           normal or subnormal float) and one multiply gives e4m3(byte) · scale_inv with the
//           same single rounding as the float32 dequantisation.
// One scale per 16-output block and input group requires every block to lie inside one
// scale row (block_out a multiple of 16, or at most one scale row): fp8_packable checks it
// and that every pre-multiplied scale is finite. Callers holding checkpoint data check
// fp8_packable and otherwise dequantise to float32; pack_fp8 aborts on a violation.
//
// PackedFp8 owns its memory (64-byte aligned, immutable after packing) and is safe to read
// from any number of threads; Fp8Weights is a view and owns nothing.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/cpu/packed.h"

namespace k2::cpu {

inline constexpr int kFp8ScaleExponent = 120;  // 127 (float bias) - 7 (e4m3 bias)

struct Fp8Weights {
  const uint8_t* data = nullptr;  // [n_blocks][in][16] e4m3 bytes
  const float* scales = nullptr;  // [n_blocks][n_groups()] scale_inv · 2^120
  int64_t out = 0;
  int64_t in = 0;
  int64_t group = 0;  // inputs per scale (the checkpoint's block_in)
  int64_t n_groups() const { return ceil_div(in, group); }
  int64_t n_blocks() const { return ceil_div(out, kBlockN); }
  int64_t block_bytes() const { return in * kBlockN; }
  int64_t block_scales() const { return n_groups(); }
};

Fp8Weights slice_blocks(const Fp8Weights& w, int64_t first, int64_t count);

class PackedFp8 {
 public:
  PackedFp8() = default;
  Fp8Weights view() const { return view_; }
  size_t bytes() const { return bytes_; }  // e4m3 bytes + scales

 private:
  friend PackedFp8 pack_fp8(const uint8_t*, int64_t, const float*, int64_t, int64_t, int64_t, int64_t, int64_t);
  friend PackedFp8 interleave_blocks(const PackedFp8&, const PackedFp8&);
  AlignedBytes mem_;
  size_t bytes_ = 0;
  Fp8Weights view_;
};

// Whether pack_fp8 accepts these arguments (see the header comment).
bool fp8_packable(const float* scale_inv, int64_t s_stride, int64_t out, int64_t in, int64_t block_out,
                  int64_t block_in);

// q: [out, in] e4m3 bytes (row stride q_stride); scale_inv: [ceil(out / block_out),
// ceil(in / block_in)] float32 (row stride s_stride). W[o, k] = e4m3(q[o, k]) ·
// scale_inv[o / block_out, k / block_in]. A block of a larger matrix packs by offsetting q
// and scale_inv, when its first row and column are multiples of block_out and block_in.
PackedFp8 pack_fp8(const uint8_t* q, int64_t q_stride, const float* scale_inv, int64_t s_stride, int64_t out,
                   int64_t in, int64_t block_out, int64_t block_in);

// The weight W[o, k] as the kernels compute it (tests, debugging).
float fp8_weight(const Fp8Weights& w, int64_t o, int64_t k);

}  // namespace k2::cpu
