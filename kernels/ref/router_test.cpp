#include "kernels/ref/router.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace k2::ref {
namespace {

float logit(float p) { return std::log(p / (1.0f - p)); }

TEST(Router, BiasSelectsButDoesNotWeigh) {
  // s = [0.75, 0.5, 0.25, 0.5]; the bias lifts expert 2 to the top.
  const float logits[] = {logit(0.75f), 0.0f, logit(0.25f), 0.0f};
  const float bias[] = {0.0f, 0.0f, 0.6f, 0.0f};
  RouterParams p{.num_experts = 4, .top_k = 2, .n_group = 1, .topk_group = 1, .renormalize = true,
                 .routed_scaling = 2.0f};
  int32_t idx[2];
  float w[2], gap, group_gap;
  moe_route(logits, bias, 1, p, idx, w, &gap, &group_gap);
  EXPECT_EQ(idx[0], 2);  // b = 0.85
  EXPECT_EQ(idx[1], 0);  // b = 0.75
  EXPECT_NEAR(w[0], 0.25f / 1.0f * 2.0f, 1e-6);
  EXPECT_NEAR(w[1], 0.75f / 1.0f * 2.0f, 1e-6);
  EXPECT_NEAR(gap, 0.25f, 1e-6);  // 0.75 - 0.5
  EXPECT_EQ(group_gap, std::numeric_limits<float>::infinity());
}

TEST(Router, NoRenormalisation) {
  const float logits[] = {0.0f, logit(0.75f)};
  const float bias[] = {0.0f, 0.0f};
  RouterParams p{.num_experts = 2, .top_k = 1, .renormalize = false, .routed_scaling = 3.0f};
  int32_t idx;
  float w;
  moe_route(logits, bias, 1, p, &idx, &w, nullptr, nullptr);
  EXPECT_EQ(idx, 1);
  EXPECT_NEAR(w, 2.25f, 1e-6);
}

TEST(Router, GroupLimitChangesTheChoice) {
  // 4 groups of 2. Group scores (sum of the two best): 1.0, 1.2, 1.1, 0.4. Groups 1 and 2 are
  // kept, so expert 0 (the best single score) is excluded.
  const float s[] = {0.9f, 0.1f, 0.6f, 0.6f, 0.55f, 0.55f, 0.2f, 0.2f};
  float logits[8];
  for (int i = 0; i < 8; ++i) logits[i] = logit(s[i]);
  const float bias[8] = {};
  RouterParams p{.num_experts = 8, .top_k = 2, .n_group = 4, .topk_group = 2, .renormalize = true,
                 .routed_scaling = 1.0f};
  int32_t idx[2];
  float w[2], gap, group_gap;
  moe_route(logits, bias, 1, p, idx, w, &gap, &group_gap);
  EXPECT_EQ(idx[0], 2);
  EXPECT_EQ(idx[1], 3);
  EXPECT_NEAR(w[0], 0.5f, 1e-6);
  EXPECT_NEAR(gap, 0.05f, 1e-5);        // 0.6 - 0.55 (expert 0 is masked)
  EXPECT_NEAR(group_gap, 0.1f, 1e-5);   // 1.1 - 1.0

  p.n_group = 1;
  p.topk_group = 1;
  moe_route(logits, bias, 1, p, idx, w, &gap, &group_gap);
  EXPECT_EQ(idx[0], 0);  // without the group limit expert 0 wins
}

TEST(RouterDeathTest, TopKBeyondKeptExperts) {
  const float logits[4] = {};
  const float bias[4] = {};
  RouterParams p{.num_experts = 4, .top_k = 3, .n_group = 2, .topk_group = 1};
  int32_t idx[3];
  float w[3];
  EXPECT_DEATH(moe_route(logits, bias, 1, p, idx, w, nullptr, nullptr), "top_k");
}

}  // namespace
}  // namespace k2::ref
