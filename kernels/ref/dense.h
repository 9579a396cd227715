// Scalar float32 reference ops on dense row-major matrices: the oracle that every fast
// path (AVX-512, AMX, CUDA; bf16/int8/int4 weights) is tested against op by op.
//
// Pure functions on raw pointers: they own nothing, keep no state and are safe to call
// from any thread on disjoint outputs. Strides are in elements. Arguments are validated by
// the caller; a broken invariant aborts (K2_KERNEL_CHECK).
#pragma once

#include <cstdint>

namespace k2::ref {

// y[r, :] = w * x[r, :] / sqrt(mean(x[r, :]^2) + eps), the mean taken in float32.
// x and y may alias (same pointer and stride).
void rms_norm(const float* x, int64_t x_stride, const float* w, int64_t rows, int64_t dim, float eps,
              float* y, int64_t y_stride);

// Linear layer with the weight stored [out, in] (PyTorch/HF layout): y = x · Wᵀ.
// x: [rows, in] (row stride x_stride), w: [out, in] (row stride w_stride), y: [rows, out].
// Streams W one row at a time against all x rows, so each weight byte is read once per call.
void linear(const float* x, int64_t x_stride, const float* w, int64_t w_stride, int64_t rows, int64_t in,
            int64_t out, float* y, int64_t y_stride);

// Plain product with the weight stored [in, out]: y = x · W.
// x: [rows, in], w: [in, out] (row stride w_stride), y: [rows, out]. y must not alias x.
void matmul(const float* x, int64_t x_stride, const float* w, int64_t w_stride, int64_t rows, int64_t in,
            int64_t out, float* y, int64_t y_stride);

// out[i] = silu(gate[i]) * up[i], silu(g) = g / (1 + exp(-g)). out may alias gate or up.
void silu_mul(const float* gate, const float* up, int64_t n, float* out);

// h = silu(x · Gᵀ) ⊙ (x · Uᵀ), the first half of a SwiGLU MLP (what the fused CPU kernel
// computes in one pass). g, u: [width, in] (row stride w_stride), h: [rows, width].
void gate_up_silu(const float* x, int64_t x_stride, const float* g, const float* u, int64_t w_stride, int64_t rows,
                  int64_t in, int64_t width, float* h, int64_t h_stride);

// In-place numerically stable softmax of x[0..n). n >= 1.
void softmax(float* x, int64_t n);

// y[i] += alpha * x[i]
void axpy(float alpha, const float* x, int64_t n, float* y);

// Index of the largest value (the lowest index among equal maxima). n >= 1.
int64_t argmax(const float* x, int64_t n);

// The k largest values of x in descending order, ties broken by the lower index.
// idx[k] and values[k] (values may be null). 1 <= k <= n.
void top_k(const float* x, int64_t n, int64_t k, int32_t* idx, float* values);

}  // namespace k2::ref
