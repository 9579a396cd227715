#include "kernels/ref/dense.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <cstddef>
#include <vector>

#include "kernels/check.h"

namespace k2::ref {
namespace {

// Eight independent partial sums: the compiler can keep them in one vector register without
// -ffast-math, and the rounding error is no worse than a single running sum.
float dot(const float* a, const float* b, int64_t n) {
  constexpr int kLanes = 8;
  float acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int l = 0; l < kLanes; ++l) acc[l] += a[i + l] * b[i + l];
  }
  float tail = 0.0f;
  for (; i < n; ++i) tail += a[i] * b[i];
  float sum = 0.0f;
  for (int l = 0; l < kLanes; ++l) sum += acc[l];
  return sum + tail;
}

}  // namespace

void rms_norm(const float* x, int64_t x_stride, const float* w, int64_t rows, int64_t dim, float eps,
              float* y, int64_t y_stride) {
  K2_KERNEL_CHECK(rows >= 0 && dim > 0, "rms_norm: bad shape");
  K2_KERNEL_CHECK(eps >= 0.0f, "rms_norm: negative eps");
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * x_stride;
    float* yr = y + r * y_stride;
    const float mean_sq = dot(xr, xr, dim) / static_cast<float>(dim);
    const float inv = 1.0f / std::sqrt(mean_sq + eps);
    for (int64_t i = 0; i < dim; ++i) yr[i] = w[i] * (xr[i] * inv);
  }
}

void linear(const float* x, int64_t x_stride, const float* w, int64_t w_stride, int64_t rows, int64_t in,
            int64_t out, float* y, int64_t y_stride) {
  K2_KERNEL_CHECK(rows >= 0 && in > 0 && out > 0, "linear: bad shape");
  K2_KERNEL_CHECK(w_stride >= in && x_stride >= in && y_stride >= out, "linear: stride too small");
  for (int64_t o = 0; o < out; ++o) {
    const float* wo = w + o * w_stride;
    for (int64_t r = 0; r < rows; ++r) y[r * y_stride + o] = dot(x + r * x_stride, wo, in);
  }
}

void matmul(const float* x, int64_t x_stride, const float* w, int64_t w_stride, int64_t rows, int64_t in,
            int64_t out, float* y, int64_t y_stride) {
  K2_KERNEL_CHECK(rows >= 0 && in > 0 && out > 0, "matmul: bad shape");
  K2_KERNEL_CHECK(w_stride >= out && x_stride >= in && y_stride >= out, "matmul: stride too small");
  for (int64_t r = 0; r < rows; ++r) std::fill(y + r * y_stride, y + r * y_stride + out, 0.0f);
  for (int64_t k = 0; k < in; ++k) {
    const float* wk = w + k * w_stride;
    for (int64_t r = 0; r < rows; ++r) axpy(x[r * x_stride + k], wk, out, y + r * y_stride);
  }
}

void silu_mul(const float* gate, const float* up, int64_t n, float* out) {
  K2_KERNEL_CHECK(n >= 0, "silu_mul: negative size");
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    out[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

void gate_up_silu(const float* x, int64_t x_stride, const float* g, const float* u, int64_t w_stride, int64_t rows,
                  int64_t in, int64_t width, float* h, int64_t h_stride) {
  K2_KERNEL_CHECK(rows >= 0 && width > 0 && h_stride >= width, "gate_up_silu: bad shape");
  std::vector<float> gv(static_cast<size_t>(width)), uv(gv.size());
  for (int64_t r = 0; r < rows; ++r) {
    linear(x + r * x_stride, x_stride, g, w_stride, 1, in, width, gv.data(), width);
    linear(x + r * x_stride, x_stride, u, w_stride, 1, in, width, uv.data(), width);
    silu_mul(gv.data(), uv.data(), width, h + r * h_stride);
  }
}

void softmax(float* x, int64_t n) {
  K2_KERNEL_CHECK(n >= 1, "softmax: empty row");
  const float max = *std::max_element(x, x + n);
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - max);
    sum += x[i];
  }
  const float inv = 1.0f / sum;
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

void axpy(float alpha, const float* x, int64_t n, float* y) {
  for (int64_t i = 0; i < n; ++i) y[i] += alpha * x[i];
}

int64_t argmax(const float* x, int64_t n) {
  K2_KERNEL_CHECK(n >= 1, "argmax: empty row");
  int64_t best = 0;
  for (int64_t i = 1; i < n; ++i) {
    if (x[i] > x[best]) best = i;
  }
  return best;
}

void top_k(const float* x, int64_t n, int64_t k, int32_t* idx, float* values) {
  K2_KERNEL_CHECK(k >= 1 && k <= n, "top_k: k out of range");
  std::vector<int32_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::partial_sort(order.begin(), order.begin() + k, order.end(), [x](int32_t a, int32_t b) {
    return x[a] > x[b] || (x[a] == x[b] && a < b);
  });
  for (int64_t i = 0; i < k; ++i) {
    idx[i] = order[static_cast<size_t>(i)];
    if (values != nullptr) values[i] = x[order[static_cast<size_t>(i)]];
  }
}

}  // namespace k2::ref
