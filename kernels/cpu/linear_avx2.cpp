// AVX2 + FMA kernels over the packed layouts (no bf16 or VNNI instructions): bf16 weights
// are widened to fp32 with shifts, int8 products use the sign trick of vpmaddubsw so the
// 16-bit pair sums cannot saturate (|x|, |w| <= 127); int4 nibbles are already unsigned,
// so they are vpmaddubsw's unsigned operand as they are. Rows are taken 4 at a time, which
// keeps the accumulators in the 16 ymm registers.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "kernels/cpu/linear_impl.h"

#define K2_AVX2 __attribute__((target("avx2,fma,f16c")))

namespace k2::cpu::detail {
namespace {

constexpr int kRowsAvx2 = 4;

K2_AVX2 inline void store_block(float* y, const __m256* v, int64_t n_valid) {
  if (n_valid == kBlockN) {
    _mm256_storeu_ps(y, v[0]);
    _mm256_storeu_ps(y + 8, v[1]);
    return;
  }
  alignas(32) float tmp[kBlockN];
  _mm256_store_ps(tmp, v[0]);
  _mm256_store_ps(tmp + 8, v[1]);
  std::copy(tmp, tmp + n_valid, y);
}

template <int MR>
K2_AVX2 void bf16_rows(const float* xf, int64_t row_elems, const Bf16Weights& w, float* y, int64_t y_stride) {
  const int64_t kp = w.k_pairs();
  const __m256i hi_mask = _mm256_set1_epi32(static_cast<int>(0xffff0000u));
  for (int64_t b = 0; b < w.n_blocks(); ++b) {
    const uint16_t* wb = w.data + b * w.block_elems();
    __m256 acc[MR][2];
    for (int m = 0; m < MR; ++m) acc[m][0] = acc[m][1] = _mm256_setzero_ps();
    for (int64_t p = 0; p < kp; ++p) {
      const __m256i w0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wb + p * 32));
      const __m256i w1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wb + p * 32 + 16));
      const __m256 w0e = _mm256_castsi256_ps(_mm256_slli_epi32(w0, 16));
      const __m256 w0o = _mm256_castsi256_ps(_mm256_and_si256(w0, hi_mask));
      const __m256 w1e = _mm256_castsi256_ps(_mm256_slli_epi32(w1, 16));
      const __m256 w1o = _mm256_castsi256_ps(_mm256_and_si256(w1, hi_mask));
      for (int m = 0; m < MR; ++m) {
        const __m256 xe = _mm256_broadcast_ss(xf + m * row_elems + 2 * p);
        const __m256 xo = _mm256_broadcast_ss(xf + m * row_elems + 2 * p + 1);
        acc[m][0] = _mm256_fmadd_ps(w0o, xo, _mm256_fmadd_ps(w0e, xe, acc[m][0]));
        acc[m][1] = _mm256_fmadd_ps(w1o, xo, _mm256_fmadd_ps(w1e, xe, acc[m][1]));
      }
    }
    const int64_t n_valid = std::min(kBlockN, w.out - b * kBlockN);
    for (int m = 0; m < MR; ++m) store_block(y + m * y_stride + b * kBlockN, acc[m], n_valid);
  }
}

K2_AVX2 inline __m256i broadcast_quad(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, sizeof v);
  return _mm256_set1_epi32(v);
}

template <int MR>
K2_AVX2 void int8_rows(const int8_t* xq, int64_t row_bytes, const float* x_scales, const Int8Weights& w, float* y,
                       int64_t y_stride) {
  const int64_t kq = w.k_quads();
  const __m256i ones = _mm256_set1_epi16(1);
  for (int64_t b = 0; b < w.n_blocks(); ++b) {
    const int8_t* wb = w.data + b * w.block_bytes();
    __m256i acc[MR][2];
    for (int m = 0; m < MR; ++m) acc[m][0] = acc[m][1] = _mm256_setzero_si256();
    for (int64_t q = 0; q < kq; ++q) {
      const __m256i w0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wb + q * 64));
      const __m256i w1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wb + q * 64 + 32));
      for (int m = 0; m < MR; ++m) {
        const __m256i xv = broadcast_quad(xq + m * row_bytes + 4 * q);
        const __m256i ax = _mm256_abs_epi8(xv);
        const __m256i p0 = _mm256_maddubs_epi16(ax, _mm256_sign_epi8(w0, xv));
        const __m256i p1 = _mm256_maddubs_epi16(ax, _mm256_sign_epi8(w1, xv));
        acc[m][0] = _mm256_add_epi32(acc[m][0], _mm256_madd_epi16(p0, ones));
        acc[m][1] = _mm256_add_epi32(acc[m][1], _mm256_madd_epi16(p1, ones));
      }
    }
    const int64_t col0 = b * kBlockN;
    const __m256 s0 = _mm256_loadu_ps(w.scales + col0);
    const __m256 s1 = _mm256_loadu_ps(w.scales + col0 + 8);
    const int64_t n_valid = std::min(kBlockN, w.out - col0);
    for (int m = 0; m < MR; ++m) {
      const __m256 sx = _mm256_set1_ps(x_scales[m]);
      __m256 v[2];
      v[0] = _mm256_mul_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(acc[m][0]), s0), sx);
      v[1] = _mm256_mul_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(acc[m][1]), s1), sx);
      store_block(y + m * y_stride + col0, v, n_valid);
    }
  }
}

template <int MR>
K2_AVX2 inline void int4_group_init(__m256i (&acc)[MR][2], const int32_t* group_sums, int64_t n_groups, int64_t g) {
  // The weights enter maddubs as unsigned nibbles q_w + 8: start from -8 * sum q_x.
  for (int m = 0; m < MR; ++m) acc[m][0] = acc[m][1] = _mm256_set1_epi32(-8 * group_sums[m * n_groups + g]);
}

