// vLLM's prompt_logprobs shape from engine positions (logprobs_format.h).
#include "frontend/openai/logprobs_format.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace k2::openai {
namespace {

std::shared_ptr<const Tokenizer> demo_tokenizer() {
  auto t = Tokenizer::load(std::string(K2_TEST_DATA_DIR) + "/models/demo-trained");
  EXPECT_TRUE(t.ok()) << t.status().to_string();
  return *t;
}

std::string decode(const Tokenizer& tok, int32_t id) {
  auto s = tok.decode(std::span<const int32_t>(&id, 1), false);
  return s.ok() ? *s : std::string();
}

TEST(PromptLogprobsJson, NullFirstThenPromptTokenThenTopNInVllmOrder) {
  auto tok = demo_tokenizer();
  const std::vector<int32_t> ids = tok->encode("hello world again", false);
  ASSERT_GE(ids.size(), 2u);
  const int32_t a = ids[0], b = ids[1];
  std::vector<PositionLogprobs> positions(2);
  // The prompt token outside the top 2: its own entry first with its rank, then ranks 1, 2.
  positions[0].chosen = {a, -7.25f, 40};
  positions[0].top = {{b, -0.5f, 1}, {a + 1, -1.0f, 2}};
  // The prompt token is the top-1: one entry, rank 1 (a dict keeps the first key's place).
  positions[1].chosen = {b, -0.125f, 1};
  positions[1].top = {{b, -0.125f, 1}, {a, -std::numeric_limits<float>::infinity(), 2}};
  for (bool as_ids : {false, true}) {
    TokenStrings ts{tok, as_ids};
    ojson j = prompt_logprobs_json(ts, positions);
    ASSERT_TRUE(j.is_array());
    ASSERT_EQ(j.size(), 3u);
    EXPECT_TRUE(j[0].is_null());
    ASSERT_TRUE(j[1].is_object());
    ASSERT_EQ(j[1].size(), 3u);
    auto it = j[1].begin();
    EXPECT_EQ(it.key(), std::to_string(a));
    EXPECT_EQ((*it)["rank"], 40);
    EXPECT_DOUBLE_EQ((*it)["logprob"].get<double>(), -7.25);
    EXPECT_EQ((*it)["decoded_token"], decode(*tok, a)) << "decoded_token is text even with token ids";
    ++it;
    EXPECT_EQ(it.key(), std::to_string(b));
    EXPECT_EQ((*it)["rank"], 1);
    ++it;
    EXPECT_EQ(it.key(), std::to_string(a + 1));
    EXPECT_EQ((*it)["rank"], 2);
    ASSERT_EQ(j[2].size(), 2u);
    EXPECT_EQ(j[2].begin().key(), std::to_string(b));
    EXPECT_EQ(j[2][std::to_string(b)]["rank"], 1);
    EXPECT_DOUBLE_EQ(j[2][std::to_string(a)]["logprob"].get<double>(), -9999.0) << "-inf is clamped as vLLM";
    for (const auto& [key, entry] : j[1].items()) {
      EXPECT_EQ(entry.size(), 3u);
      EXPECT_TRUE(entry.contains("logprob") && entry.contains("rank") && entry.contains("decoded_token"));
    }
  }
}

TEST(PromptLogprobsJson, AOneTokenPromptIsASingleNull) {
  TokenStrings ts{demo_tokenizer(), false};
  ojson j = prompt_logprobs_json(ts, {});
  ASSERT_EQ(j.size(), 1u);
  EXPECT_TRUE(j[0].is_null());
}

}  // namespace
}  // namespace k2::openai
