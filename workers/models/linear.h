// Linear: one weight matrix [out, in] in the layout the forward pass reads it in, and
// y = x · Wᵀ over it. The float32 layout runs the scalar reference (kernels/ref), exact
// against the goldens; bf16 and int8 are packed once at load into the CPU kernels'
// weight-stationary blocks (kernels/cpu/packed.h) and run the kernel chosen for this CPU.
//
// bf16 keeps the activations in float32 (weights widened in registers, fp32 FMA): at
// decode the weight bytes bound the time, so this costs nothing there, and rounding the
// activations to bf16 perturbs router scores enough to flip expert choices, which moves
// the logits by whole units (tests/data/models/README.md §8). A bf16 request also keeps a
// float matrix whose values bf16 cannot hold exactly (e.g. a dequantised FP8-block matrix
// that does not fit the fp8 layout below) in float32, so the fast path never changes a
// weight; float32 Linears then run the reference-exact kernel over the thread pool.
//
// An FP8-block checkpoint's matrices under a bf16 request are kept as FP8 (kFp8: one byte
// per weight plus a float scale per 16 outputs and input block, kernels/cpu/packed_fp8.h)
// and run with float32 activations: the kernel dequantises each weight in registers exactly
// as the float32 path does, so only the summation order differs, at a quarter of float32's
// bytes (and half of bf16's).
//
// int4 (group-quantised, q in [-8, 7] with a bf16 scale per group) is either repacked
// straight from an INT4 pack-quantized checkpoint (then run with float32 activations, so
// the checkpoint's model is computed as the float32 path does) or quantised from float at
// load (then run with int8 activations on vpdpbusd).
//
// A Linear owns its weights (the float copy is dropped once packed); forward() is const
// and safe from any number of threads on disjoint outputs. Packed layouts split their output
// blocks over the ThreadPool of the innermost ParallelScope on the calling thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "kernels/cpu/ops.h"
#include "kernels/cpu/packed.h"
#include "kernels/cpu/packed_fp8.h"
#include "kernels/cpu/thread_pool.h"
#include "shm/status.h"
#include "workers/loader/convert.h"

namespace k2 {

// kFp8 is never requested: the loader picks it for an FP8-block checkpoint's matrices when
// the request is kBf16 (see WeightLoader::linear).
enum class WeightLayout { kF32, kBf16, kInt8, kInt4, kFp8 };

const char* weight_layout_name(WeightLayout f);

// Which layout each class of weight is kept in. vLLM's --dtype picks the dense one
// (float32, or bfloat16 for auto/bfloat16); --quantization picks the routed experts'.
struct WeightLayouts {
  WeightLayout dense = WeightLayout::kF32;    // attention, dense MLPs, shared experts, lm_head
  WeightLayout experts = WeightLayout::kF32;  // routed experts
  int64_t int4_group = 32;                    // kInt4 quantised from float: inputs per scale
  bool exact() const { return dense == WeightLayout::kF32 && experts == WeightLayout::kF32; }
};

// vLLM's --dtype and --quantization as layouts: float32 (or float) keeps every weight
// float32, the exact reference path; auto and bfloat16 pack the dense weights to bf16;
// --quantization int8 / int4 packs the routed experts to int8 / int4 (without it they follow
// the dense layout). An empty `quantization` means none.
Result<WeightLayouts> weight_layouts_for(std::string_view dtype, std::string_view quantization);

// Packed Linear layers called on this thread split their work over `pool` until the scope
// ends (scopes nest; without one they run on the calling thread alone).
class ParallelScope {
 public:
  explicit ParallelScope(cpu::ThreadPool* pool);
  ~ParallelScope();
  ParallelScope(const ParallelScope&) = delete;
  ParallelScope& operator=(const ParallelScope&) = delete;