// bf16 scales of 8 outputs -> fp32 (exact).
K2_AVX2 inline __m256 load_bf16x8(const uint16_t* p) {
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(v), 16));
}

template <int MR>
K2_AVX2 void int4_rows(const StagedInt4& x, int64_t r0, const Int4Weights& w, float* y, int64_t y_stride) {
  const int64_t groups = w.n_groups(), octs_per_group = w.group / kInt4Oct;
  const __m256i ones = _mm256_set1_epi16(1);
  const __m256i low4 = _mm256_set1_epi8(0x0f);
  const int8_t* xq = x.q + r0 * x.row_bytes;
  const int32_t* gs = x.group_sums + r0 * groups;
  for (int64_t b = 0; b < w.n_blocks(); ++b) {
    const uint8_t* wb = w.data + b * w.block_bytes();
    const uint16_t* sb = w.scales + b * w.block_scales();
    __m256 accf[MR][2];
    for (int m = 0; m < MR; ++m) accf[m][0] = accf[m][1] = _mm256_setzero_ps();
    for (int64_t g = 0; g < groups; ++g) {
      __m256i acc[MR][2];
      int4_group_init<MR>(acc, gs, groups, g);
      for (int64_t oc = g * octs_per_group; oc < (g + 1) * octs_per_group; ++oc) {
        const __m256i v0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wb + oc * 64));
        const __m256i v1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wb + oc * 64 + 32));
        const __m256i lo[2] = {_mm256_and_si256(v0, low4), _mm256_and_si256(v1, low4)};
        const __m256i hi[2] = {_mm256_and_si256(_mm256_srli_epi16(v0, 4), low4),
                               _mm256_and_si256(_mm256_srli_epi16(v1, 4), low4)};
        for (int m = 0; m < MR; ++m) {
          const __m256i x0 = broadcast_quad(xq + m * x.row_bytes + oc * kInt4Oct);
          const __m256i x1 = broadcast_quad(xq + m * x.row_bytes + oc * kInt4Oct + 4);
          for (int h = 0; h < 2; ++h) {
            // u8 (0..15) x s8 pairs: |sum| <= 2 * 15 * 127, no saturation.
            const __m256i p = _mm256_add_epi16(_mm256_maddubs_epi16(lo[h], x0), _mm256_maddubs_epi16(hi[h], x1));
            acc[m][h] = _mm256_add_epi32(acc[m][h], _mm256_madd_epi16(p, ones));
          }
        }
      }
      const __m256 s0 = load_bf16x8(sb + g * kBlockN), s1 = load_bf16x8(sb + g * kBlockN + 8);
      for (int m = 0; m < MR; ++m) {
        accf[m][0] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc[m][0]), s0, accf[m][0]);
        accf[m][1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc[m][1]), s1, accf[m][1]);
      }
    }
    const int64_t n_valid = std::min(kBlockN, w.out - b * kBlockN);
    for (int m = 0; m < MR; ++m) {
      const __m256 sx = _mm256_set1_ps(x.scales[r0 + m]);
      __m256 v[2] = {_mm256_mul_ps(accf[m][0], sx), _mm256_mul_ps(accf[m][1], sx)};
      store_block(y + m * y_stride + b * kBlockN, v, n_valid);
    }
  }
}

}  // namespace

void linear_bf16_avx2(const StagedBf16& x, const Bf16Weights& w, float* y, int64_t y_stride) {
  for (int64_t r = 0; r < x.rows; r += kRowsAvx2) {
    const float* xf = x.f32 + r * x.row_elems;
    float* yr = y + r * y_stride;
    switch (std::min<int64_t>(kRowsAvx2, x.rows - r)) {
      case 1: bf16_rows<1>(xf, x.row_elems, w, yr, y_stride); break;
      case 2: bf16_rows<2>(xf, x.row_elems, w, yr, y_stride); break;
      case 3: bf16_rows<3>(xf, x.row_elems, w, yr, y_stride); break;
      default: bf16_rows<4>(xf, x.row_elems, w, yr, y_stride); break;
    }
  }
}

void linear_int8_avx2(const StagedInt8& x, const Int8Weights& w, float* y, int64_t y_stride) {
  for (int64_t r = 0; r < x.rows; r += kRowsAvx2) {
    const int8_t* xq = x.q + r * x.row_bytes;
    const float* sx = x.scales + r;
    float* yr = y + r * y_stride;
    switch (std::min<int64_t>(kRowsAvx2, x.rows - r)) {
      case 1: int8_rows<1>(xq, x.row_bytes, sx, w, yr, y_stride); break;
      case 2: int8_rows<2>(xq, x.row_bytes, sx, w, yr, y_stride); break;
      case 3: int8_rows<3>(xq, x.row_bytes, sx, w, yr, y_stride); break;
      default: int8_rows<4>(xq, x.row_bytes, sx, w, yr, y_stride); break;
    }
  }
}

void linear_int4_avx2(const StagedInt4& x, const Int4Weights& w, float* y, int64_t y_stride) {
  for (int64_t r = 0; r < x.rows; r += kRowsAvx2) {
    float* yr = y + r * y_stride;
    switch (std::min<int64_t>(kRowsAvx2, x.rows - r)) {
      case 1: int4_rows<1>(x, r, w, yr, y_stride); break;
      case 2: int4_rows<2>(x, r, w, yr, y_stride); break;
      case 3: int4_rows<3>(x, r, w, yr, y_stride); break;
      default: int4_rows<4>(x, r, w, yr, y_stride); break;
    }
  }
}

}  // namespace k2::cpu::detail
