// Float32 GEMM for the vision encoder: c = a · B (+ bias) (+ c), with B packed once.
//
// The text model's CPU kernels (kernels/cpu) round activations to bf16 and are tuned for
// decode (a few rows against a streamed weight); the vision tower instead multiplies
// hundreds to thousands of patch rows by each weight and must stay float32 to meet the
// golden set's 5e-5 tolerances (tests/data/models/tiny-k25-vision/README.md §10). So this is
// a compute-bound register-blocked GEMM (GotoBLAS-style): B in panels of kPanelN = 32
// columns, k-major inside a panel ([panel][k][32], columns past n zero); a is repacked per
// call into micro-panels of kTileM = 12 rows ([tile][k][12]); a 12 x 32 micro-kernel
// (24 zmm accumulators on AVX-512, four 6 x 16 ymm passes on AVX2) runs over blocks of
// kBlockK k-steps so one B micro-panel stays in L1 while the a block sits in L2.
// The kernel is picked once per process from cpu::active_isa() (K2_ISA lowers it).
//
// Accumulation is float32 in k order within a block, blocks summed in order: the result
// differs from the scalar reference by rounding only (~1e-6 relative).
//
// PackedMatrix owns its panels; it is immutable after packing and may be read by any
// number of threads. gemm() keeps per-thread scratch (thread_local) and is safe to call
// concurrently on disjoint outputs; with a pool it splits the work over the pool's threads
// (a call from inside one of that pool's tasks runs inline, see cpu::ThreadPool).
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/cpu/isa.h"
#include "kernels/cpu/thread_pool.h"

namespace k2::vision {

inline constexpr int64_t kPanelN = 32;
inline constexpr int64_t kTileM = 12;
inline constexpr int64_t kBlockK = 256;

class PackedMatrix {
 public:
  PackedMatrix() = default;
  // B = wᵀ for w [n, k] with row stride ld: the [out, in] weight layout (y = x · wᵀ).
  void pack_transposed(const float* w, int64_t ld, int64_t n, int64_t k);
  // B = b for b [k, n] with row stride ld.
  void pack(const float* b, int64_t ld, int64_t k, int64_t n);

  int64_t k() const { return k_; }
  int64_t n() const { return n_; }
  int64_t panels() const { return (n_ + kPanelN - 1) / kPanelN; }
  const float* panel(int64_t p) const { return data_.data() + p * k_ * kPanelN; }
  size_t bytes() const { return data_.size() * sizeof(float); }

 private:
  void reset(int64_t k, int64_t n);
  std::vector<float> data_;  // [panels][k][kPanelN]
  int64_t k_ = 0, n_ = 0;
};

enum class GemmOut {
  kStore,  // c = a · B + bias
  kAdd,    // c += a · B + bias
};

// c[m, n] (row stride ldc) from a[m, B.k()] (row stride lda); bias [B.n()] or null. Runs on
// `pool` when given (and the work is large enough), else on the calling thread.
void gemm(const float* a, int64_t lda, int64_t m, const PackedMatrix& b, const float* bias, float* c, int64_t ldc,
          GemmOut out, cpu::ThreadPool* pool, cpu::Isa isa = cpu::active_isa());

// Vectorised elementwise helpers of the tower (AVX2, the project baseline), within a few
// float32 ulps of the std:: functions they replace.
// x[i] = exp(x[i] · scale − max) / Σ, the softmax of one row of n scores times scale.
void softmax_scaled(float* x, int64_t n, float scale);
// out[i] = 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))); out may alias x.
void gelu_tanh(const float* x, int64_t n, float* out);

}  // namespace k2::vision
