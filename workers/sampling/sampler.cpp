#include "workers/sampling/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace k2 {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// log-softmax of `logits` into `out` (same size), in double for the normaliser.
void log_softmax(std::span<const float> logits, std::vector<float>& out) {
  float mx = *std::max_element(logits.begin(), logits.end());
  double sum = 0.0;
  for (float v : logits) sum += std::exp(static_cast<double>(v) - mx);
  const float lse = mx + static_cast<float>(std::log(sum));
  out.resize(logits.size());
  for (size_t i = 0; i < logits.size(); ++i) out[i] = logits[i] - lse;
}

void apply_penalties(std::span<float> logits, const SamplingParams& p, const SequenceHistory& h) {
  const bool rep = p.repetition_penalty != 1.0;
  const bool freq_or_pres = p.frequency_penalty != 0.0 || p.presence_penalty != 0.0;
  if (!rep && !freq_or_pres) return;
  const int64_t vocab = static_cast<int64_t>(logits.size());
  std::unordered_map<int32_t, int64_t> output_counts;
  for (int32_t t : h.output_ids) ++output_counts[t];
  if (rep) {
    // vLLM: tokens seen in the prompt or the output are divided (positive) or multiplied.
    std::vector<int32_t> seen(h.prompt_ids.begin(), h.prompt_ids.end());
    seen.insert(seen.end(), h.output_ids.begin(), h.output_ids.end());
    std::sort(seen.begin(), seen.end());
    seen.erase(std::unique(seen.begin(), seen.end()), seen.end());
    const float r = static_cast<float>(p.repetition_penalty);
    for (int32_t t : seen) {
      if (t < 0 || t >= vocab) continue;
      logits[t] = logits[t] > 0 ? logits[t] / r : logits[t] * r;
    }
  }
  for (const auto& [t, count] : output_counts) {
    if (t < 0 || t >= vocab) continue;
    logits[t] -= static_cast<float>(p.frequency_penalty * static_cast<double>(count) + p.presence_penalty);
  }
}

std::vector<TokenLogprob> top_logprobs(const std::vector<float>& lp, int64_t k, std::vector<int32_t>& order) {
  const int64_t n = std::min<int64_t>(k, static_cast<int64_t>(lp.size()));
  if (n <= 0) return {};
  order.resize(lp.size());
  std::iota(order.begin(), order.end(), 0);
  std::partial_sort(order.begin(), order.begin() + n, order.end(), [&](int32_t a, int32_t b) {
    return lp[a] > lp[b] || (lp[a] == lp[b] && a < b);
  });
  std::vector<TokenLogprob> out;
  for (int64_t i = 0; i < n; ++i) out.push_back({order[i], lp[order[i]], i + 1});
  return out;
}

int64_t rank_of(const std::vector<float>& lp, int32_t token) {
  int64_t better = 0;
  for (size_t i = 0; i < lp.size(); ++i)
    if (lp[i] > lp[token] || (lp[i] == lp[token] && static_cast<int32_t>(i) < token)) ++better;
  return better + 1;
}

int32_t argmax(std::span<const float> v) {
  return static_cast<int32_t>(std::max_element(v.begin(), v.end()) - v.begin());
}

}  // namespace

double counter_uniform(uint64_t seed, uint64_t index, uint64_t lane) {
  uint64_t x = splitmix64(seed ^ splitmix64(index * 0x9e3779b97f4a7c15ULL + lane));
  return (static_cast<double>(x >> 11) + 0.5) / 9007199254740992.0;  // (0, 1)
}

SampleResult Sampler::sample(std::span<float> logits, const SamplingParams& p, const SequenceHistory& h,
                             std::span<const uint32_t> allowed_mask) {
  const int64_t vocab = static_cast<int64_t>(logits.size());
  SampleResult result;
  // Logprobs are of the model's raw distribution (vLLM V1's default raw_logprobs mode).
  std::vector<float> raw_lp;
  if (p.logprobs >= 0) log_softmax(logits, raw_lp);

  if (!allowed_mask.empty()) {
    const int64_t masked = std::min<int64_t>(vocab, static_cast<int64_t>(allowed_mask.size()) * 32);
    for (int64_t i = 0; i < masked; ++i)
      if (((allowed_mask[static_cast<size_t>(i >> 5)] >> (i & 31)) & 1u) == 0) logits[i] = kNegInf;
    for (int64_t i = masked; i < vocab; ++i) logits[i] = kNegInf;
  }

  if (static_cast<int64_t>(h.output_ids.size()) < p.min_tokens)
    for (int32_t t : p.stop_token_ids_for_min_tokens)
      if (t >= 0 && t < vocab) logits[t] = kNegInf;
  for (const auto& [t, bias] : p.logit_bias)
    if (t >= 0 && t < vocab) logits[t] += bias;
  apply_penalties(logits, p, h);

  if (p.temperature < 1e-5) {
    result.token = argmax(logits);
  } else {
    const float inv_t = static_cast<float>(1.0 / p.temperature);
    float mx = kNegInf;
    for (float& v : logits) v *= inv_t, mx = std::max(mx, v);
    probs_.resize(vocab);
    double sum = 0.0;
    for (int64_t i = 0; i < vocab; ++i) sum += probs_[i] = std::exp(logits[i] - mx);
    for (float& q : probs_) q = static_cast<float>(q / sum);
    // Candidates by descending probability; min_p, top_k and top_p cut this list.
    order_.resize(vocab);
    std::iota(order_.begin(), order_.end(), 0);
    std::sort(order_.begin(), order_.end(), [&](int32_t a, int32_t b) {
      return probs_[a] > probs_[b] || (probs_[a] == probs_[b] && a < b);
    });
    int64_t keep = vocab;
    if (p.min_p > 0.0) {
      const double floor = p.min_p * probs_[order_[0]];
      while (keep > 1 && probs_[order_[keep - 1]] < floor) --keep;
    }
    if (p.top_k > 0) keep = std::min(keep, p.top_k);
    double kept_mass = 0.0;
    for (int64_t i = 0; i < keep; ++i) kept_mass += probs_[order_[i]];
    if (p.top_p < 1.0) {
      double cum = 0.0;
      int64_t n = 0;
      while (n < keep) {
        cum += probs_[order_[n++]] / kept_mass;
        if (cum >= p.top_p) break;
      }
      keep = std::max<int64_t>(n, 1);
      kept_mass = 0.0;
      for (int64_t i = 0; i < keep; ++i) kept_mass += probs_[order_[i]];
    }
    const double u = counter_uniform(p.seed, h.output_ids.size(), 0) * kept_mass;
    double cum = 0.0;
    result.token = order_[keep - 1];
    for (int64_t i = 0; i < keep; ++i) {
      cum += probs_[order_[i]];
      if (u < cum) {
        result.token = order_[i];
        break;
      }
    }
  }
  if (p.logprobs >= 0) {
    result.sampled = {result.token, raw_lp[result.token], rank_of(raw_lp, result.token)};
    result.top = top_logprobs(raw_lp, p.logprobs, order_);
  }
  return result;
}

ScoredToken Sampler::score(std::span<const float> logits, int32_t token, int64_t top_n) {
  log_softmax(logits, logprobs_);
  ScoredToken out;
  out.token = {token, logprobs_[static_cast<size_t>(token)], rank_of(logprobs_, token)};
  out.top = top_logprobs(logprobs_, std::max<int64_t>(top_n, 0), order_);
  return out;
}

}  // namespace k2
