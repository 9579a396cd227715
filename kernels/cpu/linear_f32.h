// Float32 linear layer with the reference's exact arithmetic: every output is the same
// 8-lane dot product as ref::linear (kernels/ref/dense.h), operation for operation, so the
// result is bit-identical; only several outputs' dependency chains are interleaved, which
// ref::linear's one-dot-at-a-time loop leaves to the FMA latency. For float32 layers that
// must not change numerics on the fast path (the MoE router: expert choice is where a
// rounding difference would change the output most).
//
// Pure function; thread-safe on disjoint outputs.
#pragma once

#include <cstdint>

namespace k2::cpu {

// y = x · Wᵀ; x: [rows, in] (x_stride), w: [out, in] (w_stride), y: [rows, out] (y_stride).
void linear_f32_exact(const float* x, int64_t x_stride, const float* w, int64_t w_stride, int64_t rows, int64_t in,
                      int64_t out, float* y, int64_t y_stride);

}  // namespace k2::cpu
