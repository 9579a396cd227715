// vLLM's "random" dataset (vllm/benchmarks/datasets.py: RandomDataset) without a tokenizer:
// each prompt is a list of token ids, sent as the completions endpoint's `prompt`.
//   lengths  ~ uniform integers in [floor(len * (1 - r)), ceil(len * (1 + r))]
//   prompt i = (offset_i + i + j) % vocab_size for j < input_len_i, offset_i uniform in [0, vocab)
// vLLM detokenizes and re-tokenizes the ids; sending ids directly keeps the lengths exact.
// Plain value types and pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <vector>

#include "shm/status.h"

namespace k2::bench {

struct SampleRequest {
  std::vector<int64_t> prompt_ids;
  int64_t expected_output_len = 0;
};

struct RandomDatasetOptions {
  int64_t num_prompts = 1000;
  int64_t input_len = 1024;
  int64_t output_len = 128;
  double range_ratio = 0.0;
  int64_t prefix_len = 0;  // ids shared by every prompt, before its random part
  int64_t vocab_size = 0;
  uint64_t seed = 0;
};

Result<std::vector<SampleRequest>> make_random_requests(const RandomDatasetOptions& options);

}  // namespace k2::bench
