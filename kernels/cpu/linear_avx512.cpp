// AVX-512 kernels for decode-sized M: vdpbf16ps on bf16 weights, vpdpbusd on int8 weights.
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
constexpr __mmask16 kAll = 0xffff;

constexpr int blocks_for_rows(int mr) { return mr <= 4 ? 4 : (mr <= 8 ? 2 : 1); }

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
  for (; b < nb; ++b) int8_tile<MR, 1>(a, b);
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

constexpr auto kBf16Table = make_row_table<Bf16Args, Bf16Rows>(std::make_index_sequence<kMaxRows>());
constexpr auto kInt8Table = make_row_table<Int8Args, Int8Rows>(std::make_index_sequence<kMaxRows>());

}  // namespace

void linear_bf16_avx512bf16(const float* x, int64_t x_stride, int64_t rows, const Bf16Weights& w, float* y,
                            int64_t y_stride) {
  check_linear_args(x_stride, rows, w.in, w.out, y_stride);
  const int64_t row_elems = w.k_pairs() * 2;
  Scratch& s = stage_bf16_activations(x, x_stride, rows, w.in, row_elems, /*widen=*/false);
  for (int64_t r = 0; r < rows; r += kMaxRows) {
    const Bf16Args a{s.bf16.data() + r * row_elems, row_elems, &w, y + r * y_stride, y_stride};
    kBf16Table[static_cast<size_t>(std::min<int64_t>(kMaxRows, rows - r) - 1)](a);
  }
}

void linear_int8_avx512vnni(const float* x, int64_t x_stride, int64_t rows, const Int8Weights& w, float* y,
                            int64_t y_stride) {
  check_linear_args(x_stride, rows, w.in, w.out, y_stride);
  const int64_t row_bytes = w.k_quads() * 4;
  Scratch& s = stage_int8_activations(x, x_stride, rows, w.in, row_bytes, /*for_vnni=*/true);
  for (int64_t r = 0; r < rows; r += kMaxRows) {
    const Int8Args a{s.i8.data() + r * row_bytes, row_bytes, s.row_scales.data() + r, &w, y + r * y_stride,
                     y_stride};
    kInt8Table[static_cast<size_t>(std::min<int64_t>(kMaxRows, rows - r) - 1)](a);
  }
}

}  // namespace k2::cpu::detail
