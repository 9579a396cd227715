// Scalar float32 reference ops of the MoonViT-3D vision tower (Kimi-K2.5/K2.6) and its
// patch-merger projector: LayerNorm with bias, the two GELU forms, the tower's 2D rotary
// embedding, bidirectional multi-head attention over one media item, torch-style bicubic
// interpolation of the position-embedding grid and the 1D sin-cos time embedding.
// (Linear layers, softmax and axpy are in dense.h.)
//
// Pure functions on raw pointers: they own nothing, keep no state and are safe to call
// from any thread on disjoint outputs. Strides are in elements. Arguments are validated by
// the caller; a broken invariant aborts (K2_KERNEL_CHECK).
#pragma once

#include <cstdint>

namespace k2::ref {

// y[r, :] = (x[r, :] − mean) / sqrt(var + eps) · w + b, var the biased variance (torch
// nn.LayerNorm). The moments are accumulated in double. x and y may alias.
void layer_norm(const float* x, int64_t x_stride, const float* w, const float* b, int64_t rows, int64_t dim,
                float eps, float* y, int64_t y_stride);

// out[i] = 0.5·x·(1 + tanh(sqrt(2/π)·(x + 0.044715·x³))) (torch GELU approximate="tanh").
// out may alias x.
void gelu_tanh(const float* x, int64_t n, float* out);

// out[i] = 0.5·x·(1 + erf(x/√2)) (exact GELU). out may alias x.
void gelu_erf(const float* x, int64_t n, float* out);

// The head_dim/4 frequencies of the 2D RoPE: inv_freq[j] = 1 / theta^(4j/head_dim), in
// float32 as vLLM's table is built. head_dim must be a multiple of 4.
void rope_2d_inv_freq(int64_t head_dim, float theta, float* inv_freq);

// 2D rotary embedding, interleaved pairs (x[2m], x[2m+1]) of each head, m < head_dim/2:
// pair m = 2j turns by col[r]·inv_freq[j], pair m = 2j+1 by row[r]·inv_freq[j] (so dims
// 4j, 4j+1 carry the column and 4j+2, 4j+3 the row). The angle is the float32 product.
// x holds `rows` rows (row stride row_stride) of `heads` vectors (head stride head_stride).
void rope_2d(float* x, int64_t rows, int64_t row_stride, int64_t heads, int64_t head_stride, int64_t head_dim,
             const int64_t* row_pos, const int64_t* col_pos, const float* inv_freq);

// Bidirectional (unmasked) multi-head attention of `tokens` queries over the same tokens:
// out[i, h, :] = softmax_j(q[i, h]·k[j, h] · scale) · v[j, h]. q, k, v are [tokens, heads,
// head_dim] with row strides q_stride / k_stride / v_stride and the heads contiguous;
// out is [tokens, heads, head_dim] with row stride out_stride and must not alias q, k, v.
void attention_full(const float* q, int64_t q_stride, const float* k, int64_t k_stride, const float* v,
                    int64_t v_stride, int64_t tokens, int64_t heads, int64_t head_dim, float scale, float* out,
                    int64_t out_stride);

// torch F.interpolate(mode="bicubic", align_corners=False), no antialias, of a channels-last
// grid src [h_in, w_in, channels] to dst [h_out, w_out, channels]. Separable cubic
// convolution with A = −0.75, source coordinate (i + 0.5)·(n_in/n_out) − 0.5, taps clamped
// to the edge; arithmetic in float32 in torch's order (columns summed first, then rows).
void bicubic_interpolate(const float* src, int64_t h_in, int64_t w_in, int64_t channels, int64_t h_out,
                         int64_t w_out, float* dst);

// The fixed 1D sin-cos embedding of position `pos` (dim even):
// out = [sin(pos·ω_0) … sin(pos·ω_{dim/2−1}), cos(pos·ω_0) … cos(pos·ω_{dim/2−1})],
// ω_k = 1 / 10000^(k/(dim/2)), in float32 as the reference computes it.
void sincos_embedding(float pos, int64_t dim, float* out);

}  // namespace k2::ref