 private:
  cpu::ThreadPool* previous_;
};

// The pool of the innermost ParallelScope on this thread, or null.
cpu::ThreadPool* parallel_pool();

// fn(i) for i in [0, n): over the current pool when there is one (a Linear called inside fn
// then runs on its task's thread alone: nested calls run inline), else in order here.
template <class Fn>
void parallel_tasks(int64_t n, Fn&& fn) {
  if (cpu::ThreadPool* pool = parallel_pool(); pool != nullptr && n > 1) {
    pool->parallel_for(n, [&](int64_t i, int) { fn(i); });
    return;
  }
  for (int64_t i = 0; i < n; ++i) fn(i);
}

class Linear {
 public:
  Linear() = default;
  // w: [out, in] float32. Packs it unless `layout` is kF32.
  static Linear from(TensorF32 w, WeightLayout layout);
  // w: [out, in] float32 quantised to int4 in groups of `group` inputs.
  static Result<Linear> int4_from(TensorF32 w, int64_t group);
  // An INT4 pack-quantized checkpoint tensor repacked as is: packed [out, in / 8] int32,
  // scales [out, in / group].
  static Result<Linear> int4_from_packed(const int32_t* packed, const float* scales, int64_t out, int64_t in,
                                         int64_t group);
  // Weights already packed (the loader's streamed conversion).
  static Linear from_packed(cpu::PackedBf16 w);
  static Linear from_packed(cpu::PackedInt8 w);
  static Linear from_packed(cpu::PackedFp8 w);
  // Rows [first, first + count) of w [out, in] as a matrix of their own.
  static Linear from_rows(const TensorF32& w, int64_t first, int64_t count, WeightLayout layout);
  // The transpose of rows [first, first + count) of w: a [in, count] matrix.
  static Linear from_rows_transposed(const TensorF32& w, int64_t first, int64_t count, WeightLayout layout);

  // y[r, o] = Σ_k x[r, k] · W[o, k] for r < rows, o < out().
  void forward(const float* x, int64_t x_stride, int64_t rows, float* y, int64_t y_stride) const;
  void forward(const float* x, int64_t rows, float* y) const { forward(x, in_, rows, y, out_); }

  int64_t out() const { return out_; }
  int64_t in() const { return in_; }
  WeightLayout layout() const { return layout_; }
  // Bytes one forward reads from the weights (for roofline figures and memory reports).
  size_t bytes() const;

 private:
  static Linear pack(const float* w, int64_t out, int64_t in, WeightLayout layout);
  void forward_f32_threaded(cpu::ThreadPool& pool, const float* x, int64_t x_stride, int64_t rows, float* y,
                            int64_t y_stride) const;
  // This bf16 or fp8 Linear as a float32 one (exact).
  Linear widened() const;

  WeightLayout layout_ = WeightLayout::kF32;
  int64_t out_ = 0, in_ = 0;
  std::vector<float> f32_;  // [out, in], kF32 only
  friend class GateUpLinear;
  cpu::PackedBf16 bf16_;
  cpu::PackedInt8 int8_;
  cpu::PackedInt4 int4_;
  cpu::PackedFp8 fp8_;
  // int4 from a checkpoint: float32 activations (exact weights, exact inputs); quantised at
  // load (--quantization int4): int8 activations, like the weights an approximation.
  cpu::ActivationPrecision int4_act_ = cpu::ActivationPrecision::kReduced;
};

// The gate and up projections of a SwiGLU MLP as one matrix: packed layouts interleave their
// blocks (kernels/cpu/gate_up.h) so forward() streams both in one pass and applies the
// SiLU-mul on the fly; the float32 layout keeps them apart and runs the reference ops.
// Owns its weights; forward() is const and safe from any number of threads.
class GateUpLinear {
 public:
  GateUpLinear() = default;
  // gate, up: [width, in] in the same layout.
  static Result<GateUpLinear> from(Linear gate, Linear up);
  // h[r, j] = silu(gate(x)[r, j]) * up(x)[r, j]; x: [rows, in], h: [rows, width].
  void forward(const float* x, int64_t rows, float* h) const;
  int64_t width() const { return width_; }
  size_t bytes() const;

 private:
  WeightLayout layout_ = WeightLayout::kF32;
  int64_t width_ = 0, in_ = 0;
  Linear gate_, up_;  // kF32 only
  cpu::PackedBf16 bf16_;
  cpu::PackedInt8 int8_;
  cpu::PackedInt4 int4_;
  cpu::PackedFp8 fp8_;
  cpu::ActivationPrecision int4_act_ = cpu::ActivationPrecision::kReduced;  // as Linear's
};

}  // namespace k2
