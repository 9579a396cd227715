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
// Same tiling as linear_avx512.cpp: weight stationary, MR rows x NB blocks of
// accumulators; many rows go through cache-resident panels of blocks.
// Only the functions below carry the AVX-512 target attribute.
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <utility>

#include "kernels/cpu/linear_impl.h"

#define K2_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq")))

namespace k2::cpu::detail {
namespace {

constexpr int kMaxRows = 8;
constexpr __mmask16 kAll = 0xffff;

// Output blocks per tile for MR rows: MR·NB accumulators + 2·NB widened weights + one
// broadcast must fit the 32 zmm registers; one or two rows are memory-bound and keep four
// blocks (enough independent FMA chains to cover the latency).
constexpr int blocks_for_rows(int mr) {
  constexpr int kTable[] = {4, 4, 4, 4, 4, 3, 3, 3, 3};
  return kTable[mr];
}

K2_AVX512 inline __mmask16 tail_mask(int64_t n_valid) {
  return n_valid >= kBlockN ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << n_valid) - 1u);
}

struct F32Args {
  const float* x;  // [MR][row_elems] float32 activations (row_elems even, zero-padded)
  int64_t row_elems;
  const Bf16Weights* w;
  float* y;
  int64_t y_stride;
};

// Output blocks [b0, b0 + NB) for MR rows.
template <int MR, int NB>
K2_AVX512 void f32act_tile(const F32Args& a, int64_t b0) {
  const Bf16Weights& w = *a.w;
  const int64_t kp = w.k_pairs();
  const int64_t be = w.block_elems();
  const uint16_t* wb = w.data + b0 * be;
  const __m512i hi_mask = _mm512_set1_epi32(static_cast<int32_t>(0xffff0000u));
  __m512 acc[MR][NB];
  for (int m = 0; m < MR; ++m)
    for (int n = 0; n < NB; ++n) acc[m][n] = _mm512_setzero_ps();
  for (int64_t p = 0; p < kp; ++p) {
    __m512 we[NB], wo[NB];  // k = 2p and k = 2p + 1 of the block's 16 outputs, as fp32
    for (int n = 0; n < NB; ++n) {
      const __m512i v = _mm512_loadu_si512(wb + n * be + p * 32);
      // (maskz form: GCC 12's unmasked one warns about its own _mm512_undefined_* source)
      we[n] = _mm512_castsi512_ps(_mm512_maskz_slli_epi32(kAll, v, 16));
      wo[n] = _mm512_castsi512_ps(_mm512_and_si512(v, hi_mask));
    }
    for (int m = 0; m < MR; ++m) {
      const float* xr = a.x + m * a.row_elems + 2 * p;
      const __m512 x0 = _mm512_set1_ps(xr[0]);
      for (int n = 0; n < NB; ++n) acc[m][n] = _mm512_fmadd_ps(we[n], x0, acc[m][n]);
      const __m512 x1 = _mm512_set1_ps(xr[1]);
      for (int n = 0; n < NB; ++n) acc[m][n] = _mm512_fmadd_ps(wo[n], x1, acc[m][n]);
    }
  }
  for (int n = 0; n < NB; ++n) {
    const int64_t col0 = (b0 + n) * kBlockN;
    const __mmask16 mask = tail_mask(w.out - col0);
    for (int m = 0; m < MR; ++m) _mm512_mask_storeu_ps(a.y + m * a.y_stride + col0, mask, acc[m][n]);
  }
}

template <int MR>
K2_AVX512 void f32act_rows(const F32Args& a) {
  constexpr int kNb = blocks_for_rows(MR);
  const int64_t nb = a.w->n_blocks();
  int64_t b = 0;
  for (; b + kNb <= nb; b += kNb) f32act_tile<MR, kNb>(a, b);
  for (; b + 2 <= nb; b += 2) f32act_tile<MR, 2>(a, b);
  for (; b < nb; ++b) f32act_tile<MR, 1>(a, b);
}

template <int MR>
struct F32ActRows {
  static void run(const F32Args& a) { f32act_rows<MR>(a); }
};

template <size_t... I>
constexpr auto make_row_table(std::index_sequence<I...>) {
  return std::array<void (*)(const F32Args&), sizeof...(I)>{&F32ActRows<static_cast<int>(I) + 1>::run...};
}
constexpr auto kRowTable = make_row_table(std::make_index_sequence<kMaxRows>());

// Many rows: panels of kPanelBlocks output blocks (3 x 16 outputs x in x 2 bytes: 96 KB at
// in = 1024, L2-resident) stay in cache while every kMaxRows-row chunk of x passes over
// them, so the weights stream from memory once per call.
constexpr int64_t kPanelBlocks = 3;

void f32act_panels(const StagedBf16& x, const Bf16Weights& w, float* y, int64_t y_stride) {
  const int64_t nb = w.n_blocks();
  for (int64_t b = 0; b < nb; b += kPanelBlocks) {
    const Bf16Weights panel = slice_blocks(w, b, std::min(kPanelBlocks, nb - b));
    for (int64_t r = 0; r < x.rows; r += kMaxRows) {
      const F32Args a{x.f32 + r * x.row_elems, x.row_elems, &panel, y + r * y_stride + b * kBlockN, y_stride};
      kRowTable[static_cast<size_t>(std::min<int64_t>(kMaxRows, x.rows - r) - 1)](a);
    }
  }
}

// int4: bytes of one 64-byte load (16 outputs x 8 k); output l's 32-bit lane holds k
// oct·8 + j in bits 8j..8j+3 and k oct·8 + 4 + j in bits 8j+4..8j+7 (j < 4), each q + 8.
struct Int4F32Args {
  const float* x;  // [MR][row_elems] float32 activations
  int64_t row_elems;
  const Int4Weights* w;
  float* y;
  int64_t y_stride;
};

