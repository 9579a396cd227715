// Scalar float32 reference for the DeepSeek-V3 / Kimi-K2 MoE router ("noaux_tc"):
// sigmoid scores, selection by score + correction bias, group-limited top-k,
// renormalisation and routed scaling.
//
// Pure function on raw pointers; no state; thread-safe on disjoint outputs.
#pragma once

#include <cstdint>

namespace k2::ref {

struct RouterParams {
  int64_t num_experts = 0;
  int64_t top_k = 0;
  int64_t n_group = 1;      // experts form n_group contiguous groups
  int64_t topk_group = 1;   // groups kept per token
  bool renormalize = true;  // norm_topk_prob
  float routed_scaling = 1.0f;
};

// Per token t (logits [tokens, num_experts] = x · Wgateᵀ):
//   s = sigmoid(logits), b = s + bias;
//   if n_group > 1: group score = sum of the group's two largest b, the topk_group best
//     groups are kept and the experts of the others get b = -inf;
//   idx = top_k of b in descending order (ties: lower expert id);
//   w = s[idx] / sum(s[idx]) (when renormalize) × routed_scaling.
// Outputs idx/weights [tokens, top_k]. Optional diagnostics (may be null): gap[t] = k-th
// minus (k+1)-th b after masking (+inf when no (k+1)-th expert is left), group_gap[t] =
// topk_group-th minus next group score (+inf when every group is kept).
void moe_route(const float* logits, const float* bias, int64_t tokens, const RouterParams& p, int32_t* idx,
               float* weights, float* gap, float* group_gap);

}  // namespace k2::ref
