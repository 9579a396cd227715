// Portable kernels over the packed layouts: the fallback for CPUs without AVX2, and the
// second opinion the consistency test compares the SIMD kernels with.
#include <algorithm>
#include <bit>
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

// int4 weights with float32 activations: each weight dequantised exactly ((nibble - 8) times
// its bf16 group scale, as the float32 path holds it) and summed in k order.
void linear_int4_f32act_scalar(const StagedBf16& x, const Int4Weights& w, float* y, int64_t y_stride) {
  const int64_t octs_per_group = w.group / kInt4Oct;
  for (int64_t b = 0; b < w.n_blocks(); ++b) {
    const uint8_t* wb = w.data + b * w.block_bytes();
    const uint16_t* sb = w.scales + b * w.block_scales();
    const int64_t n_valid = std::min(kBlockN, w.out - b * kBlockN);
    for (int64_t r = 0; r < x.rows; ++r) {
      const float* xr = x.f32 + r * x.row_elems;
      float acc[kBlockN] = {};
      for (int64_t oc = 0; oc < w.k_octs(); ++oc) {
        const uint8_t* wo = wb + oc * kBlockN * 4;
        const uint16_t* s = sb + (oc / octs_per_group) * kBlockN;
        for (int64_t l = 0; l < kBlockN; ++l) {
          for (int64_t j = 0; j < 4; ++j) {
            const float lo = static_cast<float>((wo[4 * l + j] & 0xf) - 8) * from_bf16(s[l]);
            const float hi = static_cast<float>((wo[4 * l + j] >> 4) - 8) * from_bf16(s[l]);
            acc[l] = std::fma(lo, xr[oc * kInt4Oct + j], acc[l]);
            acc[l] = std::fma(hi, xr[oc * kInt4Oct + 4 + j], acc[l]);
          }
        }
      }
      std::copy(acc, acc + n_valid, y + r * y_stride + b * kBlockN);
    }
  }
}

}  // namespace k2::cpu::detail

namespace k2::cpu::detail {

// FP8-block weights with float32 activations: each weight widened with the same integer
// trick as the SIMD kernel (packed_fp8.h), times its block's pre-multiplied scale (one
// rounding: the float32 path's dequantised weight), then fma in k order, lane by lane as the
// AVX-512 kernel does, so the two agree bit for bit.
void linear_fp8_scalar(const StagedBf16& x, const Fp8Weights& w, float* y, int64_t y_stride) {
  for (int64_t b = 0; b < w.n_blocks(); ++b) {
    const uint8_t* wb = w.data + b * w.block_bytes();
    const float* sb = w.scales + b * w.block_scales();
    const int64_t n_valid = std::min(kBlockN, w.out - b * kBlockN);
    for (int64_t r = 0; r < x.rows; ++r) {
      const float* xr = x.f32 + r * x.row_elems;
      float acc[kBlockN] = {};
      for (int64_t k = 0; k < w.in; ++k) {
        const float s = sb[k / w.group];
        for (int64_t l = 0; l < kBlockN; ++l) {
          const uint8_t q = wb[k * kBlockN + l];
          const uint32_t bits = (static_cast<uint32_t>(q & 0x80) << 24) | (static_cast<uint32_t>(q & 0x7f) << 20);
          acc[l] = std::fma(std::bit_cast<float>(bits) * s, xr[k], acc[l]);
        }
      }
      std::copy(acc, acc + n_valid, y + r * y_stride + b * kBlockN);
    }
  }
}

}  // namespace k2::cpu::detail
