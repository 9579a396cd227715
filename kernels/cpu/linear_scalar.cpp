// Portable kernels over the packed layouts: the fallback for CPUs without AVX2, and the
// second opinion the consistency test compares the SIMD kernels with.
#include <algorithm>
#include <cmath>

#include "kernels/cpu/linear_impl.h"

namespace k2::cpu::detail {

void linear_bf16_scalar(const StagedBf16& x, const Bf16Weights& w, float* y, int64_t y_stride) {
  const int64_t kp = w.k_pairs();
  for (int64_t b = 0; b < w.n_blocks(); ++b) {
    const uint16_t* wb = w.data + b * w.block_elems();
    const int64_t n_valid = std::min(kBlockN, w.out - b * kBlockN);
    for (int64_t r = 0; r < x.rows; ++r) {
      const float* xr = x.f32 + r * x.row_elems;
      float acc[kBlockN] = {};
      for (int64_t p = 0; p < kp; ++p) {
        const uint16_t* wp = wb + p * kBlockN * 2;
        for (int64_t l = 0; l < kBlockN; ++l) {
          acc[l] += xr[2 * p] * from_bf16(wp[2 * l]) + xr[2 * p + 1] * from_bf16(wp[2 * l + 1]);
        }
      }
      std::copy(acc, acc + n_valid, y + r * y_stride + b * kBlockN);
    }
  }
}

void linear_int8_scalar(const StagedInt8& x, const Int8Weights& w, float* y, int64_t y_stride) {
  const int64_t kq = w.k_quads();
  for (int64_t b = 0; b < w.n_blocks(); ++b) {
    const int8_t* wb = w.data + b * w.block_bytes();
    const int64_t n_valid = std::min(kBlockN, w.out - b * kBlockN);
    for (int64_t r = 0; r < x.rows; ++r) {
      const int8_t* xr = x.q + r * x.row_bytes;
      int32_t acc[kBlockN] = {};
      for (int64_t q = 0; q < kq; ++q) {
        const int8_t* wq = wb + q * kBlockN * 4;
        for (int64_t l = 0; l < kBlockN; ++l) {
          for (int64_t j = 0; j < 4; ++j) acc[l] += int32_t{xr[4 * q + j]} * int32_t{wq[4 * l + j]};
        }
      }
      for (int64_t l = 0; l < n_valid; ++l) {
        const int64_t o = b * kBlockN + l;
        // Same operation order as the SIMD epilogues, so all paths agree bit for bit.
        y[r * y_stride + o] = static_cast<float>(acc[l]) * w.scales[o] * x.scales[r];
      }
    }
  }
}

// Per group: the exact int32 sum of q_x * q_w (nibble - 8), then acc = fma(sum, scale, acc)
// in group order, then one multiply by the row scale; the SIMD kernels do the same.
void linear_int4_scalar(const StagedInt4& x, const Int4Weights& w, float* y, int64_t y_stride) {
  const int64_t groups = w.n_groups(), octs_per_group = w.group / kInt4Oct;
  for (int64_t b = 0; b < w.n_blocks(); ++b) {
    const uint8_t* wb = w.data + b * w.block_bytes();
    const uint16_t* sb = w.scales + b * w.block_scales();
    const int64_t n_valid = std::min(kBlockN, w.out - b * kBlockN);
    for (int64_t r = 0; r < x.rows; ++r) {
      const int8_t* xr = x.q + r * x.row_bytes;
      float acc[kBlockN] = {};
      for (int64_t g = 0; g < groups; ++g) {
        int32_t dot[kBlockN] = {};
        for (int64_t oc = g * octs_per_group; oc < (g + 1) * octs_per_group; ++oc) {
          const uint8_t* wo = wb + oc * kBlockN * 4;
          const int8_t* xo = xr + oc * kInt4Oct;
          for (int64_t l = 0; l < kBlockN; ++l) {
            for (int64_t j = 0; j < 4; ++j) {
              dot[l] += int32_t{xo[j]} * ((wo[4 * l + j] & 0xf) - 8) + int32_t{xo[4 + j]} * ((wo[4 * l + j] >> 4) - 8);
            }
          }
        }
        for (int64_t l = 0; l < kBlockN; ++l) {
          acc[l] = std::fma(static_cast<float>(dot[l]), from_bf16(sb[g * kBlockN + l]), acc[l]);
        }
      }
      for (int64_t l = 0; l < n_valid; ++l) y[r * y_stride + b * kBlockN + l] = acc[l] * x.scales[r];
    }
  }
}

}  // namespace k2::cpu::detail
