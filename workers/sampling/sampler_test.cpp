#include "workers/sampling/sampler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>

namespace k2 {
namespace {

SampleResult run(std::vector<float> logits, const SamplingParams& p, std::vector<int32_t> prompt = {},
                 std::vector<int32_t> output = {}) {
  Sampler s;
  return s.sample(logits, p, SequenceHistory{prompt, output});
}

SamplingParams greedy() {
  SamplingParams p;
  p.temperature = 0.0;
  return p;
}

TEST(Sampler, GreedyPicksArgmaxAndBiasCanFlipIt) {
  EXPECT_EQ(run({0.1f, 2.0f, 1.5f}, greedy()).token, 1);
  SamplingParams p = greedy();
  p.logit_bias[2] = 1.0f;
  EXPECT_EQ(run({0.1f, 2.0f, 1.5f}, p).token, 2);
}

TEST(Sampler, StructuredOutputMaskLimitsTheDraw) {
  // 40 tokens, token 39 the best; the mask allows 3 and 33 only (and nothing past word 1).
  std::vector<float> logits(40, 0.f);
  logits[39] = 9.f;
  logits[33] = 2.f;
  logits[3] = 1.f;
  const std::vector<uint32_t> mask = {1u << 3, 1u << 1};
  Sampler s;
  std::vector<float> greedy_row = logits;
  EXPECT_EQ(s.sample(greedy_row, greedy(), {}, mask).token, 33);
  const std::vector<uint32_t> short_mask = {1u << 3};  // ids 32.. are past the mask: not allowed
  std::vector<float> short_row = logits;
  EXPECT_EQ(s.sample(short_row, greedy(), {}, short_mask).token, 3);
  SamplingParams hot;
  hot.temperature = 5.0;
  for (uint64_t seed = 0; seed < 50; ++seed) {
    hot.seed = seed;
    std::vector<float> row = logits;
    const int32_t t = s.sample(row, hot, {}, mask).token;
    EXPECT_TRUE(t == 3 || t == 33) << t;
  }
}

TEST(Sampler, MinTokensMasksStopIds) {
  SamplingParams p = greedy();
  p.min_tokens = 2;
  p.stop_token_ids_for_min_tokens = {1};
  EXPECT_EQ(run({0.1f, 2.0f, 1.5f}, p, {}, {0}).token, 2);
  EXPECT_EQ(run({0.1f, 2.0f, 1.5f}, p, {}, {0, 0}).token, 1);
}

TEST(Sampler, RepetitionPenaltyDividesPositiveAndMultipliesNegative) {
  SamplingParams p = greedy();
  p.repetition_penalty = 2.0;
  // token 1 (3.0 -> 1.5) was in the prompt; token 2 (2.0) was not.
  EXPECT_EQ(run({-1.0f, 3.0f, 2.0f}, p, {1}).token, 2);
  // token 0 (-0.5 -> -1.0) seen, so unseen token 2 at -0.9 wins.
  EXPECT_EQ(run({-0.5f, -3.0f, -0.9f}, p, {0}).token, 2);
}

TEST(Sampler, FrequencyAndPresencePenaltiesUseOutputCounts) {
  SamplingParams p = greedy();
  p.frequency_penalty = 0.5;
  // token 1 appeared twice in the output: 3.0 - 1.0 = 2.0 < 2.5.
  EXPECT_EQ(run({0.0f, 3.0f, 2.5f}, p, {}, {1, 1}).token, 2);
  SamplingParams q = greedy();
  q.presence_penalty = 0.4;
  EXPECT_EQ(run({0.0f, 3.0f, 2.7f}, q, {1}, {}).token, 1) << "presence counts output only";
  EXPECT_EQ(run({0.0f, 3.0f, 2.7f}, q, {}, {1}).token, 2);
}

TEST(Sampler, SeededDrawsAreReproducibleAndVary) {
  SamplingParams p;
  p.seed = 1234;
  std::vector<float> logits(50, 0.0f);
  std::vector<int32_t> out_a, out_b;
  for (int i = 0; i < 20; ++i) {
    out_a.push_back(run(logits, p, {}, out_a).token);
    out_b.push_back(run(logits, p, {}, out_b).token);
  }
  EXPECT_EQ(out_a, out_b);
  std::map<int32_t, int> distinct;
  for (int32_t t : out_a) ++distinct[t];
  EXPECT_GT(distinct.size(), 5u);
}

TEST(Sampler, DrawsFollowTheSoftmaxDistribution) {
  const std::vector<float> logits = {0.0f, 1.0f, 2.0f};
  double z = std::exp(0.0) + std::exp(1.0) + std::exp(2.0);
  std::vector<int> counts(3);
  const int n = 20000;
  for (int i = 0; i < n; ++i) {
    SamplingParams p;
    p.seed = static_cast<uint64_t>(i);
    ++counts[run(logits, p).token];
  }
  for (int t = 0; t < 3; ++t) {
    double expected = std::exp(static_cast<double>(logits[t])) / z;
    EXPECT_NEAR(counts[t] / static_cast<double>(n), expected, 0.015) << t;
  }
}

TEST(Sampler, TruncationsKeepOnlyTheTop) {
  const std::vector<float> logits = {0.0f, 5.0f, 4.9f, -1.0f};
  for (uint64_t seed = 0; seed < 200; ++seed) {
    SamplingParams k1;
    k1.top_k = 1, k1.seed = seed;
    EXPECT_EQ(run(logits, k1).token, 1);
    SamplingParams k2;
    k2.top_k = 2, k2.seed = seed;
    int32_t t = run(logits, k2).token;
    EXPECT_TRUE(t == 1 || t == 2);
    SamplingParams tp;
    tp.top_p = 0.3, tp.seed = seed;
    EXPECT_EQ(run(logits, tp).token, 1);
    SamplingParams mp;
    mp.min_p = 0.5, mp.seed = seed;
    t = run(logits, mp).token;
    EXPECT_TRUE(t == 1 || t == 2);
  }
}

TEST(Sampler, LogprobsAreOfTheRawDistribution) {
  SamplingParams p;
  p.temperature = 0.5;
  p.logprobs = 2;
  p.seed = 7;
  SampleResult r = run({1.0f, 3.0f, 2.0f}, p);
  double z = std::log(std::exp(1.0) + std::exp(3.0) + std::exp(2.0));
  ASSERT_EQ(r.top.size(), 2u);
  EXPECT_EQ(r.top[0].token, 1);
  EXPECT_EQ(r.top[0].rank, 1);
  EXPECT_NEAR(r.top[0].logprob, 3.0 - z, 1e-5);
  EXPECT_EQ(r.top[1].token, 2);
  EXPECT_NEAR(r.top[1].logprob, 2.0 - z, 1e-5);
  EXPECT_EQ(r.sampled.token, r.token);
  EXPECT_EQ(r.sampled.rank, r.token == 1 ? 1 : (r.token == 2 ? 2 : 3));
}

TEST(Sampler, ScoreGivesTheTokensLogSoftmaxRankAndTopN) {
  const std::vector<float> logits = {0.5f, -1.0f, 4.0f, 2.0f, 2.0f};
  double z = 0.0;
  for (float v : logits) z += std::exp(static_cast<double>(v));
  z = std::log(z);
  Sampler s;
  ScoredToken low = s.score(logits, 1, 2);
  EXPECT_EQ(low.token.token, 1);
  EXPECT_NEAR(low.token.logprob, -1.0 - z, 1e-6);
  EXPECT_EQ(low.token.rank, 5);
  ASSERT_EQ(low.top.size(), 2u);
  EXPECT_EQ(low.top[0].token, 2);
  EXPECT_EQ(low.top[0].rank, 1);
  EXPECT_NEAR(low.top[0].logprob, 4.0 - z, 1e-6);
  EXPECT_EQ(low.top[1].token, 3) << "ties go to the lower id";
  EXPECT_EQ(low.top[1].rank, 2);
  ScoredToken tied = s.score(logits, 4, 0);
  EXPECT_EQ(tied.token.rank, 3);
  EXPECT_TRUE(tied.top.empty());
  EXPECT_EQ(s.score(logits, 2, 99).top.size(), logits.size()) << "top n is capped at the vocabulary";
}

TEST(Sampler, CounterUniformIsInOpenUnitInterval) {
  for (uint64_t i = 0; i < 1000; ++i) {
    double u = counter_uniform(42, i, 0);
    EXPECT_GT(u, 0.0);
    EXPECT_LT(u, 1.0);
  }
  EXPECT_NE(counter_uniform(1, 0, 0), counter_uniform(2, 0, 0));
}

}  // namespace
}  // namespace k2
