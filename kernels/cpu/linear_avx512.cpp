// AVX-512 kernels for decode-sized M: vdpbf16ps on bf16 weights, vpdpbusd on int8 and int4
// weights. Int4 uses vpdpbusd on int8-quantised activations rather than bf16 dots: two
// and/shift ops turn 64 bytes of nibbles into two vpdpbusd operands (128 MACs per row each),
// where widening nibbles to bf16 would take several conversions per 32 weights and run at
// half the rate (vdpbf16ps does 32 MACs per instruction, vpdpbusd 64).
// Up to 16 activation rows share every 64-byte weight load (weight stationary), so each
// weight byte is read from memory once per call for M <= 16. For small M several output
// blocks are processed together so enough independent accumulators hide the dot latency:
// accumulators = MR * NB <= 16 of the 32 zmm registers.
//
// Only the functions below carry the AVX-512 target attribute; the file itself is built for
// the project baseline, so nothing here leaks wider instructions into shared inline code.
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <utility>

#include "kernels/cpu/linear_impl.h"

#define K2_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,avx512vnni")))

namespace k2::cpu::detail {
namespace {

constexpr int kMaxRows = 16;
constexpr int kMaxInt4Rows = 16;
constexpr __mmask16 kAll = 0xffff;

// Output blocks per tile for MR rows: as many accumulators as the 32 zmm registers allow
// (MR·NB accumulators + NB weights + 1 broadcast), since vdpbf16ps / vpdpbusd need ~20
// independent chains to issue every cycle. One row stays at 4 streams (memory-bound).
constexpr int blocks_for_rows(int mr) {
  constexpr int kTable[] = {4, 4, 8, 6, 6, 5, 4, 3, 3};
  return mr <= 8 ? kTable[mr] : 1;
}

K2_AVX512 inline __m512i broadcast_u32(const void* p) {
  int32_t v;
  std::memcpy(&v, p, sizeof v);
  return _mm512_set1_epi32(v);
}

K2_AVX512 inline __mmask16 tail_mask(int64_t n_valid) {
  return n_valid >= kBlockN ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << n_valid) - 1u);
}

struct Bf16Args {
  const uint16_t* xb;  // [MR][row_elems] bf16 activations
  int64_t row_elems;
  const Bf16Weights* w;
  float* y;
  int64_t y_stride;
};

// Output blocks [b0, b0 + NB) for MR rows.
template <int MR, int NB>
K2_AVX512 void bf16_tile(const Bf16Args& a, int64_t b0) {
  const Bf16Weights& w = *a.w;
  const int64_t kp = w.k_pairs();
  const int64_t be = w.block_elems();
  const uint16_t* wb = w.data + b0 * be;
  __m512 acc[MR][NB];
  for (int m = 0; m < MR; ++m)
    for (int n = 0; n < NB; ++n) acc[m][n] = _mm512_setzero_ps();
  for (int64_t p = 0; p < kp; ++p) {
    __m512i wv[NB];
    for (int n = 0; n < NB; ++n) wv[n] = _mm512_loadu_si512(wb + n * be + p * 32);
    for (int m = 0; m < MR; ++m) {
      const __m512i xv = broadcast_u32(a.xb + m * a.row_elems + 2 * p);
      for (int n = 0; n < NB; ++n) {
        acc[m][n] = _mm512_dpbf16_ps(acc[m][n], reinterpret_cast<__m512bh>(wv[n]), reinterpret_cast<__m512bh>(xv));
      }
    }
  }
  for (int n = 0; n < NB; ++n) {
    const int64_t col0 = (b0 + n) * kBlockN;
    const __mmask16 mask = tail_mask(w.out - col0);
    for (int m = 0; m < MR; ++m) _mm512_mask_storeu_ps(a.y + m * a.y_stride + col0, mask, acc[m][n]);
  }
}

template <int MR>
K2_AVX512 void bf16_rows(const Bf16Args& a) {
  constexpr int kNb = blocks_for_rows(MR);
  const int64_t nb = a.w->n_blocks();
  int64_t b = 0;
  for (; b + kNb <= nb; b += kNb) bf16_tile<MR, kNb>(a, b);
  // The tail in tiles of 2 where possible: a 1-block tile has too few chains.
  if constexpr (kNb > 2) {
    for (; b + 2 <= nb; b += 2) bf16_tile<MR, 2>(a, b);
  }
  for (; b < nb; ++b) bf16_tile<MR, 1>(a, b);
}

struct Int8Args {
  const int8_t* xq;  // [MR][row_bytes] activations + 128 (u8)
  int64_t row_bytes;
  const float* x_scales;
  const Int8Weights* w;
  float* y;
  int64_t y_stride;
};

