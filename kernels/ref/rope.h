// Scalar float32 reference for rotary position embedding with YaRN frequencies, as the
// DeepSeek-V3 family uses it: rotation of adjacent pairs (x[2i], x[2i+1]) ("interleaved",
// GPT-J style) by the angle position × inv_freq[i].
//
// Pure functions on raw pointers; no state; thread-safe on disjoint outputs.
#pragma once

#include <cstdint>

namespace k2::ref {

struct YarnParams {
  int64_t rope_dim = 0;          // d: rotated dims per head (even)
  double theta = 10000.0;        // rope base
  double factor = 1.0;           // context extension factor (1: plain RoPE)
  int64_t original_max_pos = 0;  // L0: original_max_position_embeddings
  double beta_fast = 32.0;
  double beta_slow = 1.0;
};

// inv_freq[i], i < rope_dim/2:
//   extra_i = theta^(-2i/d), inter_i = extra_i / factor,
//   corr(n) = d·ln(L0/(2πn)) / (2·ln theta), low = max(floor(corr(beta_fast)), 0),
//   high = min(ceil(corr(beta_slow)), d-1) (+0.001 if equal),
//   ramp_i = clamp((i-low)/(high-low), 0, 1), inv_freq_i = inter_i·ramp_i + extra_i·(1-ramp_i).
// With factor <= 1 this is plain RoPE (inv_freq = extra). Applied at every position.
void yarn_inv_freq(const YarnParams& p, float* inv_freq);

// The YaRN ramp bounds (low, high) of yarn_inv_freq, for diagnostics and tests.
void yarn_bounds(const YarnParams& p, double* low, double* high);

// YaRN magnitude correction: 1 when factor <= 1, else 0.1·m·ln(factor) + 1.
double yarn_mscale(double factor, double m);

// Attention softmax scale: qk_head_dim^-0.5 × yarn_mscale(factor, mscale_all_dim)².
double yarn_softmax_scale(int64_t qk_head_dim, double factor, double mscale_all_dim);

// Rotates x in place. x holds `rows` rows (row stride row_stride) of `heads` vectors each
// (head stride head_stride); the first rope_dim values of each vector are rotated by
// positions[row] × inv_freq[i] on the pairs (2i, 2i+1). The angle is the float32 product,
// as in the reference implementation.
void rope_interleaved(float* x, int64_t rows, int64_t row_stride, int64_t heads, int64_t head_stride,
                      int64_t rope_dim, const int64_t* positions, const float* inv_freq);

}  // namespace k2::ref
