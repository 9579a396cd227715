// AVX-512 kernels for decode-sized M: vdpbf16ps on bf16 weights, vpdpbusd on int8 and int4
// weights. Int4 uses vpdpbusd on int8-quantised activations rather than bf16 dots: two
// and/shift ops turn 64 bytes of nibbles into two vpdpbusd operands (128 MACs per row each),
// where widening nibbles to bf16 would take several conversions per 32 weights and run at
// half the rate (vdpbf16ps does 32 MACs per instruction, vpdpbusd 64).
// Up to 16 activation rows share every 64-byte weight load (weight stationary), so each
// weight byte is read from memory once per call for M <= 16. For small M several output
// blocks are processed together so enough independent accumulators hide the dot latency:
// accumulators = MR * NB <= 16 of the 32 zmm registers. The row chunks, block loop and
// panels are the shared driver's (tile_driver_avx512.h); this file holds the microkernels.
//
// Only the functions below carry the AVX-512 target attribute; the file itself is built for
// the project baseline, so nothing here leaks wider instructions into shared inline code.
#include <immintrin.h>

#include <cstring>

#include "kernels/cpu/linear_impl.h"
#include "kernels/cpu/tile_driver_avx512.h"

#define K2_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,avx512vnni")))

namespace k2::cpu::detail {
namespace {

using avx512::store_tile;
using avx512::kAll;

// Output blocks per tile for MR rows: as many accumulators as the 32 zmm registers allow
// (MR·NB accumulators + NB weights + 1 broadcast), since vdpbf16ps / vpdpbusd need ~20
// independent chains to issue every cycle. One row stays at 4 streams (memory-bound).
constexpr int dot_blocks_for_rows(int mr) {
  constexpr int kTable[] = {4, 4, 8, 6, 6, 5, 4, 3, 3};
  return mr <= 8 ? kTable[mr] : 1;
}

K2_AVX512 inline __m512i broadcast_u32(const void* p) {
  int32_t v;
  std::memcpy(&v, p, sizeof v);
  return _mm512_set1_epi32(v);
}

// bf16 activations on vdpbf16ps. Many rows (batched decode, prefill) go through panels of 3
// blocks in chunks of 8 rows: each k step issues 3 weight loads and 8 broadcasts for 24 dot
// products (a 16-row tile would issue 1 + 16 for 16).
struct Bf16Format {
  using Staged = StagedBf16;
  using Weights = Bf16Weights;
  using Args = avx512::TileArgs<Staged, Weights>;
  static constexpr int kMaxRows = 8;
  static constexpr int64_t kPanelBlocks = 3;
  static constexpr int blocks_for_rows(int mr) { return dot_blocks_for_rows(mr); }

  template <int MR, int NB>
  K2_AVX512 static void tile(const Args& a, int64_t b0) {
    const Bf16Weights& w = *a.w;
    const int64_t kp = w.k_pairs();
    const int64_t be = w.block_elems();
    const uint16_t* wb = w.data + b0 * be;
    const int64_t re = a.x->row_elems;
    const uint16_t* xb = a.x->bf16 + a.r0 * re;
    __m512 acc[MR][NB];
    avx512::zero_tile(acc);
    for (int64_t p = 0; p < kp; ++p) {
      __m512i wv[NB];
      for (int n = 0; n < NB; ++n) wv[n] = _mm512_loadu_si512(wb + n * be + p * 32);
      for (int m = 0; m < MR; ++m) {
        const __m512i xv = broadcast_u32(xb + m * re + 2 * p);
        for (int n = 0; n < NB; ++n) {
          acc[m][n] =
              _mm512_dpbf16_ps(acc[m][n], reinterpret_cast<__m512bh>(wv[n]), reinterpret_cast<__m512bh>(xv));
        }
      }
    }
    store_tile<MR, NB>(acc, a.y, a.y_stride, w.out, b0);
  }
};

struct Int8Format {
  using Staged = StagedInt8;
  using Weights = Int8Weights;
  using Args = avx512::TileArgs<Staged, Weights>;
  static constexpr int kMaxRows = 16;
  static constexpr int64_t kPanelBlocks = 0;
  static constexpr int blocks_for_rows(int mr) { return dot_blocks_for_rows(mr); }