template <int MR, int NB>
K2_AVX512 void int8_tile(const Int8Args& a, int64_t b0) {
  const Int8Weights& w = *a.w;
  const int64_t kq = w.k_quads();
  const int64_t bb = w.block_bytes();
  const int8_t* wb = w.data + b0 * bb;
  __m512i acc[MR][NB];
  for (int m = 0; m < MR; ++m)
    for (int n = 0; n < NB; ++n) acc[m][n] = _mm512_setzero_si512();
  for (int64_t q = 0; q < kq; ++q) {
    __m512i wv[NB];
    for (int n = 0; n < NB; ++n) wv[n] = _mm512_loadu_si512(wb + n * bb + q * 64);
    for (int m = 0; m < MR; ++m) {
      const __m512i xv = broadcast_u32(a.xq + m * a.row_bytes + 4 * q);
      for (int n = 0; n < NB; ++n) acc[m][n] = _mm512_dpbusd_epi32(acc[m][n], xv, wv[n]);
    }
  }
  for (int n = 0; n < NB; ++n) {
    const int64_t col0 = (b0 + n) * kBlockN;
    const __mmask16 mask = tail_mask(w.out - col0);
    // sum (q_x + 128) q_w - 128 sum q_w = sum q_x q_w, exactly.
    // (maskz forms: GCC 12's unmasked ones warn about their own _mm512_undefined_* source)
    const __m512i offset = _mm512_maskz_slli_epi32(kAll, _mm512_loadu_si512(w.row_sums + col0), 7);
    const __m512 sw = _mm512_loadu_ps(w.scales + col0);
    for (int m = 0; m < MR; ++m) {
      const __m512 dot = _mm512_maskz_cvtepi32_ps(kAll, _mm512_sub_epi32(acc[m][n], offset));
      const __m512 v = _mm512_mul_ps(_mm512_mul_ps(dot, sw), _mm512_set1_ps(a.x_scales[m]));
      _mm512_mask_storeu_ps(a.y + m * a.y_stride + col0, mask, v);
    }
  }
}

template <int MR>
K2_AVX512 void int8_rows(const Int8Args& a) {
  constexpr int kNb = blocks_for_rows(MR);
  const int64_t nb = a.w->n_blocks();
  int64_t b = 0;
  for (; b + kNb <= nb; b += kNb) int8_tile<MR, kNb>(a, b);
  if constexpr (kNb > 2) {
    for (; b + 2 <= nb; b += 2) int8_tile<MR, 2>(a, b);
  }
  for (; b < nb; ++b) int8_tile<MR, 1>(a, b);
}

struct Int4Args {
  const StagedInt4* x;
  int64_t r0;  // first row of this call
  const Int4Weights* w;
  float* y;
  int64_t y_stride;
};

// bf16 scales of 16 outputs -> fp32 (exact).
K2_AVX512 inline __m512 load_bf16x16(const uint16_t* p) {
  const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  // (maskz forms: see int8_tile)
  return _mm512_castsi512_ps(_mm512_maskz_slli_epi32(kAll, _mm512_maskz_cvtepu16_epi32(kAll, v), 16));
}

// Nibbles are vpdpbusd's unsigned operand as they are (q_w + 8); each group's int32 sum
// starts at -8 * sum q_x so it ends as sum q_x q_w exactly.
template <int MR, int NB>
K2_AVX512 void int4_tile(const Int4Args& a, int64_t b0) {
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
  for (int m = 0; m < MR; ++m)
    for (int n = 0; n < NB; ++n) accf[m][n] = _mm512_setzero_ps();
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
        for (int n = 0; n < NB; ++n) acc[m][n] = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(acc[m][n], lo[n], x0), hi[n], x1);
      }
    }
    for (int n = 0; n < NB; ++n) {
      const __m512 sw = load_bf16x16(sb + n * bs + g * kBlockN);
      for (int m = 0; m < MR; ++m) {
        accf[m][n] = _mm512_fmadd_ps(_mm512_maskz_cvtepi32_ps(kAll, acc[m][n]), sw, accf[m][n]);
      }
    }
  }
  for (int n = 0; n < NB; ++n) {
    const int64_t col0 = (b0 + n) * kBlockN;
    const __mmask16 mask = tail_mask(w.out - col0);
    for (int m = 0; m < MR; ++m) {
      const __m512 v = _mm512_mul_ps(accf[m][n], _mm512_set1_ps(x.scales[a.r0 + m]));
      _mm512_mask_storeu_ps(a.y + m * a.y_stride + col0, mask, v);
    }
  }
}

// Two accumulator sets (int per group, fp32 across groups) per (row, block): fewer rows
// share a weight load than in the other formats before the 32 zmm registers run out.
constexpr int int4_blocks_for_rows(int mr) { return mr <= 2 ? 4 : (mr <= 4 ? 2 : 1); }

