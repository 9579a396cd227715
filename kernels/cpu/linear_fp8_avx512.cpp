// AVX-512 kernel for FP8-block weights (packed_fp8.h) with float32 activations.
//
// Per k and 16-output block: one 16-byte load sign-extended to 16 dwords (vpmovsxbd), a
// shift by 20 and a mask (sign | (byte & 0x7f) << 20: the e4m3 value times 2^-120, exact,
// as a normal or subnormal float), one multiply by the block's scale pre-multiplied by 2^120
// (the float32 path's dequantised weight, same single rounding), then one fp32 FMA per row.
// So y equals float32 x times the dequantised weights up to summation order (in fact the
// scalar kernel's k order, bit for bit). The widening is shared by every row of a tile.
//
// Cost at decode (one row): 5 vector ops per 16 weights = 16 bytes, about 2.5 cycles on two
// 512-bit ports, i.e. ~6 bytes/cycle per core: above the per-core share of DRAM bandwidth,
// so the kernel still streams at memory speed while reading a quarter of the float32 bytes.
//
// Tiling as linear_bf16_f32act_avx512.cpp (the shared driver, tile_driver_avx512.h): MR rows
// x NB blocks of accumulators, many rows in cache-resident panels of blocks. Only the
// functions below carry the AVX-512 attribute.
#include <immintrin.h>

#include <algorithm>

#include "kernels/cpu/linear_impl.h"
#include "kernels/cpu/tile_driver_avx512.h"

#define K2_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq")))

namespace k2::cpu::detail {
namespace {

using avx512::kAll;

// e4m3 bytes of one k of a block -> e4m3 value · 2^-120 as fp32 (maskz forms: GCC 12's
// unmasked ones warn about their own _mm512_undefined_* source).
K2_AVX512 inline __m512 widen_e4m3(const uint8_t* p, __m512i keep) {
  const __m512i sx = _mm512_maskz_cvtepi8_epi32(kAll, _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  return _mm512_castsi512_ps(_mm512_and_si512(_mm512_maskz_slli_epi32(kAll, sx, 20), keep));
}

struct Fp8Format {
  using Staged = StagedBf16;
  using Weights = Fp8Weights;
  using Args = avx512::TileArgs<Staged, Weights>;
  static constexpr int kMaxRows = 8;
  // 4 x 16 outputs x in bytes: 64 KB at in = 1024, L2-resident.
  static constexpr int64_t kPanelBlocks = 4;
  // MR·NB accumulators + NB widened weights + NB scales + the mask and a broadcast fit the
  // 32 zmm registers.
  static constexpr int blocks_for_rows(int mr) {
    constexpr int kTable[] = {4, 4, 4, 4, 4, 3, 3, 2, 2};
    return kTable[mr];
  }

  template <int MR, int NB>
  K2_AVX512 static void tile(const Args& a, int64_t b0) {
    const Fp8Weights& w = *a.w;
    const int64_t bb = w.block_bytes(), bs = w.block_scales();
    const uint8_t* wb = w.data + b0 * bb;
    const __m512i keep = _mm512_set1_epi32(static_cast<int32_t>(0x87f00000u));
    const int64_t re = a.x->row_elems;
    const float* x = a.x->f32 + a.r0 * re;
    __m512 acc[MR][NB];
    avx512::zero_tile(acc);
    for (int64_t g = 0; g < w.n_groups(); ++g) {
      __m512 s[NB];
      for (int n = 0; n < NB; ++n) s[n] = _mm512_set1_ps(w.scales[(b0 + n) * bs + g]);
      const int64_t k_end = std::min(w.in, (g + 1) * w.group);
      for (int64_t k = g * w.group; k < k_end; ++k) {
        __m512 wv[NB];
        for (int n = 0; n < NB; ++n) wv[n] = _mm512_mul_ps(widen_e4m3(wb + n * bb + k * kBlockN, keep), s[n]);
        for (int m = 0; m < MR; ++m) {
          const __m512 xb = _mm512_set1_ps(x[m * re + k]);
          for (int n = 0; n < NB; ++n) acc[m][n] = _mm512_fmadd_ps(wv[n], xb, acc[m][n]);
        }
      }
    }
    avx512::store_tile<MR, NB>(acc, a.y, a.y_stride, w.out, b0);
  }
};

}  // namespace

void linear_fp8_avx512(const StagedBf16& x, const Fp8Weights& w, float* y, int64_t y_stride) {
  avx512::run_linear<Fp8Format>(x, w, y, y_stride);
}

}  // namespace k2::cpu::detail