// Lane values of the nibble at bit kShift as fp32 q (maskz forms: see the bf16 tile; the XOR with 8 made every nibble the
// signed 4-bit q; moving it to the top and shifting back arithmetically sign-extends it).
template <int kShift>
K2_AVX512 inline __m512 nibble_ps(__m512i v) {
  const __m512i top = kShift == 28 ? v : _mm512_maskz_slli_epi32(kAll, v, 28 - kShift);
  return _mm512_maskz_cvtepi32_ps(kAll, _mm512_maskz_srai_epi32(kAll, top, 28));
}

template <int MR, int NB, int J>
K2_AVX512 inline void int4_k(const Int4F32Args& a, const __m512i (&v)[NB], const __m512 (&s)[NB], int64_t k0,
                             __m512 (&acc)[MR][NB]) {
  for (int n = 0; n < NB; ++n) {
    const __m512 lo = _mm512_mul_ps(nibble_ps<8 * J>(v[n]), s[n]);
    const __m512 hi = _mm512_mul_ps(nibble_ps<8 * J + 4>(v[n]), s[n]);
    for (int m = 0; m < MR; ++m) {
      const float* xr = a.x + m * a.row_elems + k0;
      acc[m][n] = _mm512_fmadd_ps(lo, _mm512_set1_ps(xr[J]), acc[m][n]);
      acc[m][n] = _mm512_fmadd_ps(hi, _mm512_set1_ps(xr[J + 4]), acc[m][n]);
    }
  }
}

template <int MR, int NB>
K2_AVX512 void int4_f32act_tile(const Int4F32Args& a, int64_t b0) {
  const Int4Weights& w = *a.w;
  const int64_t octs_per_group = w.group / kInt4Oct, bb = w.block_bytes(), bs = w.block_scales();
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x88));
  __m512 acc[MR][NB];
  for (int m = 0; m < MR; ++m)
    for (int n = 0; n < NB; ++n) acc[m][n] = _mm512_setzero_ps();
  for (int64_t oc = 0; oc < w.k_octs(); ++oc) {
    const int64_t g = oc / octs_per_group;
    __m512i v[NB];
    __m512 s[NB];
    for (int n = 0; n < NB; ++n) {
      v[n] = _mm512_xor_si512(_mm512_loadu_si512(w.data + (b0 + n) * bb + oc * 64), flip);
      const __m256i sv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.scales + (b0 + n) * bs + g * kBlockN));
      s[n] = _mm512_castsi512_ps(_mm512_maskz_slli_epi32(kAll, _mm512_maskz_cvtepu16_epi32(kAll, sv), 16));
    }
    const int64_t k0 = oc * kInt4Oct;
    int4_k<MR, NB, 0>(a, v, s, k0, acc);
    int4_k<MR, NB, 1>(a, v, s, k0, acc);
    int4_k<MR, NB, 2>(a, v, s, k0, acc);
    int4_k<MR, NB, 3>(a, v, s, k0, acc);
  }
  for (int n = 0; n < NB; ++n) {
    const int64_t col0 = (b0 + n) * kBlockN;
    const __mmask16 mask = tail_mask(w.out - col0);
    for (int m = 0; m < MR; ++m) _mm512_mask_storeu_ps(a.y + m * a.y_stride + col0, mask, acc[m][n]);
  }
}

template <int MR>
K2_AVX512 void int4_f32act_rows(const Int4F32Args& a) {
  constexpr int kNb = MR <= 2 ? 4 : (MR <= 4 ? 2 : 1);
  const int64_t nb = a.w->n_blocks();
  int64_t b = 0;
  for (; b + kNb <= nb; b += kNb) int4_f32act_tile<MR, kNb>(a, b);
  for (; b < nb; ++b) int4_f32act_tile<MR, 1>(a, b);
}

template <int MR>
struct Int4F32ActRows {
  static void run(const Int4F32Args& a) { int4_f32act_rows<MR>(a); }
};

template <size_t... I>
constexpr auto make_int4_table(std::index_sequence<I...>) {
  return std::array<void (*)(const Int4F32Args&), sizeof...(I)>{&Int4F32ActRows<static_cast<int>(I) + 1>::run...};
}
constexpr auto kInt4Table = make_int4_table(std::make_index_sequence<kMaxRows>());

// Panels of blocks, as f32act_panels.
constexpr int64_t kInt4PanelBlocks = 4;

}  // namespace

void linear_int4_f32act_avx512(const StagedBf16& x, const Int4Weights& w, float* y, int64_t y_stride) {
  const int64_t nb = w.n_blocks();
  const int64_t panel_blocks = x.rows > kMaxRows ? kInt4PanelBlocks : nb;
  for (int64_t b = 0; b < nb; b += panel_blocks) {
    const Int4Weights panel = slice_blocks(w, b, std::min(panel_blocks, nb - b));
    for (int64_t r = 0; r < x.rows; r += kMaxRows) {
      const Int4F32Args a{x.f32 + r * x.row_elems, x.row_elems, &panel, y + r * y_stride + b * kBlockN, y_stride};
      kInt4Table[static_cast<size_t>(std::min<int64_t>(kMaxRows, x.rows - r) - 1)](a);
    }
  }
}

void linear_bf16_f32act_avx512(const StagedBf16& x, const Bf16Weights& w, float* y, int64_t y_stride) {
  if (x.rows == 0) return;
  if (x.rows > kMaxRows) return f32act_panels(x, w, y, y_stride);
  const F32Args a{x.f32, x.row_elems, &w, y, y_stride};
  kRowTable[static_cast<size_t>(x.rows - 1)](a);
}

}  // namespace k2::cpu::detail
