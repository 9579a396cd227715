// Quantised weight layouts that the CPU linear kernels read, and the one-time repack from
// the float32 [out, in] (PyTorch/HF) layout into them.
//
// Both layouts are "weight stationary, 16 outputs per block": output rows are grouped in
// blocks of kBlockN = 16 (the last block zero-padded), and inside a block the reduction
// dimension is stored in small groups, 16 outputs side by side, so one 64-byte load feeds
// 16 output lanes of one vdpbf16ps / vpdpbusd:
//   bf16: [block][k_pair][16 outputs][2]  uint16 (bf16 bits), in padded to even with zeros
//   int8: [block][k_quad][16 outputs][4]  int8 in [-127, 127], in padded to 4 with zeros,
//         plus per-output float scale and int32 sum of that output's quantised weights.
//   int4: [block][k_oct][16 outputs][4]  bytes, group-quantised (see Int4Weights), plus
//         bf16 scales [block][group][16 outputs]. One 64-byte load holds 8 k of 16 outputs:
//         its low nibbles are k_oct*8 + 0..3 and its high nibbles k_oct*8 + 4..7, so two
//         and/shift ops give two vpdpbusd operands.
// A bf16 block is also exactly an AMX B tile (rows = k pairs, 64 bytes per row).
//
// Packed* own their memory (64-byte aligned, immutable after packing) and are safe to read
// from any number of threads. The *Weights views own nothing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>

namespace k2::cpu {

inline constexpr int64_t kBlockN = 16;

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Largest reduction size the int8 kernels accept: 255 * 127 * in must fit in an int32.
inline constexpr int64_t kMaxInt8In = 65536;

struct Bf16Weights {
  const uint16_t* data = nullptr;
  int64_t out = 0;  // logical output rows
  int64_t in = 0;   // logical reduction size
  int64_t k_pairs() const { return ceil_div(in, 2); }
  int64_t n_blocks() const { return ceil_div(out, kBlockN); }
  int64_t block_elems() const { return k_pairs() * kBlockN * 2; }  // uint16 per block
};

struct Int8Weights {
  const int8_t* data = nullptr;
  const float* scales = nullptr;     // [n_blocks * 16]: w ≈ q * scale
  const int32_t* row_sums = nullptr; // [n_blocks * 16]: sum over in of q (u8-offset correction)
  int64_t out = 0;
  int64_t in = 0;
  int64_t k_quads() const { return ceil_div(in, 4); }
  int64_t n_blocks() const { return ceil_div(out, kBlockN); }
  int64_t block_bytes() const { return k_quads() * kBlockN * 4; }
};

// Symmetric int4 with one scale per group of `group` consecutive inputs of an output:
// w[o][k] ≈ q * scale[o][k / group], q in [-8, 7]. A nibble stores q + 8 (0..15), the same
// offset-binary value the compressed-tensors "pack-quantized" checkpoints store, so a
// checkpoint repacks without touching values. Scales are bf16 (the checkpoints' own type).
// Shapes: see int4_shape_ok; the kernels sum q exactly in int32 per group.
inline constexpr int64_t kInt4Oct = 8;          // k per 64-byte load of a block
inline constexpr int64_t kMaxInt4Group = 65536;  // 15 * 127 * group must fit an int32

struct Int4Weights {
  const uint8_t* data = nullptr;
  const uint16_t* scales = nullptr;  // bf16 bits, [n_blocks][n_groups][16]
  int64_t out = 0;
  int64_t in = 0;
  int64_t group = 0;
  int64_t k_octs() const { return in / kInt4Oct; }
  int64_t n_groups() const { return in / group; }
  int64_t n_blocks() const { return ceil_div(out, kBlockN); }
  int64_t block_bytes() const { return k_octs() * kBlockN * 4; }
  int64_t block_scales() const { return n_groups() * kBlockN; }
};

// The shapes the int4 layout supports: group a positive multiple of 8 (<= kMaxInt4Group)
// and in a multiple of group (so no group is partial and no padding is needed). Callers
// holding outside data (the loader) check this and report an error; the packers abort.
bool int4_shape_ok(int64_t in, int64_t group);

// Output blocks [first, first + count) of w as a matrix of its own (for splitting one
// matrix across threads); its output 0 is w's output first * 16.
Bf16Weights slice_blocks(const Bf16Weights& w, int64_t first, int64_t count);
Int8Weights slice_blocks(const Int8Weights& w, int64_t first, int64_t count);
Int4Weights slice_blocks(const Int4Weights& w, int64_t first, int64_t count);

struct AlignedFree {
  void operator()(void* p) const noexcept;
};
using AlignedBytes = std::unique_ptr<std::byte[], AlignedFree>;
AlignedBytes aligned_bytes(size_t n);  // 64-byte aligned, zero-filled

class PackedBf16 {
 public:
  PackedBf16() = default;
  Bf16Weights view() const { return view_; }
  size_t bytes() const { return bytes_; }

