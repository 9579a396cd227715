// Portable kernels over the packed layouts: the fallback for CPUs without AVX2, and the
// second opinion the consistency test compares the SIMD kernels with.
#include <algorithm>

#include "kernels/cpu/linear_impl.h"

namespace k2::cpu::detail {

void linear_bf16_scalar(const float* x, int64_t x_stride, int64_t rows, const Bf16Weights& w, float* y,
                        int64_t y_stride) {
  check_linear_args(x_stride, rows, w.in, w.out, y_stride);
  const int64_t kp = w.k_pairs();
  const int64_t row_elems = kp * 2;
  Scratch& s = stage_bf16_activations(x, x_stride, rows, w.in, row_elems, /*widen=*/true);
  for (int64_t b = 0; b < w.n_blocks(); ++b) {
    const uint16_t* wb = w.data + b * w.block_elems();
    const int64_t n_valid = std::min(kBlockN, w.out - b * kBlockN);
    for (int64_t r = 0; r < rows; ++r) {
      const float* xr = s.f32.data() + r * row_elems;
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

void linear_int8_scalar(const float* x, int64_t x_stride, int64_t rows, const Int8Weights& w, float* y,
                        int64_t y_stride) {
  check_linear_args(x_stride, rows, w.in, w.out, y_stride);
  const int64_t kq = w.k_quads();
  const int64_t row_bytes = kq * 4;
  Scratch& s = stage_int8_activations(x, x_stride, rows, w.in, row_bytes, /*for_vnni=*/false);
  for (int64_t b = 0; b < w.n_blocks(); ++b) {
    const int8_t* wb = w.data + b * w.block_bytes();
    const int64_t n_valid = std::min(kBlockN, w.out - b * kBlockN);
    for (int64_t r = 0; r < rows; ++r) {
      const int8_t* xr = s.i8.data() + r * row_bytes;
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
        y[r * y_stride + o] = static_cast<float>(acc[l]) * w.scales[o] * s.row_scales[r];
      }
    }
  }
}

}  // namespace k2::cpu::detail