  template <int MR, int NB>
  K2_AVX512 static void tile(const Args& a, int64_t b0) {
    const Int8Weights& w = *a.w;
    const int64_t kq = w.k_quads();
    const int64_t bb = w.block_bytes();
    const int8_t* wb = w.data + b0 * bb;
    const int64_t rb = a.x->row_bytes;
    const int8_t* xq = a.x->q + a.r0 * rb;
    const float* x_scales = a.x->scales + a.r0;
    __m512i acc[MR][NB];
    for (int m = 0; m < MR; ++m)
      for (int n = 0; n < NB; ++n) acc[m][n] = _mm512_setzero_si512();
    for (int64_t q = 0; q < kq; ++q) {
      __m512i wv[NB];
      for (int n = 0; n < NB; ++n) wv[n] = _mm512_loadu_si512(wb + n * bb + q * 64);
      for (int m = 0; m < MR; ++m) {
        const __m512i xv = broadcast_u32(xq + m * rb + 4 * q);
        for (int n = 0; n < NB; ++n) acc[m][n] = _mm512_dpbusd_epi32(acc[m][n], xv, wv[n]);
      }
    }
    __m512 out[MR][NB];
    for (int n = 0; n < NB; ++n) {
      const int64_t col0 = (b0 + n) * kBlockN;
      // sum (q_x + 128) q_w - 128 sum q_w = sum q_x q_w, exactly.
      // (maskz forms: GCC 12's unmasked ones warn about their own _mm512_undefined_* source)
      const __m512i offset = _mm512_maskz_slli_epi32(kAll, _mm512_loadu_si512(w.row_sums + col0), 7);
      const __m512 sw = _mm512_loadu_ps(w.scales + col0);
      for (int m = 0; m < MR; ++m) {
        const __m512 dot = _mm512_maskz_cvtepi32_ps(kAll, _mm512_sub_epi32(acc[m][n], offset));
        out[m][n] = _mm512_mul_ps(_mm512_mul_ps(dot, sw), _mm512_set1_ps(x_scales[m]));
      }
    }
    store_tile<MR, NB>(out, a.y, a.y_stride, w.out, b0);
  }
};

// bf16 scales of 16 outputs -> fp32 (exact).
K2_AVX512 inline __m512 load_bf16x16(const uint16_t* p) {
  const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  // (maskz forms: see Int8Format::tile)
  return _mm512_castsi512_ps(_mm512_maskz_slli_epi32(kAll, _mm512_maskz_cvtepu16_epi32(kAll, v), 16));
}

struct Int4Format {
  using Staged = StagedInt4;
  using Weights = Int4Weights;
  using Args = avx512::TileArgs<Staged, Weights>;
  static constexpr int kMaxRows = 16;
  static constexpr int64_t kPanelBlocks = 0;
  static constexpr int blocks_for_rows(int mr) { return avx512::int4_blocks_for_rows(mr); }

  // Nibbles are vpdpbusd's unsigned operand as they are (q_w + 8); each group's int32 sum
  // starts at -8 * sum q_x so it ends as sum q_x q_w exactly.
  template <int MR, int NB>
  K2_AVX512 static void tile(const Args& a, int64_t b0) {
    const Int4Weights& w = *a.w;
    const StagedInt4& x = *a.x;
    const int64_t groups = w.n_groups(), octs_per_group = w.group / kInt4Oct;
    const int64_t bb = w.block_bytes(), bs = w.block_scales();
    const uint8_t* wb = w.data + b0 * bb;
    const uint16_t* sb = w.scales + b0 * bs;
    const int8_t* xq = x.q + a.r0 * x.row_bytes;
    const int32_t* gs = x.group_sums + a.r0 * groups;
    const __m512i low4 = _mm512_set1_epi8(0x0f);
    __m512 accf[MR][NB];
    avx512::zero_tile(accf);
    for (int64_t g = 0; g < groups; ++g) {
      __m512i acc[MR][NB];
      for (int m = 0; m < MR; ++m) {
        const __m512i init = _mm512_set1_epi32(-8 * gs[m * groups + g]);
        for (int n = 0; n < NB; ++n) acc[m][n] = init;
      }
      for (int64_t oc = g * octs_per_group; oc < (g + 1) * octs_per_group; ++oc) {
        __m512i lo[NB], hi[NB];
        for (int n = 0; n < NB; ++n) {
          const __m512i v = _mm512_loadu_si512(wb + n * bb + oc * 64);
          lo[n] = _mm512_and_si512(v, low4);
          hi[n] = _mm512_and_si512(_mm512_srli_epi16(v, 4), low4);
        }
        for (int m = 0; m < MR; ++m) {
          const __m512i x0 = broadcast_u32(xq + m * x.row_bytes + oc * kInt4Oct);
          const __m512i x1 = broadcast_u32(xq + m * x.row_bytes + oc * kInt4Oct + 4);
          for (int n = 0; n < NB; ++n) {
            acc[m][n] = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(acc[m][n], lo[n], x0), hi[n], x1);
          }
        }
      }
      for (int n = 0; n < NB; ++n) {
        const __m512 sw = load_bf16x16(sb + n * bs + g * kBlockN);
        for (int m = 0; m < MR; ++m) {
          accf[m][n] = _mm512_fmadd_ps(_mm512_maskz_cvtepi32_ps(kAll, acc[m][n]), sw, accf[m][n]);
        }
      }
    }
    for (int m = 0; m < MR; ++m) {
      const __m512 sx = _mm512_set1_ps(x.scales[a.r0 + m]);
      for (int n = 0; n < NB; ++n) accf[m][n] = _mm512_mul_ps(accf[m][n], sx);
    }
    store_tile<MR, NB>(accf, a.y, a.y_stride, w.out, b0);
  }
};

}  // namespace

void linear_bf16_avx512bf16(const StagedBf16& x, const Bf16Weights& w, float* y, int64_t y_stride) {
  avx512::run_linear<Bf16Format>(x, w, y, y_stride);
}

void linear_int8_avx512vnni(const StagedInt8& x, const Int8Weights& w, float* y, int64_t y_stride) {
  avx512::run_linear<Int8Format>(x, w, y, y_stride);
}

void linear_int4_avx512vnni(const StagedInt4& x, const Int4Weights& w, float* y, int64_t y_stride) {
  avx512::run_linear<Int4Format>(x, w, y, y_stride);
}

}  // namespace k2::cpu::detail
