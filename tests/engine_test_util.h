// Shared by the engine exactness tests: the golden prompts of a model set and the check of
// generated tokens against the golden greedy tokens (tests/data/models/README.md §8: compare
// only while the golden top-1/top-2 gap exceeds twice the logits tolerance).
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "workers/golden_set.h"

namespace k2::testing {

struct GoldenPrompt {
  std::string id;  // "<case>.<index>"
  std::vector<int32_t> prompt;
  std::vector<int32_t> greedy;
  std::vector<double> gaps;
};

inline std::string model_dir(const std::string& set) { return std::string(K2_TEST_DATA_DIR) + "/models/" + set; }

inline std::vector<GoldenPrompt> golden_prompts(const std::string& set, double* atol = nullptr) {
  auto golden = GoldenSet::open(model_dir(set));
  EXPECT_TRUE(golden.ok()) << golden.status().to_string();
  std::vector<GoldenPrompt> out;
  if (!golden.ok()) return out;
  if (atol) *atol = golden->logits_atol();
  for (const GoldenCase& c : golden->cases())
    for (size_t p = 0; p < c.prompts.size(); ++p)
      out.push_back({c.name + "." + std::to_string(p), c.prompts[p], c.greedy[p], c.decode_gaps[p]});
  return out;
}

// Number of tokens compared; adds a failure at the first mismatch.
inline size_t expect_golden_tokens(const GoldenPrompt& g, const std::vector<int32_t>& got, double atol,
                                   const std::string& what) {
  EXPECT_EQ(got.size(), g.greedy.size()) << what << " " << g.id;
  size_t compared = 0;
  for (size_t i = 0; i < g.greedy.size() && i < got.size() && i < g.gaps.size(); ++i) {
    if (g.gaps[i] <= 2 * atol) break;  // a near-tie: later tokens may legitimately differ
    EXPECT_EQ(got[i], g.greedy[i]) << what << " " << g.id << " token " << i;
    if (got[i] != g.greedy[i]) break;
    ++compared;
  }
  return compared;
}

}  // namespace k2::testing
