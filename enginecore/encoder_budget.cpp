#include "enginecore/encoder_budget.h"

#include <algorithm>
#include <climits>

namespace k2::engine {

Result<EncoderBudget> EncoderBudget::create(const EncoderBudgetConfig& config, int32_t max_num_batched_tokens) {
  if (config.max_num_encoder_input_tokens < 0 || config.encoder_cache_size < 0 || config.max_tokens_per_mm_item < 0) {
    return invalid_argument("encoder budget sizes must not be negative");
  }
  if (max_num_batched_tokens < 1) return invalid_argument("max_num_batched_tokens must be at least 1");
  const int32_t configured =
      config.max_num_encoder_input_tokens > 0 ? config.max_num_encoder_input_tokens : max_num_batched_tokens;
  const int32_t compute = std::max(configured, config.max_tokens_per_mm_item);
  // Without a configured size or the model's largest item there is no size to hold items
  // against: refusing items larger than the step budget would refuse servable images.
  const bool sized = config.encoder_cache_size > 0 || config.max_tokens_per_mm_item > 0;
  const int32_t cache = !sized ? INT32_MAX
                               : std::max(config.encoder_cache_size > 0 ? config.encoder_cache_size : compute,
                                          config.max_tokens_per_mm_item);
  return EncoderBudget(compute, cache, config.shared_cache);
}

Status EncoderBudget::check_media(const std::string& request_id, std::span<const MediaSpan> media) const {
  for (const MediaSpan& m : media) {
    if (m.num_tokens > cache_size_) {
      return out_of_range("request " + request_id + ": a media item of " + std::to_string(m.num_tokens) +
                          " tokens exceeds the encoder cache size of " + std::to_string(cache_size_) +
                          " tokens; send a smaller image or raise the encoder cache size");
    }
  }
  return {};
}

void EncoderBudget::begin_step() {
  used_ = 0;
  new_this_step_.clear();
}

bool EncoderBudget::cached_elsewhere(const BlockHash& hash) const {
  return shared_cache_ && holders_.contains(hash) && !new_this_step_.contains(hash);
}

void EncoderBudget::hold(const BlockHash& hash) {
  if (++holders_[hash] == 1) new_this_step_.insert(hash);
}

void EncoderBudget::release(Request& request) {
  for (size_t i = 0; i < request.media().size(); ++i) {
    if (!request.media_encoded(i)) continue;
    auto it = holders_.find(request.media()[i].hash);
    if (it != holders_.end() && --it->second == 0) holders_.erase(it);
  }
  request.clear_media_encoded();
}

int32_t EncoderBudget::num_holders(const BlockHash& hash) const {
  auto it = holders_.find(hash);
  return it == holders_.end() ? 0 : it->second;
}

bool EncoderBudget::fits(int32_t num_tokens, int32_t planned) const {
  const int64_t total = int64_t{used_} + planned + num_tokens;
  // An item larger than the whole budget goes alone, as the step's first encoder work.
  return total <= compute_budget_ || (used_ == 0 && planned == 0);
}

namespace {

// Whether another item with item i's content is held (or listed in `covered`): its rows are copied.
bool has_twin(const Request& request, size_t i, const std::vector<int32_t>& covered) {
  const std::vector<MediaSpan>& media = request.media();
  for (size_t j = 0; j < media.size(); ++j) {
    if (j == i || !(media[j].hash == media[i].hash)) continue;
    if (request.media_encoded(j)) return true;
    if (std::find(covered.begin(), covered.end(), static_cast<int32_t>(j)) != covered.end()) return true;
  }
  return false;
}

}  // namespace

EncoderPlan EncoderBudget::plan(const Request& request, int32_t start, int32_t num_new_tokens) const {
  EncoderPlan plan;
  plan.num_new_tokens = num_new_tokens;
  const std::vector<MediaSpan>& media = request.media();
  if (num_new_tokens <= 0 || media.empty() || start >= media.back().end()) return plan;
  const int32_t end = start + num_new_tokens;
  // Items are sorted and disjoint: skip those that end before the chunk.
  auto first = std::upper_bound(media.begin(), media.end(), start,
                                [](int32_t pos, const MediaSpan& m) { return pos < m.end(); });
  for (auto it = first; it != media.end() && it->offset < end; ++it) {
    const auto i = static_cast<size_t>(it - media.begin());
    if (request.media_encoded(i)) continue;
    if (has_twin(request, i, plan.covered)) {
      plan.covered.push_back(static_cast<int32_t>(i));
      continue;
    }
    if (cached_elsewhere(it->hash)) {
      // Listed, uncharged: the worker takes the rows from its encoder cache.
      plan.encode.push_back(static_cast<int32_t>(i));
      plan.covered.push_back(static_cast<int32_t>(i));
      continue;
    }
    if (!fits(it->num_tokens, plan.num_encoder_tokens)) {
      // Only the text before the item; nothing when the chunk starts inside it.
      plan.num_new_tokens = std::max(0, it->offset - start);
      break;
    }
    plan.encode.push_back(static_cast<int32_t>(i));
    plan.covered.push_back(static_cast<int32_t>(i));
    plan.num_encoder_tokens += it->num_tokens;
  }
  return plan;
}

void EncoderBudget::commit(Request& request, const EncoderPlan& plan) {
  for (int32_t i : plan.covered) {
    const auto index = static_cast<size_t>(i);
    if (request.media_encoded(index)) continue;
    request.set_media_encoded(index);
    hold(request.media()[index].hash);
  }
  used_ += plan.num_encoder_tokens;
}

}  // namespace k2::engine
