#include "kernels/ref/router.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <cstddef>
#include <vector>

#include "kernels/check.h"
#include "kernels/ref/dense.h"

namespace k2::ref {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

void check_params(const RouterParams& p) {
  K2_KERNEL_CHECK(p.num_experts > 0 && p.top_k >= 1 && p.top_k <= p.num_experts, "router: bad top_k");
  K2_KERNEL_CHECK(p.n_group >= 1 && p.num_experts % p.n_group == 0, "router: experts not divisible by n_group");
  K2_KERNEL_CHECK(p.topk_group >= 1 && p.topk_group <= p.n_group, "router: bad topk_group");
  K2_KERNEL_CHECK(p.top_k <= p.topk_group * (p.num_experts / p.n_group), "router: top_k exceeds kept experts");
}

// Masks (to -inf) the experts of all but the topk_group best groups; returns the group gap.
float mask_groups(float* b, const RouterParams& p) {
  const int64_t per_group = p.num_experts / p.n_group;
  std::vector<float> group_score(static_cast<size_t>(p.n_group));
  for (int64_t g = 0; g < p.n_group; ++g) {
    const float* bg = b + g * per_group;
    float first = -kInf, second = -kInf;
    for (int64_t e = 0; e < per_group; ++e) {
      if (bg[e] > first) {
        second = first;
        first = bg[e];
      } else if (bg[e] > second) {
        second = bg[e];
      }
    }
    group_score[g] = per_group >= 2 ? first + second : first;
  }
  std::vector<int32_t> keep(static_cast<size_t>(p.n_group));
  std::vector<float> keep_score(static_cast<size_t>(p.n_group));
  top_k(group_score.data(), p.n_group, p.n_group, keep.data(), keep_score.data());
  for (int64_t r = p.topk_group; r < p.n_group; ++r) {
    std::fill(b + keep[r] * per_group, b + (keep[r] + 1) * per_group, -kInf);
  }
  return p.topk_group < p.n_group ? keep_score[p.topk_group - 1] - keep_score[p.topk_group] : kInf;
}

}  // namespace

void moe_route(const float* logits, const float* bias, int64_t tokens, const RouterParams& p, int32_t* idx,
               float* weights, float* gap, float* group_gap) {
  check_params(p);
  const int64_t n = p.num_experts, k = p.top_k;
  const bool need_next = k < n;
  std::vector<float> s(static_cast<size_t>(n)), b(static_cast<size_t>(n));
  std::vector<int32_t> order(static_cast<size_t>(k + 1));
  std::vector<float> order_b(static_cast<size_t>(k + 1));
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t e = 0; e < n; ++e) {
      s[e] = 1.0f / (1.0f + std::exp(-logits[t * n + e]));
      b[e] = s[e] + bias[e];
    }
    float ggap = kInf;
    if (p.n_group > 1) ggap = mask_groups(b.data(), p);
    top_k(b.data(), n, need_next ? k + 1 : k, order.data(), order_b.data());
    float sum = 0.0f;
    for (int64_t j = 0; j < k; ++j) sum += s[order[j]];
    for (int64_t j = 0; j < k; ++j) {
      idx[t * k + j] = order[j];
      const float w = p.renormalize ? s[order[j]] / sum : s[order[j]];
      weights[t * k + j] = w * p.routed_scaling;
    }
    if (gap != nullptr) gap[t] = need_next ? order_b[k - 1] - order_b[k] : kInf;
    if (group_gap != nullptr) group_gap[t] = ggap;
  }
}

}  // namespace k2::ref
