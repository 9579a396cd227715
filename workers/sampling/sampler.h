// Sampler: turns one step's logits into tokens, per sequence, with vLLM V1's semantics and
// order: the structured-output mask, allowed/min-token masks, logit_bias, penalties, logprobs of the raw logits,
// temperature, min_p, top_k, top_p, then a draw. It also scores given tokens (prompt
// logprobs) against raw logits. Draws use a counter-based generator keyed
// by (request seed, output index), so a seeded request gets the same tokens whatever else
// shares its batch. Stateless apart from scratch buffers: one Sampler per worker thread.
#pragma once

#include <cstdint>
#include <span>
#include <unordered_map>
#include <vector>

namespace k2 {

struct SamplingParams {
  double temperature = 1.0;  // < 1e-5 means greedy
  double top_p = 1.0;
  int64_t top_k = 0;  // 0 or -1: disabled
  double min_p = 0.0;
  double presence_penalty = 0.0;
  double frequency_penalty = 0.0;
  double repetition_penalty = 1.0;
  std::unordered_map<int32_t, float> logit_bias;
  uint64_t seed = 0;  // always set: the engine draws one for requests without a seed
  int64_t logprobs = -1;  // -1: none; k >= 0: the sampled token's logprob plus the top k
  int64_t min_tokens = 0;
  std::vector<int32_t> stop_token_ids_for_min_tokens;  // masked while output < min_tokens
};

// What a sequence has produced so far: penalties and min_tokens read it.
struct SequenceHistory {
  std::span<const int32_t> prompt_ids;
  std::span<const int32_t> output_ids;
};

struct TokenLogprob {
  int32_t token = 0;
  float logprob = 0.0f;
  int64_t rank = 0;  // 1-based rank of the token among the vocabulary
};

struct SampleResult {
  int32_t token = 0;
  TokenLogprob sampled;             // when logprobs >= 0
  std::vector<TokenLogprob> top;    // top `logprobs` tokens, best first
};

// A given token's place in one row's raw distribution (vLLM's prompt logprobs).
struct ScoredToken {
  TokenLogprob token;             // logprob and 1-based rank of the given token
  std::vector<TokenLogprob> top;  // the top n tokens, best first
};

class Sampler {
 public:
  // `logits` is modified in place (it is the step's scratch). `vocab` columns.
  // allowed_mask (structured outputs, applied first as vLLM applies the grammar bitmask): bit
  // (id % 32) of word (id / 32) set = id may be drawn; ids past the mask may not. Empty: all.
  SampleResult sample(std::span<float> logits, const SamplingParams& params, const SequenceHistory& history,
                      std::span<const uint32_t> allowed_mask = {});

  // log_softmax of the unprocessed `logits` (no penalties, bias or temperature, as vLLM's
  // raw prompt logprobs): `token`'s logprob and rank, and the `top_n` best tokens.
  // `token` must index `logits`.
  ScoredToken score(std::span<const float> logits, int32_t token, int64_t top_n);

 private:
  std::vector<int32_t> order_;
  std::vector<float> probs_;
  std::vector<float> logprobs_;
};

// The uniform variate in (0, 1) that request `seed` uses for output token `index`, draw `lane`.
double counter_uniform(uint64_t seed, uint64_t index, uint64_t lane);

}  // namespace k2
