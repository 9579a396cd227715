#include "kernels/cpu/packed_fp8.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>

#include "kernels/check.h"

namespace k2::cpu {
namespace {

// 2^120 as a float (exact).
const float kScaleFactor = std::ldexp(1.0f, kFp8ScaleExponent);

size_t pad64(size_t n) { return (n + 63) / 64 * 64; }

}  // namespace

Fp8Weights slice_blocks(const Fp8Weights& w, int64_t first, int64_t count) {
  K2_KERNEL_CHECK(first >= 0 && count >= 0 && first + count <= w.n_blocks(), "slice_blocks: out of range");
  Fp8Weights s = w;
  s.data = w.data + first * w.block_bytes();
  s.scales = w.scales + first * w.block_scales();
  s.out = std::min(count * kBlockN, w.out - first * kBlockN);
  return s;
}

bool fp8_packable(const float* scale_inv, int64_t s_stride, int64_t out, int64_t in, int64_t block_out,
                  int64_t block_in) {
  if (out <= 0 || in <= 0 || block_out <= 0 || block_in <= 0) return false;
  if (block_out % kBlockN != 0 && out > block_out) return false;
  const int64_t rows = ceil_div(out, block_out), cols = ceil_div(in, block_in);
  if (s_stride < cols) return false;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      if (!std::isfinite(scale_inv[r * s_stride + c] * kScaleFactor)) return false;
    }
  }
  return true;
}

PackedFp8 pack_fp8(const uint8_t* q, int64_t q_stride, const float* scale_inv, int64_t s_stride, int64_t out,
                   int64_t in, int64_t block_out, int64_t block_in) {
  K2_KERNEL_CHECK(q_stride >= in && fp8_packable(scale_inv, s_stride, out, in, block_out, block_in),
                  "pack_fp8: shape, block size or scales not supported (check fp8_packable first)");
  PackedFp8 p;
  Fp8Weights& v = p.view_;
  v.out = out;
  v.in = in;
  v.group = block_in;
  const size_t data_bytes = pad64(static_cast<size_t>(v.n_blocks() * v.block_bytes()));
  p.bytes_ = data_bytes + static_cast<size_t>(v.n_blocks() * v.block_scales()) * sizeof(float);
  p.mem_ = aligned_bytes(p.bytes_);
  auto* data = reinterpret_cast<uint8_t*>(p.mem_.get());
  auto* scales = reinterpret_cast<float*>(p.mem_.get() + data_bytes);
  for (int64_t o = 0; o < out; ++o) {
    uint8_t* dst = data + (o / kBlockN) * v.block_bytes() + o % kBlockN;
    const uint8_t* src = q + o * q_stride;
    for (int64_t k = 0; k < in; ++k) dst[k * kBlockN] = src[k];
  }
  for (int64_t b = 0; b < v.n_blocks(); ++b) {
    const float* srow = scale_inv + (b * kBlockN / block_out) * s_stride;
    for (int64_t g = 0; g < v.n_groups(); ++g) scales[b * v.n_groups() + g] = srow[g] * kScaleFactor;
  }
  v.data = data;
  v.scales = scales;
  return p;
}

float fp8_weight(const Fp8Weights& w, int64_t o, int64_t k) {
  const uint8_t b = w.data[(o / kBlockN) * w.block_bytes() + k * kBlockN + o % kBlockN];
  const uint32_t bits = (static_cast<uint32_t>(b & 0x80) << 24) | (static_cast<uint32_t>(b & 0x7f) << 20);
  return std::bit_cast<float>(bits) * w.scales[(o / kBlockN) * w.block_scales() + k / w.group];
}

}  // namespace k2::cpu
