// Internal to kernels/cpu: the one AVX-512 tile driver behind every weight-stationary linear
// kernel (linear_avx512.cpp, linear_bf16_f32act_avx512.cpp, linear_fp8_avx512.cpp). Include
// only from kernels/cpu/*.cpp.
//
// A format supplies only its microkernel, as a policy struct F:
//   using Staged = ...; using Weights = ...;  // the format's staged activations and weights
//   static constexpr int kMaxRows;         // rows per chunk (size of the row table)
//   static constexpr int64_t kPanelBlocks; // > kMaxRows rows: blocks per cache-resident panel
//                                          // (0: no panels, every chunk streams the whole matrix)
//   static constexpr int blocks_for_rows(int mr);  // blocks per tile for mr rows (registers)
//   template <int MR, int NB>                       // rows [r0, r0 + MR) x blocks [b0, b0 + NB)
//   static void tile(const TileArgs<Staged, Weights>&, int64_t b0);
// The driver owns the rest: the table of row counts, the block loop with its narrower tail
// tiles, the row chunks and the panels. Every output's sum is the tile's own k loop, so how
// the driver cuts rows and blocks never changes a result.
//
// Stateless templates; thread-safe on disjoint outputs.
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <utility>

#include "kernels/cpu/packed.h"

namespace k2::cpu::detail::avx512 {

// One call of a tile: a chunk of rows against one panel of blocks.
template <class Staged, class Weights>
struct TileArgs {
  const Staged* x;   // every staged row of the call
  int64_t r0;        // the chunk's first row
  const Weights* w;  // the panel (its output 0 is y's column 0)
  float* y;          // row r0 of the output, at the panel's first column
  int64_t y_stride;
};

// Every lane: the zero-masking intrinsics' mask where nothing is masked.
inline constexpr __mmask16 kAll = 0xffff;

// Blocks per tile for the int4 formats (int8 and f32 activations alike): they keep two
// accumulator sets or a scale per block, so fewer rows share a weight load than in the
// other formats before the 32 zmm registers run out.
constexpr int int4_blocks_for_rows(int mr) { return mr <= 2 ? 4 : (mr <= 4 ? 2 : 1); }

// Lanes of a 16-output block that hold real outputs (the last block may be partial).
__attribute__((target("avx512f"))) inline __mmask16 tail_mask(int64_t n_valid) {
  return n_valid >= kBlockN ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << n_valid) - 1u);
}

template <int MR, int NB>
__attribute__((target("avx512f"))) inline void zero_tile(__m512 (&acc)[MR][NB]) {
  for (int m = 0; m < MR; ++m)
    for (int n = 0; n < NB; ++n) acc[m][n] = _mm512_setzero_ps();
}

// Stores acc[m][n] to y row m, outputs of block b0 + n, masked to the matrix's `out` outputs.
template <int MR, int NB>
__attribute__((target("avx512f"))) inline void store_tile(const __m512 (&acc)[MR][NB], float* y, int64_t y_stride,
                                                          int64_t out, int64_t b0) {
  for (int n = 0; n < NB; ++n) {
    const int64_t col0 = (b0 + n) * kBlockN;
    const __mmask16 mask = tail_mask(out - col0);
    for (int m = 0; m < MR; ++m) _mm512_mask_storeu_ps(y + m * y_stride + col0, mask, acc[m][n]);
  }
}

// Every block of the chunk's panel for MR rows: tiles of min(F::blocks_for_rows(MR), kCap)
// blocks, then tiles of 2 and of 1 for the rest (a 1-block tile has too few chains).
template <class F>
using ArgsOf = TileArgs<typename F::Staged, typename F::Weights>;

// Baseline code: it only loops and calls the tiles, which carry their format's target.
template <class F, int MR, int kCap>
void run_rows(const ArgsOf<F>& a) {
  constexpr int kNb = std::min(F::blocks_for_rows(MR), kCap);
  const int64_t nb = a.w->n_blocks();
  int64_t b = 0;
  for (; b + kNb <= nb; b += kNb) F::template tile<MR, kNb>(a, b);
  if constexpr (kNb > 2) {
    for (; b + 2 <= nb; b += 2) F::template tile<MR, 2>(a, b);
  }
  if constexpr (kNb > 1) {
    for (; b < nb; ++b) F::template tile<MR, 1>(a, b);
  }
}

template <class F, int kCap, size_t... I>
constexpr auto make_row_table(std::index_sequence<I...>) {
  return std::array<void (*)(const ArgsOf<F>&), sizeof...(I)>{&run_rows<F, static_cast<int>(I) + 1, kCap>...};
}

// y[r, :] = x[r, :] · Wᵀ for every staged row. Up to kMaxRows rows: one pass of the row
// table over the whole matrix. More: panels of kPanelBlocks blocks stay in cache while every
// kMaxRows-row chunk passes over them, so the weights stream from memory once per call.
template <class F>
void run_linear(const typename F::Staged& x, const typename F::Weights& w, float* y, int64_t y_stride) {
  static constexpr auto kWhole = make_row_table<F, 64>(std::make_index_sequence<F::kMaxRows>());
  static constexpr auto kPanel =
      make_row_table<F, static_cast<int>(F::kPanelBlocks > 0 ? F::kPanelBlocks : 64)>(
          std::make_index_sequence<F::kMaxRows>());
  if (x.rows <= 0) return;
  const int64_t nb = w.n_blocks();
  const bool panels = x.rows > F::kMaxRows && F::kPanelBlocks > 0;
  const int64_t panel_blocks = panels ? F::kPanelBlocks : nb;
  const auto& table = panels ? kPanel : kWhole;
  for (int64_t b = 0; b < nb; b += panel_blocks) {
    const typename F::Weights panel = slice_blocks(w, b, std::min(panel_blocks, nb - b));
    for (int64_t r = 0; r < x.rows; r += F::kMaxRows) {
      const ArgsOf<F> a{&x, r, &panel, y + r * y_stride + b * kBlockN, y_stride};
      table[static_cast<size_t>(std::min<int64_t>(F::kMaxRows, x.rows - r) - 1)](a);
    }
  }
}

}  // namespace k2::cpu::detail::avx512
