// The CPU kernel table: one struct of function pointers per instruction-set level, chosen
// once per process (cpu_ops()) from active_isa(). Callers hold the table by reference and
// call through it; nothing is re-detected per call.
//
// Kernels are pure functions: they read x and the packed weights, write y, and use only a
// per-thread scratch buffer, so distinct threads may call them concurrently on disjoint y.
#pragma once

#include <cstdint>

#include "kernels/cpu/isa.h"
#include "kernels/cpu/packed.h"
#include "kernels/cpu/packed_fp8.h"

namespace k2::cpu {

// y[r, o] = sum_k x[r, k] * W[o, k] for r < rows, o < w.out, with x rounded to bf16 and
// fp32 accumulation. x: [rows, w.in] (row stride x_stride), y: [rows, w.out] (y_stride).
// Any rows >= 0 works; the fast paths are tuned for rows <= 16 (decode).
using LinearBf16Fn = void (*)(const float* x, int64_t x_stride, int64_t rows, const Bf16Weights& w, float* y,
                              int64_t y_stride);
// What a packed-weight linear does with its float32 activations: kReduced rounds them to
// bf16 (bf16 weights: vdpbf16ps, twice the MACs per instruction) or quantises them to int8
// per row (int8/int4 weights: vpdpbusd); kFloat32 keeps them and widens the weights
// instead (fp32 FMA), so only the summation order differs from the float32 path. Rounded
// activations flip router choices of the golden models (tests/data/models/README.md §8).
enum class ActivationPrecision { kReduced, kFloat32 };

// Same contract with int8 weights; x is quantised per row to int8 (symmetric, max|x|/127),
// the products summed exactly in int32 and scaled once per output.
using LinearInt8Fn = void (*)(const float* x, int64_t x_stride, int64_t rows, const Int8Weights& w, float* y,
                              int64_t y_stride);

// Same contract with group-quantised int4 weights: x is quantised per row to int8 as above,
// each group's products summed exactly in int32, scaled by the group's weight scale and
// summed in fp32 in group order, then scaled by the row's activation scale. The integer
// sums and that operation order are shared by every ISA, so all paths agree bit for bit.
using LinearInt4Fn = void (*)(const float* x, int64_t x_stride, int64_t rows, const Int4Weights& w, float* y,
                              int64_t y_stride);

// Same contract with FP8-block weights (packed_fp8.h) and x kept in float32: each weight is
// dequantised in registers exactly as the float32 path dequantises it (e4m3 times its block
// scale, one rounding) and multiplied by fp32 FMA, so y equals float32 x times the float32
// path's weights up to summation order.
using LinearFp8Fn = void (*)(const float* x, int64_t x_stride, int64_t rows, const Fp8Weights& w, float* y,
                             int64_t y_stride);

struct CpuOps {
  Isa isa = Isa::kScalar;
  const char* linear_bf16_name = "";
  const char* linear_int8_name = "";
  const char* linear_int4_name = "";
  const char* linear_bf16_f32act_name = "";
  const char* linear_fp8_name = "";
  LinearBf16Fn linear_bf16 = nullptr;
  // Same contract as linear_bf16 with x kept in float32: the bf16 weights are widened
  // (exactly) and multiplied by fp32 FMA, so y equals float32 x · W up to summation order.
  LinearBf16Fn linear_bf16_f32act = nullptr;
  LinearInt8Fn linear_int8 = nullptr;
  LinearInt4Fn linear_int4 = nullptr;
  // Same contract as linear_int4 with x kept in float32: each weight is dequantised exactly
  // (q times its group scale) in registers and multiplied by fp32 FMA (the fast path's
  // choice for an INT4 checkpoint's own weights, which are then exactly the float32 path's).
  LinearInt4Fn linear_int4_f32act = nullptr;
  LinearFp8Fn linear_fp8 = nullptr;
};

// The table for active_isa(), built on first use.
const CpuOps& cpu_ops();

// The table for a given level (for tests and benchmarks). The caller makes sure the CPU
// supports `isa` (isa <= best_isa(detect_features())); levels without a kernel of their own
// fall back to the next lower one (avx512 uses the AVX2 kernels; amx the AVX-512 ones).
CpuOps cpu_ops_for(Isa isa);

}  // namespace k2::cpu
