// AVX-512 kernel for bf16 weights with float32 activations: each 64-byte weight load (16
// outputs x 2 k, bf16) is widened in registers to two fp32 vectors (a shift for the even k,
// a mask for the odd k: both exact) and multiplied with the unrounded activations by fp32
// FMA. The result equals float32 x times the (exact) bf16 weights up to fp32 summation
// order, so the fast path keeps the float32 path's numbers: rounding activations to bf16
// perturbs the random golden models' router scores enough to flip expert choices
// (tests/data/models/README.md §8), which moves logits by whole units.
//
// Cost: at decode-sized M the kernel streams the same weight bytes as the vdpbf16ps one
// (memory-bound, so it runs at the same speed); at prefill-sized M it issues two FMAs
// (16 MACs each) per row where vdpbf16ps issues one (32 MACs), i.e. half the bf16 peak,
// plus the widening, which is shared by every row of a tile.
//
// The int4 variant (an INT4 checkpoint's own weights) widens each nibble to fp32 and
// multiplies it by its bf16 group scale (exact: 4 x 8 significant bits), which is the
// float32 path's dequantised weight, then takes the same fp32 FMA.
//
// Same tiling as linear_avx512.cpp (the shared driver, tile_driver_avx512.h): weight
// stationary, MR rows x NB blocks of accumulators; many rows go through cache-resident
// panels of blocks.
// Only the functions below carry the AVX-512 target attribute.
#include <immintrin.h>

#include "kernels/cpu/linear_impl.h"
#include "kernels/cpu/tile_driver_avx512.h"

#define K2_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq")))

namespace k2::cpu::detail {
namespace {

using avx512::store_tile;
using avx512::kAll;

struct Bf16F32ActFormat {
  using Staged = StagedBf16;
  using Weights = Bf16Weights;
  using Args = avx512::TileArgs<Staged, Weights>;
  static constexpr int kMaxRows = 8;
  // 3 x 16 outputs x in x 2 bytes: 96 KB at in = 1024, L2-resident.
  static constexpr int64_t kPanelBlocks = 3;
  // MR·NB accumulators + 2·NB widened weights + one broadcast must fit the 32 zmm registers;
  // one or two rows are memory-bound and keep four blocks (enough independent FMA chains).
  static constexpr int blocks_for_rows(int mr) {
    constexpr int kTable[] = {4, 4, 4, 4, 4, 3, 3, 3, 3};
    return kTable[mr];
  }

  template <int MR, int NB>
  K2_AVX512 static void tile(const Args& a, int64_t b0) {
    const Bf16Weights& w = *a.w;
    const int64_t kp = w.k_pairs();
    const int64_t be = w.block_elems();
    const uint16_t* wb = w.data + b0 * be;
    const __m512i hi_mask = _mm512_set1_epi32(static_cast<int32_t>(0xffff0000u));
    const int64_t re = a.x->row_elems;
    const float* x = a.x->f32 + a.r0 * re;
    __m512 acc[MR][NB];
    avx512::zero_tile(acc);
    for (int64_t p = 0; p < kp; ++p) {
      __m512 we[NB], wo[NB];  // k = 2p and k = 2p + 1 of the block's 16 outputs, as fp32
      for (int n = 0; n < NB; ++n) {
        const __m512i v = _mm512_loadu_si512(wb + n * be + p * 32);
        // (maskz form: GCC 12's unmasked one warns about its own _mm512_undefined_* source)
        we[n] = _mm512_castsi512_ps(_mm512_maskz_slli_epi32(kAll, v, 16));
        wo[n] = _mm512_castsi512_ps(_mm512_and_si512(v, hi_mask));
      }
      for (int m = 0; m < MR; ++m) {
        const float* xr = x + m * re + 2 * p;
        const __m512 x0 = _mm512_set1_ps(xr[0]);
        for (int n = 0; n < NB; ++n) acc[m][n] = _mm512_fmadd_ps(we[n], x0, acc[m][n]);
        const __m512 x1 = _mm512_set1_ps(xr[1]);
        for (int n = 0; n < NB; ++n) acc[m][n] = _mm512_fmadd_ps(wo[n], x1, acc[m][n]);
      }
    }
    store_tile<MR, NB>(acc, a.y, a.y_stride, w.out, b0);
  }
};

// Lane values of the nibble at bit kShift as fp32 q (maskz forms: see the bf16 tile; the XOR
// with 8 made every nibble the signed 4-bit q; moving it to the top and shifting back
// arithmetically sign-extends it).
template <int kShift>
K2_AVX512 inline __m512 nibble_ps(__m512i v) {
  const __m512i top = kShift == 28 ? v : _mm512_maskz_slli_epi32(kAll, v, 28 - kShift);
  return _mm512_maskz_cvtepi32_ps(kAll, _mm512_maskz_srai_epi32(kAll, top, 28));
}

// int4: bytes of one 64-byte load (16 outputs x 8 k); output l's 32-bit lane holds k
// oct·8 + j in bits 8j..8j+3 and k oct·8 + 4 + j in bits 8j+4..8j+7 (j < 4), each q + 8.
struct Int4F32ActFormat {
  using Staged = StagedBf16;
  using Weights = Int4Weights;
  using Args = avx512::TileArgs<Staged, Weights>;
  static constexpr int kMaxRows = 8;
  static constexpr int64_t kPanelBlocks = 4;
  static constexpr int blocks_for_rows(int mr) { return avx512::int4_blocks_for_rows(mr); }

