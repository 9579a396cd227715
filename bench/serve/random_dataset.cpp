#include "bench/serve/random_dataset.h"

#include <cmath>
#include <random>
#include <string>

namespace k2::bench {
namespace {

// Length bounds of vLLM's RandomDataset; at least 1 token.
std::pair<int64_t, int64_t> length_range(int64_t len, double ratio) {
  const auto lo = static_cast<int64_t>(std::floor(static_cast<double>(len) * (1.0 - ratio)));
  const auto hi = static_cast<int64_t>(std::ceil(static_cast<double>(len) * (1.0 + ratio)));
  return {std::max<int64_t>(1, lo), std::max<int64_t>(1, hi)};
}

}  // namespace

Result<std::vector<SampleRequest>> make_random_requests(const RandomDatasetOptions& o) {
  if (o.vocab_size <= 0) return invalid_argument("the random dataset needs a vocabulary size (--random-vocab-size)");
  if (o.num_prompts <= 0) return invalid_argument("--num-prompts must be positive");
  if (o.input_len < 0 || o.output_len <= 0 || o.prefix_len < 0)
    return invalid_argument("--random-input-len must be >= 0 and --random-output-len > 0");
  if (!(o.range_ratio >= 0.0 && o.range_ratio < 1.0))
    return invalid_argument("--random-range-ratio must be in [0, 1), got " + std::to_string(o.range_ratio));
  std::mt19937_64 rng(o.seed);
  auto [in_lo, in_hi] = length_range(o.input_len, o.range_ratio);
  auto [out_lo, out_hi] = length_range(o.output_len, o.range_ratio);
  std::uniform_int_distribution<int64_t> in_dist(in_lo, in_hi), out_dist(out_lo, out_hi);
  std::uniform_int_distribution<int64_t> id_dist(0, o.vocab_size - 1);
  std::vector<int64_t> prefix(static_cast<size_t>(o.prefix_len));
  for (auto& id : prefix) id = id_dist(rng);
  std::vector<SampleRequest> out(static_cast<size_t>(o.num_prompts));
  for (int64_t i = 0; i < o.num_prompts; ++i) {
    SampleRequest& r = out[static_cast<size_t>(i)];
    const int64_t in_len = o.input_len == 0 ? 0 : in_dist(rng);
    r.expected_output_len = out_dist(rng);
    const int64_t offset = id_dist(rng);
    r.prompt_ids = prefix;
    for (int64_t j = 0; j < in_len; ++j) r.prompt_ids.push_back((offset + i + j) % o.vocab_size);
    if (r.prompt_ids.empty()) r.prompt_ids.push_back(offset);  // the endpoint needs one token
  }
  return out;
}

}  // namespace k2::bench
