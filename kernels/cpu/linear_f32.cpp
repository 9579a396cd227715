#include "kernels/cpu/linear_f32.h"

#include <algorithm>

#include "kernels/check.h"

namespace k2::cpu {
namespace {

constexpr int kLanes = 8;  // ref::dot's partial sums
constexpr int kOuts = 8;   // dots in flight

// N dot products of x against w rows o0 .. o0 + N, each exactly as ref::dot computes it.
template <int N>
void dots(const float* x, const float* w, int64_t w_stride, int64_t in, float* y) {
  float acc[N][kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= in; i += kLanes) {
    for (int j = 0; j < N; ++j) {
      const float* wj = w + j * w_stride;
      for (int l = 0; l < kLanes; ++l) acc[j][l] += x[i + l] * wj[i + l];
    }
  }
  for (int j = 0; j < N; ++j) {
    const float* wj = w + j * w_stride;
    float tail = 0.0f;
    for (int64_t k = i; k < in; ++k) tail += x[k] * wj[k];
    float sum = 0.0f;
    for (int l = 0; l < kLanes; ++l) sum += acc[j][l];
    y[j] = sum + tail;
  }
}

}  // namespace

void linear_f32_exact(const float* x, int64_t x_stride, const float* w, int64_t w_stride, int64_t rows, int64_t in,
                      int64_t out, float* y, int64_t y_stride) {
  K2_KERNEL_CHECK(rows >= 0 && in > 0 && out > 0, "linear: bad shape");
  K2_KERNEL_CHECK(w_stride >= in && x_stride >= in && y_stride >= out, "linear: stride too small");
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * x_stride;
    float* yr = y + r * y_stride;
    int64_t o = 0;
    for (; o + kOuts <= out; o += kOuts) dots<kOuts>(xr, w + o * w_stride, w_stride, in, yr + o);
    for (; o < out; ++o) dots<1>(xr, w + o * w_stride, w_stride, in, yr + o);
  }
}

}  // namespace k2::cpu