  template <int MR, int NB, int J>
  K2_AVX512 static void k_step(const float* x, int64_t re, const __m512i (&v)[NB], const __m512 (&s)[NB],
                               __m512 (&acc)[MR][NB]) {
    for (int n = 0; n < NB; ++n) {
      const __m512 lo = _mm512_mul_ps(nibble_ps<8 * J>(v[n]), s[n]);
      const __m512 hi = _mm512_mul_ps(nibble_ps<8 * J + 4>(v[n]), s[n]);
      for (int m = 0; m < MR; ++m) {
        const float* xr = x + m * re;
        acc[m][n] = _mm512_fmadd_ps(lo, _mm512_set1_ps(xr[J]), acc[m][n]);
        acc[m][n] = _mm512_fmadd_ps(hi, _mm512_set1_ps(xr[J + 4]), acc[m][n]);
      }
    }
  }

  template <int MR, int NB>
  K2_AVX512 static void tile(const Args& a, int64_t b0) {
    const Int4Weights& w = *a.w;
    const int64_t octs_per_group = w.group / kInt4Oct, bb = w.block_bytes(), bs = w.block_scales();
    const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x88));
    const int64_t re = a.x->row_elems;
    const float* x = a.x->f32 + a.r0 * re;
    __m512 acc[MR][NB];
    avx512::zero_tile(acc);
    // Group by group: the scales load once per group, and no division per oct.
    for (int64_t g = 0; g < w.n_groups(); ++g) {
      __m512 s[NB];
      for (int n = 0; n < NB; ++n) {
        const __m256i sv =
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.scales + (b0 + n) * bs + g * kBlockN));
        s[n] = _mm512_castsi512_ps(_mm512_maskz_slli_epi32(kAll, _mm512_maskz_cvtepu16_epi32(kAll, sv), 16));
      }
      for (int64_t oc = g * octs_per_group; oc < (g + 1) * octs_per_group; ++oc) {
        __m512i v[NB];
        for (int n = 0; n < NB; ++n) {
          v[n] = _mm512_xor_si512(_mm512_loadu_si512(w.data + (b0 + n) * bb + oc * 64), flip);
        }
        const int64_t k0 = oc * kInt4Oct;
        k_step<MR, NB, 0>(x + k0, re, v, s, acc);
        k_step<MR, NB, 1>(x + k0, re, v, s, acc);
        k_step<MR, NB, 2>(x + k0, re, v, s, acc);
        k_step<MR, NB, 3>(x + k0, re, v, s, acc);
      }
    }
    store_tile<MR, NB>(acc, a.y, a.y_stride, w.out, b0);
  }
};

}  // namespace

void linear_int4_f32act_avx512(const StagedBf16& x, const Int4Weights& w, float* y, int64_t y_stride) {
  avx512::run_linear<Int4F32ActFormat>(x, w, y, y_stride);
}

void linear_bf16_f32act_avx512(const StagedBf16& x, const Bf16Weights& w, float* y, int64_t y_stride) {
  avx512::run_linear<Bf16F32ActFormat>(x, w, y, y_stride);
}

}  // namespace k2::cpu::detail