 private:
  friend PackedBf16 pack_bf16(const float*, int64_t, int64_t, int64_t);
  friend PackedBf16 interleave_blocks(const PackedBf16&, const PackedBf16&);
  friend PackedBf16 pack_bf16_streamed(int64_t, int64_t, int64_t, const std::function<void(int64_t, int64_t, float*)>&);
  AlignedBytes mem_;
  size_t bytes_ = 0;
  Bf16Weights view_;
};

class PackedInt8 {
 public:
  PackedInt8() = default;
  Int8Weights view() const { return view_; }
  size_t bytes() const { return bytes_; }  // weights + scales + sums

 private:
  friend PackedInt8 pack_int8(const float*, int64_t, int64_t, int64_t);
  friend PackedInt8 interleave_blocks(const PackedInt8&, const PackedInt8&);
  friend PackedInt8 pack_int8_streamed(int64_t, int64_t, int64_t, const std::function<void(int64_t, int64_t, float*)>&);
  AlignedBytes mem_;
  size_t bytes_ = 0;
  Int8Weights view_;
};

class PackedInt4 {
 public:
  PackedInt4() = default;
  Int4Weights view() const { return view_; }
  size_t bytes() const { return bytes_; }  // nibbles + scales

 private:
  friend class Int4Packer;
  friend PackedInt4 interleave_blocks(const PackedInt4&, const PackedInt4&);
  AlignedBytes mem_;
  size_t bytes_ = 0;
  Int4Weights view_;
};

// w: [out, in] float32 with row stride w_stride (elements). Rounds to nearest even.
PackedBf16 pack_bf16(const float* w, int64_t w_stride, int64_t out, int64_t in);
// Symmetric per-output-row int8: scale = max|w_row| / 127, q = round-half-even(w / scale).
PackedInt8 pack_int8(const float* w, int64_t w_stride, int64_t out, int64_t in);
// Per output and group: scale = bf16(max|w| / 7), q = clamp(round-half-even(w / scale), -8, 7)
// (a zero group gets scale 0, q 0). Requires int4_shape_ok(in, group).
PackedInt4 pack_int4(const float* w, int64_t w_stride, int64_t out, int64_t in, int64_t group);
// Repacks a compressed-tensors pack-quantized INT4 tensor without a float round trip:
// packed [out][in / 8] int32 words, word j holding inputs 8j..8j+7 as nibbles from the
// least significant up, each q + 8; scales [out][in / group] (rounded to bf16, exact for
// bf16 checkpoints). Requires int4_shape_ok(in, group).
PackedInt4 pack_int4_from_packed(const int32_t* packed, const float* scales, int64_t out, int64_t in,
                                 int64_t group);
// Writes rows [row0, row0 + rows) of a float32 [out, in] matrix to dst ([rows, in]).
using RowSource = std::function<void(int64_t row0, int64_t rows, float* dst)>;
// pack_bf16 / pack_int8 of the matrix `source` yields, read chunk_rows rows at a time, so
// that a large weight converted from a checkpoint never exists whole in float32 (the load's
// peak memory stays near the packed size). Same bytes as the one-shot packers.
PackedBf16 pack_bf16_streamed(int64_t out, int64_t in, int64_t chunk_rows, const RowSource& source);
PackedInt8 pack_int8_streamed(int64_t out, int64_t in, int64_t chunk_rows, const RowSource& source);

// The dequantised weight q * scale of output o, input k (tests, debugging).
float int4_weight(const Int4Weights& w, int64_t o, int64_t k);

// float -> bf16 bits, round to nearest even (NaN stays NaN), and back.
uint16_t to_bf16(float f);
float from_bf16(uint16_t b);

// Activation preparation shared by every ISA so all paths see identical inputs.
// bf16: out[r * row_elems + k] for k < in, zero up to row_elems (even).
void activations_to_bf16(const float* x, int64_t x_stride, int64_t rows, int64_t in, int64_t row_elems,
                         uint16_t* out);
// int8: per row, scale = max|x| / 127, q = round-half-even(x * (127 / max|x|)) in [-127, 127];
// a zero row gets scale 0. Padding up to row_bytes is q = 0. With offset_u8 the stored byte
// is q + 128 (the unsigned operand of vpdpbusd).
void quantize_activations_int8(const float* x, int64_t x_stride, int64_t rows, int64_t in, int64_t row_bytes,
                               bool offset_u8, int8_t* out, float* scales);
// Per row and group of `group` inputs, the sum of the signed quantised activations
// (q: [rows, row_bytes] without offset; sums: [rows, in / group]).
void int8_group_sums(const int8_t* q, int64_t rows, int64_t row_bytes, int64_t in, int64_t group, int32_t* sums);

}  // namespace k2::cpu
