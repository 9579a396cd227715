#include "kernels/ref/vision.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <vector>

#include "kernels/check.h"
#include "kernels/ref/dense.h"

namespace k2::ref {
namespace {

float dot(const float* a, const float* b, int64_t n) {
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

// torch's cubic convolution kernel pieces (UpSample.h), A = −0.75.
constexpr float kCubicA = -0.75f;
float cubic1(float x) { return ((kCubicA + 2.0f) * x - (kCubicA + 3.0f)) * x * x + 1.0f; }
float cubic2(float x) { return ((kCubicA * x - 5.0f * kCubicA) * x + 8.0f * kCubicA) * x - 4.0f * kCubicA; }

// The four taps (clamped indices) and weights of output index i along one axis.
struct CubicTaps {
  int64_t index[4];
  float weight[4];
};

std::vector<CubicTaps> cubic_taps(int64_t n_in, int64_t n_out) {
  const float scale = static_cast<float>(n_in) / static_cast<float>(n_out);
  std::vector<CubicTaps> taps(static_cast<size_t>(n_out));
  for (int64_t i = 0; i < n_out; ++i) {
    const float src = scale * (static_cast<float>(i) + 0.5f) - 0.5f;
    // guard_index_and_lambda: floor, at most n_in − 1, fraction clamped to [0, 1].
    const int64_t i0 = std::min(static_cast<int64_t>(std::floor(src)), n_in - 1);
    const float t = std::min(std::max(src - static_cast<float>(i0), 0.0f), 1.0f);
    CubicTaps& c = taps[static_cast<size_t>(i)];
    c.weight[0] = cubic2(t + 1.0f);
    c.weight[1] = cubic1(t);
    c.weight[2] = cubic1(1.0f - t);
    c.weight[3] = cubic2(2.0f - t);
    for (int k = 0; k < 4; ++k) c.index[k] = std::clamp<int64_t>(i0 - 1 + k, 0, n_in - 1);
  }
  return taps;
}

}  // namespace

void layer_norm(const float* x, int64_t x_stride, const float* w, const float* b, int64_t rows, int64_t dim,
                float eps, float* y, int64_t y_stride) {
  K2_KERNEL_CHECK(rows >= 0 && dim > 0, "layer_norm: bad shape");
  K2_KERNEL_CHECK(eps >= 0.0f, "layer_norm: negative eps");
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * x_stride;
    float* yr = y + r * y_stride;
    double sum = 0.0;
    for (int64_t i = 0; i < dim; ++i) sum += xr[i];
    const double mean = sum / static_cast<double>(dim);
    double sq = 0.0;
    for (int64_t i = 0; i < dim; ++i) sq += (xr[i] - mean) * (xr[i] - mean);
    const double var = sq / static_cast<double>(dim);
    const float m = static_cast<float>(mean);
    const float inv = static_cast<float>(1.0 / std::sqrt(var + static_cast<double>(eps)));
    for (int64_t i = 0; i < dim; ++i) yr[i] = (xr[i] - m) * inv * w[i] + b[i];
  }
}

void gelu_tanh(const float* x, int64_t n, float* out) {
  K2_KERNEL_CHECK(n >= 0, "gelu_tanh: negative size");
  const float k = static_cast<float>(std::numbers::sqrt2 * std::numbers::inv_sqrtpi);  // sqrt(2/π)
  for (int64_t i = 0; i < n; ++i) {
    const float u = x[i];
    out[i] = 0.5f * u * (1.0f + std::tanh(k * (u + 0.044715f * u * u * u)));
  }
}

void gelu_erf(const float* x, int64_t n, float* out) {
  K2_KERNEL_CHECK(n >= 0, "gelu_erf: negative size");
  const float inv_sqrt2 = static_cast<float>(1.0 / std::numbers::sqrt2);
  for (int64_t i = 0; i < n; ++i) {
    const float u = x[i];
    out[i] = 0.5f * u * (1.0f + std::erf(u * inv_sqrt2));
  }
}

void rope_2d_inv_freq(int64_t head_dim, float theta, float* inv_freq) {
  K2_KERNEL_CHECK(head_dim > 0 && head_dim % 4 == 0, "rope_2d: head_dim must be a positive multiple of 4");
  K2_KERNEL_CHECK(theta > 0.0f, "rope_2d: theta must be positive");
  for (int64_t j = 0; j < head_dim / 4; ++j) {
    const float exponent = static_cast<float>(4 * j) / static_cast<float>(head_dim);
    inv_freq[j] = 1.0f / std::pow(theta, exponent);
  }
}

void rope_2d(float* x, int64_t rows, int64_t row_stride, int64_t heads, int64_t head_stride, int64_t head_dim,
             const int64_t* row_pos, const int64_t* col_pos, const float* inv_freq) {
  K2_KERNEL_CHECK(head_dim > 0 && head_dim % 4 == 0, "rope_2d: head_dim must be a positive multiple of 4");
  K2_KERNEL_CHECK(rows >= 0 && heads >= 0, "rope_2d: bad shape");
  for (int64_t r = 0; r < rows; ++r) {
    K2_KERNEL_CHECK(row_pos[r] >= 0 && col_pos[r] >= 0, "rope_2d: negative position");
    for (int64_t m = 0; m < head_dim / 2; ++m) {
      // Pair m = 2j: the column ("x"); m = 2j + 1: the row ("y").
      const int64_t pos = (m % 2 == 0) ? col_pos[r] : row_pos[r];
      const float angle = static_cast<float>(pos) * inv_freq[m / 2];
      const float c = std::cos(angle), s = std::sin(angle);
      for (int64_t h = 0; h < heads; ++h) {
        float* p = x + r * row_stride + h * head_stride + 2 * m;
        const float a = p[0], b = p[1];
        p[0] = a * c - b * s;
        p[1] = a * s + b * c;
      }
    }
  }
}

void attention_full(const float* q, int64_t q_stride, const float* k, int64_t k_stride, const float* v,
                    int64_t v_stride, int64_t tokens, int64_t heads, int64_t head_dim, float scale, float* out,
                    int64_t out_stride) {
  K2_KERNEL_CHECK(tokens >= 0 && heads > 0 && head_dim > 0, "attention_full: bad shape");
  const int64_t width = heads * head_dim;
  K2_KERNEL_CHECK(q_stride >= width && k_stride >= width && v_stride >= width && out_stride >= width,
                  "attention_full: stride too small");
  std::vector<float> p(static_cast<size_t>(tokens));  // one query's attention weights
  for (int64_t h = 0; h < heads; ++h) {
    const int64_t off = h * head_dim;
    for (int64_t i = 0; i < tokens; ++i) {
      const float* qi = q + i * q_stride + off;
      for (int64_t j = 0; j < tokens; ++j) p[static_cast<size_t>(j)] = dot(qi, k + j * k_stride + off, head_dim) * scale;
      softmax(p.data(), tokens);
      float* o = out + i * out_stride + off;
      std::fill(o, o + head_dim, 0.0f);
      for (int64_t j = 0; j < tokens; ++j) axpy(p[static_cast<size_t>(j)], v + j * v_stride + off, head_dim, o);
    }
  }
}

void bicubic_interpolate(const float* src, int64_t h_in, int64_t w_in, int64_t channels, int64_t h_out,
                         int64_t w_out, float* dst) {
  K2_KERNEL_CHECK(h_in > 0 && w_in > 0 && channels > 0 && h_out > 0 && w_out > 0, "bicubic: bad shape");
  const std::vector<CubicTaps> ty = cubic_taps(h_in, h_out), tx = cubic_taps(w_in, w_out);
  for (int64_t y = 0; y < h_out; ++y) {
    const CubicTaps& cy = ty[static_cast<size_t>(y)];
    for (int64_t x = 0; x < w_out; ++x) {
      const CubicTaps& cx = tx[static_cast<size_t>(x)];
      float* o = dst + (y * w_out + x) * channels;
      for (int64_t c = 0; c < channels; ++c) {
        float acc = 0.0f;
        for (int a = 0; a < 4; ++a) {
          const float* in_row = src + cy.index[a] * w_in * channels;
          float t = 0.0f;
          for (int b = 0; b < 4; ++b) t += in_row[cx.index[b] * channels + c] * cx.weight[b];
          acc += t * cy.weight[a];
        }
        o[c] = acc;
      }
    }
  }
}

void sincos_embedding(float pos, int64_t dim, float* out) {
  K2_KERNEL_CHECK(dim > 0 && dim % 2 == 0, "sincos_embedding: dim must be positive and even");
  const int64_t half = dim / 2;
  for (int64_t k = 0; k < half; ++k) {
    const float omega = 1.0f / std::pow(10000.0f, static_cast<float>(k) / static_cast<float>(half));
    const float angle = pos * omega;
    out[k] = std::sin(angle);
    out[half + k] = std::cos(angle);
  }
}

}  // namespace k2::ref