template <int MR>
K2_AVX512 void int4_rows(const Int4Args& a) {
  constexpr int kNb = int4_blocks_for_rows(MR);
  const int64_t nb = a.w->n_blocks();
  int64_t b = 0;
  for (; b + kNb <= nb; b += kNb) int4_tile<MR, kNb>(a, b);
  for (; b < nb; ++b) int4_tile<MR, 1>(a, b);
}

template <class Args, template <int> class Rows, size_t... I>
constexpr auto make_row_table(std::index_sequence<I...>) {
  return std::array<void (*)(const Args&), sizeof...(I)>{&Rows<static_cast<int>(I) + 1>::run...};
}

template <int MR>
struct Bf16Rows {
  static void run(const Bf16Args& a) { bf16_rows<MR>(a); }
};
template <int MR>
struct Int8Rows {
  static void run(const Int8Args& a) { int8_rows<MR>(a); }
};
template <int MR>
struct Int4Rows {
  static void run(const Int4Args& a) { int4_rows<MR>(a); }
};

constexpr auto kBf16Table = make_row_table<Bf16Args, Bf16Rows>(std::make_index_sequence<kMaxRows>());

// Many rows (batched decode, prefill): panels of kPanelBlocks output blocks stay in cache
// while every kPanelRows-row chunk of x passes over them, so the weights stream from memory
// once per call, and each k step issues 3 weight loads and 8 broadcasts for 24 dot products
// (a 16-row tile would issue 1 + 16 for 16). Same per-output sums as the row tiles.
constexpr int kPanelRows = 8;
constexpr int kPanelBlocks = 3;

template <int NB, size_t... I>
constexpr auto make_tile_table(std::index_sequence<I...>) {
  return std::array<void (*)(const Bf16Args&, int64_t), sizeof...(I)>{&bf16_tile<static_cast<int>(I) + 1, NB>...};
}
constexpr auto kPanelTiles = make_tile_table<kPanelBlocks>(std::make_index_sequence<kPanelRows>());
constexpr auto kPanelTailTiles = make_tile_table<1>(std::make_index_sequence<kPanelRows>());
constexpr auto kPanelTail2Tiles = make_tile_table<2>(std::make_index_sequence<kPanelRows>());

void bf16_panels(const StagedBf16& x, const Bf16Weights& w, float* y, int64_t y_stride) {
  const int64_t nb = w.n_blocks();
  for (int64_t b = 0; b < nb; b += kPanelBlocks) {
    const int64_t n = std::min<int64_t>(kPanelBlocks, nb - b);
    for (int64_t r = 0; r < x.rows; r += kPanelRows) {
      const auto m = static_cast<size_t>(std::min<int64_t>(kPanelRows, x.rows - r) - 1);
      const Bf16Args a{x.bf16 + r * x.row_elems, x.row_elems, &w, y + r * y_stride, y_stride};
      if (n == kPanelBlocks) {
        kPanelTiles[m](a, b);
      } else if (n == 2) {
        kPanelTail2Tiles[m](a, b);
      } else {
        kPanelTailTiles[m](a, b);
      }
    }
  }
}
constexpr auto kInt8Table = make_row_table<Int8Args, Int8Rows>(std::make_index_sequence<kMaxRows>());
constexpr auto kInt4Table = make_row_table<Int4Args, Int4Rows>(std::make_index_sequence<kMaxInt4Rows>());

}  // namespace

void linear_bf16_avx512bf16(const StagedBf16& x, const Bf16Weights& w, float* y, int64_t y_stride) {
  if (x.rows > kPanelRows) return bf16_panels(x, w, y, y_stride);
  for (int64_t r = 0; r < x.rows; r += kMaxRows) {
    const Bf16Args a{x.bf16 + r * x.row_elems, x.row_elems, &w, y + r * y_stride, y_stride};
    kBf16Table[static_cast<size_t>(std::min<int64_t>(kMaxRows, x.rows - r) - 1)](a);
  }
}

void linear_int8_avx512vnni(const StagedInt8& x, const Int8Weights& w, float* y, int64_t y_stride) {
  for (int64_t r = 0; r < x.rows; r += kMaxRows) {
    const Int8Args a{x.q + r * x.row_bytes, x.row_bytes, x.scales + r, &w, y + r * y_stride, y_stride};
    kInt8Table[static_cast<size_t>(std::min<int64_t>(kMaxRows, x.rows - r) - 1)](a);
  }
}

void linear_int4_avx512vnni(const StagedInt4& x, const Int4Weights& w, float* y, int64_t y_stride) {
  for (int64_t r = 0; r < x.rows; r += kMaxInt4Rows) {
    const Int4Args a{&x, r, &w, y + r * y_stride, y_stride};
    kInt4Table[static_cast<size_t>(std::min<int64_t>(kMaxInt4Rows, x.rows - r) - 1)](a);
  }
}

}  // namespace k2::cpu::detail
