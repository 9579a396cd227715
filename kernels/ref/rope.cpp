#include "kernels/ref/rope.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "kernels/check.h"

namespace k2::ref {
namespace {

double yarn_correction_dim(double num_rotations, const YarnParams& p) {
  return static_cast<double>(p.rope_dim) *
         std::log(static_cast<double>(p.original_max_pos) / (num_rotations * 2.0 * std::numbers::pi)) /
         (2.0 * std::log(p.theta));
}

}  // namespace

void yarn_bounds(const YarnParams& p, double* low, double* high) {
  K2_KERNEL_CHECK(p.rope_dim > 0 && p.rope_dim % 2 == 0, "yarn: rope_dim must be even and positive");
  K2_KERNEL_CHECK(p.original_max_pos > 0 && p.theta > 1.0, "yarn: bad original_max_pos or theta");
  K2_KERNEL_CHECK(p.beta_fast > 0.0 && p.beta_slow > 0.0, "yarn: betas must be positive");
  double lo = std::max(std::floor(yarn_correction_dim(p.beta_fast, p)), 0.0);
  double hi = std::min(std::ceil(yarn_correction_dim(p.beta_slow, p)), static_cast<double>(p.rope_dim - 1));
  if (lo == hi) hi += 0.001;
  *low = lo;
  *high = hi;
}

void yarn_inv_freq(const YarnParams& p, float* inv_freq) {
  K2_KERNEL_CHECK(p.rope_dim > 0 && p.rope_dim % 2 == 0, "yarn: rope_dim must be even and positive");
  const int64_t half = p.rope_dim / 2;
  const bool scaled = p.factor > 1.0;
  double low = 0.0, high = 1.0;
  if (scaled) yarn_bounds(p, &low, &high);
  for (int64_t i = 0; i < half; ++i) {
    const double extra = std::pow(p.theta, -2.0 * static_cast<double>(i) / static_cast<double>(p.rope_dim));
    if (!scaled) {
      inv_freq[i] = static_cast<float>(extra);
      continue;
    }
    const double inter = extra / p.factor;
    const double ramp = std::clamp((static_cast<double>(i) - low) / (high - low), 0.0, 1.0);
    inv_freq[i] = static_cast<float>(inter * ramp + extra * (1.0 - ramp));
  }
}

double yarn_mscale(double factor, double m) {
  return factor <= 1.0 ? 1.0 : 0.1 * m * std::log(factor) + 1.0;
}

double yarn_softmax_scale(int64_t qk_head_dim, double factor, double mscale_all_dim) {
  K2_KERNEL_CHECK(qk_head_dim > 0, "softmax scale: head dim must be positive");
  const double m = yarn_mscale(factor, mscale_all_dim);
  return m * m / std::sqrt(static_cast<double>(qk_head_dim));
}

void rope_interleaved(float* x, int64_t rows, int64_t row_stride, int64_t heads, int64_t head_stride,
                      int64_t rope_dim, const int64_t* positions, const float* inv_freq) {
  K2_KERNEL_CHECK(rope_dim >= 0 && rope_dim % 2 == 0, "rope: rope_dim must be even");
  K2_KERNEL_CHECK(rows >= 0 && heads >= 0, "rope: bad shape");
  for (int64_t r = 0; r < rows; ++r) {
    K2_KERNEL_CHECK(positions[r] >= 0, "rope: negative position");
    const float pos = static_cast<float>(positions[r]);
    for (int64_t i = 0; i < rope_dim / 2; ++i) {
      const float angle = pos * inv_freq[i];
      const float c = std::cos(angle), s = std::sin(angle);
      for (int64_t h = 0; h < heads; ++h) {
        float* v = x + r * row_stride + h * head_stride + 2 * i;
        const float a = v[0], b = v[1];
        v[0] = a * c - b * s;
        v[1] = a * s + b * c;
      }
    }
  }
}

}  // namespace k2::ref
