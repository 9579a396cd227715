#include "workers/model_runner.h"

#include <algorithm>

namespace k2 {

SamplingParams to_sampler_params(const protocol::SamplingParams& p) {
  SamplingParams s;
  s.temperature = p.temperature;
  s.top_p = p.top_p;
  s.top_k = p.top_k;
  s.min_p = p.min_p;
  s.presence_penalty = p.presence_penalty;
  s.frequency_penalty = p.frequency_penalty;
  s.repetition_penalty = p.repetition_penalty;
  for (const auto& b : p.logit_bias) s.logit_bias[b.token_id] += b.bias;
  s.seed = static_cast<uint64_t>(p.seed.value_or(0));
  s.logprobs = p.logprobs ? static_cast<int64_t>(*p.logprobs) : -1;
  s.min_tokens = p.min_tokens;
  // As vLLM's min_tokens processor: every stop id, eos ids unless ignore_eos.
  s.stop_token_ids_for_min_tokens = p.stop_token_ids;
  if (!p.ignore_eos)
    s.stop_token_ids_for_min_tokens.insert(s.stop_token_ids_for_min_tokens.end(), p.eos_token_ids.begin(),
                                           p.eos_token_ids.end());
  return s;
}

ModelRunner::ModelRunner(const DeepSeekV3& model, LatentKvCache& cache, uint32_t worker_rank)
    : model_(model), cache_(cache), rank_(worker_rank) {}

Status ModelRunner::apply(const protocol::StepPlan& plan, const protocol::ScheduledRequest& r) {
  if (r.token_ids.location != protocol::DataLocation::kInline)
    return invalid_argument("request " + r.request_id + ": token ids are not inline");
  if (r.blocks.replace) {
    if (r.params_index < 0 || static_cast<size_t>(r.params_index) >= plan.sampling_params.size())
      return invalid_argument("request " + r.request_id + ": new without sampling parameters");
    if (r.cached_token_ids.size() != r.start_position)
      return invalid_argument("request " + r.request_id + ": cached prefix does not reach its start position");
    RequestState state;
    state.tokens = r.cached_token_ids;
    state.num_prompt_tokens = r.num_prompt_tokens;
    const protocol::SamplingParams& wire = plan.sampling_params[static_cast<size_t>(r.params_index)];
    state.params = to_sampler_params(wire);
    // Scored once, on the pass that produces the first token (not again after recompute).
    if (wire.prompt_logprobs && r.num_output_tokens == 0) {
      if (r.start_position != 0)
        return invalid_argument("request " + r.request_id +
                                ": prompt_logprobs need the prompt computed from position 0 (no prefix-cache hit)");
      state.prompt_logprobs = static_cast<int64_t>(*wire.prompt_logprobs);
    }
    state.media = r.media;
    state.media_ready.assign(r.media.size(), false);
    state.media_first_row.assign(1, 0);
    for (const auto& m : r.media) state.media_first_row.push_back(state.media_first_row.back() + m.num_tokens);
    requests_[r.request_id] = std::move(state);
  }
  auto it = requests_.find(r.request_id);
  if (it == requests_.end()) return invalid_argument("request " + r.request_id + " is unknown to worker");
  RequestState& state = it->second;
  if (r.params_index >= 0 && !r.blocks.replace)
    state.params = to_sampler_params(plan.sampling_params[static_cast<size_t>(r.params_index)]);
  if (state.tokens.size() != r.start_position)
    return invalid_argument("request " + r.request_id + ": starts at " + std::to_string(r.start_position) +
                            " but the worker has seen " + std::to_string(state.tokens.size()) + " tokens");
  state.block_table.insert(state.block_table.end(), r.blocks.block_ids.begin(), r.blocks.block_ids.end());
  state.tokens.insert(state.tokens.end(), r.token_ids.ids.begin(), r.token_ids.ids.end());
  if (cache_.blocks_for(static_cast<int64_t>(state.tokens.size())) > static_cast<int64_t>(state.block_table.size()))
    return invalid_argument("request " + r.request_id + ": block table too short");
  return Status::ok_status();
}

Result<std::span<const float>> ModelRunner::pixels_of(const protocol::MediaItem& item,
                                                      const std::vector<protocol::MediaPixels>* shipped) {
  if (shipped != nullptr) {
    const protocol::MediaPixels* p = protocol::find_pixels(*shipped, item.hash_low, item.hash_high);
    if (p == nullptr) return invalid_argument("the pixels of a media item to encode did not come with the plan");
    return std::span<const float>(p->values);
  }
  K2_ASSIGN_OR_RETURN(std::span<std::byte> bytes, media_arenas_.view(item.arena, item.pixels));
  return std::span<const float>(reinterpret_cast<const float*>(bytes.data()), bytes.size() / sizeof(float));
}

// An item is served from the encoder cache only where every rank of the group has it, so the
// ranks always run the same encoder collectives (their caches could differ after an error).
Status ModelRunner::encode_items(RequestState& state, const std::vector<size_t>& items,
                                 const std::vector<protocol::MediaPixels>* shipped) {
  const int64_t width = model_.config().hidden_size;
  auto rows_of = [&](size_t i) { return state.media_rows.data() + state.media_first_row[i] * width; };
  auto floats_of = [&](size_t i) { return static_cast<size_t>(state.media[i].num_tokens) * static_cast<size_t>(width); };
  auto key_of = [&](size_t i) { return MediaHash{state.media[i].hash_low, state.media[i].hash_high}; };
  std::vector<float> hits(items.size(), 0.0f);
  for (size_t k = 0; k < items.size() && encoder_cache_ != nullptr; ++k) {
    if (auto hit = encoder_cache_->lookup(key_of(items[k])); hit && hit->size() == floats_of(items[k])) {
      std::copy(hit->begin(), hit->end(), rows_of(items[k]));
      hits[k] = 1.0f;
    }
  }
  const float ranks = comm_ != nullptr ? static_cast<float>(comm_->size()) : 1.0f;
  if (ranks > 1.0f && !items.empty()) K2_RETURN_IF_ERROR(comm_->all_reduce_sum(hits));
  std::vector<size_t> misses;
  std::vector<MediaInput> inputs;
  for (size_t k = 0; k < items.size(); ++k) {
    if (hits[k] == ranks) continue;
    const protocol::MediaItem& item = state.media[items[k]];
    if (!encoder_) return invalid_argument("a media item was sent, but this model has no vision tower");
    const MediaGrid grid{item.grid_t, item.grid_h, item.grid_w};
    K2_ASSIGN_OR_RETURN(int64_t tokens, vision_->num_tokens(grid));
    if (tokens != item.num_tokens)
      return invalid_argument("a media item of grid [" + std::to_string(grid.t) + "," + std::to_string(grid.h) + "," +
                              std::to_string(grid.w) + "] has " + std::to_string(tokens) + " tokens, not " +
                              std::to_string(item.num_tokens));
    K2_ASSIGN_OR_RETURN(std::span<const float> pixels, pixels_of(item, shipped));
    if (pixels.size() != static_cast<size_t>(grid.patches() * vision_->config().patch_values()))
      return invalid_argument("a media item's pixel_values do not match its grid");
    misses.push_back(items[k]);
    inputs.push_back(MediaInput{grid, pixels});
  }
  if (inputs.empty()) return Status::ok_status();
  K2_ASSIGN_OR_RETURN(std::vector<MediaEmbedding> encoded, encoder_->encode(inputs));
  for (size_t j = 0; j < misses.size(); ++j) {
    const MediaEmbedding& emb = encoded[j];
    if (emb.width != width || emb.data.size() != floats_of(misses[j]))
      return internal_error("the vision tower's output does not match the text model's hidden size");
    ++num_encoded_;
    std::copy(emb.data.begin(), emb.data.end(), rows_of(misses[j]));
    if (encoder_cache_ != nullptr) encoder_cache_->insert(key_of(misses[j]), emb.data);
  }
  return Status::ok_status();
}

Status ModelRunner::check_placeholders(const std::string& id, const RequestState& state, size_t i,
                                       int32_t placeholder) const {
  const protocol::MediaItem& m = state.media[i];
  const int64_t hi = std::min<int64_t>(int64_t{m.offset} + m.num_tokens, static_cast<int64_t>(state.tokens.size()));
  for (int64_t p = m.offset; p < hi; ++p) {
    if (state.tokens[static_cast<size_t>(p)] != placeholder)
      return invalid_argument("request " + id + ": media span does not hold placeholder tokens");
  }
  return Status::ok_status();
}

Status ModelRunner::copy_twin_rows(RequestState& state, size_t i) {
  const protocol::MediaItem& m = state.media[i];
  const int64_t width = model_.config().hidden_size;
  for (size_t j = 0; j < state.media.size(); ++j) {
    const protocol::MediaItem& twin = state.media[j];
    if (!state.media_ready[j] || twin.hash_low != m.hash_low || twin.hash_high != m.hash_high ||
        twin.num_tokens != m.num_tokens)
      continue;
    const auto from = state.media_rows.begin() + state.media_first_row[j] * width;
    std::copy(from, from + int64_t{m.num_tokens} * width, state.media_rows.begin() + state.media_first_row[i] * width);
    return Status::ok_status();
  }
  return not_found("no held item with the same content");
}

Result<std::optional<std::span<const float>>> ModelRunner::media_for_chunk(
    const protocol::ScheduledRequest& r, RequestState& state, const std::vector<protocol::MediaPixels>* shipped) {
  using Out = std::optional<std::span<const float>>;
  const std::string& id = r.request_id;
  const int64_t begin = r.start_position, end = begin + r.num_tokens;
  if (state.media.empty() || !model_.config().media_placeholder_token_id) return Out();
  const int32_t placeholder = *model_.config().media_placeholder_token_id;
  const int64_t prompt = state.num_prompt_tokens;
  if (begin >= prompt) return Out();  // decode: generated ids are embedded as themselves
  for (int64_t p = prompt; p < end; ++p) {
    if (state.tokens[static_cast<size_t>(p)] == placeholder)
      return invalid_argument("request " + id + ": a recomputed chunk holds a generated media placeholder");
  }
  const int64_t width = model_.config().hidden_size;
  if (state.media_rows.empty()) state.media_rows.assign(static_cast<size_t>(state.media_first_row.back() * width), 0.f);
  // The items the scheduler's encoder budget gave this step first; then the chunk's other
  // items, which must be held already or be copies of a held item.
  std::vector<size_t> to_encode;  // one batch: in data mode the ranks share it
  for (uint32_t i : r.encode_media) {
    if (i >= state.media.size()) return invalid_argument("request " + id + ": encode_media names an unknown item");
    if (state.media_ready[i] || std::find(to_encode.begin(), to_encode.end(), i) != to_encode.end()) continue;
    K2_RETURN_IF_ERROR(check_placeholders(id, state, i, placeholder));
    to_encode.push_back(i);
  }
  K2_RETURN_IF_ERROR(encode_items(state, to_encode, shipped));
  for (size_t i : to_encode) state.media_ready[i] = true;
  for (size_t i = 0; i < state.media.size(); ++i) {
    const protocol::MediaItem& m = state.media[i];
    if (state.media_ready[i] || int64_t{m.offset} >= end || int64_t{m.offset} + m.num_tokens <= begin) continue;
    K2_RETURN_IF_ERROR(check_placeholders(id, state, i, placeholder));
    if (!copy_twin_rows(state, i).ok())
      return invalid_argument("request " + id + ": the chunk reaches media item " + std::to_string(i) +
                              ", which the plan does not list for encoding");
    state.media_ready[i] = true;
  }
  const auto prompt_ids = std::span<const int32_t>(state.tokens).first(static_cast<size_t>(prompt));
  return Out(media_rows_for_chunk(prompt_ids, placeholder, state.media_rows, width, static_cast<size_t>(begin),
                                  static_cast<size_t>(end)));
}

void ModelRunner::score_row(RequestState& state, std::span<const float> row, int32_t token) {
  ScoredToken scored = sampler_.score(row, token, state.prompt_logprobs);
  protocol::TokenLogprobs& lp = state.prompt_scores;
  lp.width = static_cast<uint32_t>(1 + scored.top.size());
  ++lp.num_positions;
  lp.token_ids.push_back(scored.token.token);
  lp.logprobs.push_back(scored.token.logprob);
  lp.ranks.push_back(static_cast<int32_t>(scored.token.rank));
  for (const TokenLogprob& t : scored.top) {
    lp.token_ids.push_back(t.token);
    lp.logprobs.push_back(t.logprob);
  }
}

void ModelRunner::score_prompt_chunk(const protocol::ScheduledRequest& r, RequestState& state, const Logits& logits,
                                     int64_t first_row) {
  const int64_t prompt = state.num_prompt_tokens;
  const int64_t start = r.start_position;
  const int64_t end = start + r.num_tokens;
  if (!state.pending_row.empty()) {
    score_row(state, state.pending_row, state.tokens[static_cast<size_t>(start)]);
    state.pending_row.clear();
  }
  // The row of position p is the distribution of the token at p + 1.
  for (int64_t p = start; p < end && p + 1 < prompt; ++p) {
    const float* row = logits.row(first_row + (p - start));
    if (p + 1 < end) {
      score_row(state, std::span<const float>(row, static_cast<size_t>(logits.vocab)),
                state.tokens[static_cast<size_t>(p + 1)]);
    } else {
      state.pending_row.assign(row, row + logits.vocab);
    }
  }
  if (end >= prompt) {
    state.prompt_scores_done = std::move(state.prompt_scores);
    state.prompt_scores = {};
    state.prompt_logprobs = -1;
  }
}

protocol::SampledRequest ModelRunner::sample(const protocol::ScheduledRequest& r, RequestState& state,
                                             std::span<float> logits) {
  const size_t prompt = std::min<size_t>(state.num_prompt_tokens, state.tokens.size());
  SequenceHistory history{std::span<const int32_t>(state.tokens).first(prompt),
                          std::span<const int32_t>(state.tokens).subspan(prompt)};
  SampleResult result = sampler_.sample(logits, state.params, history, r.allowed_token_mask);
  protocol::SampledRequest out;
  out.slot = r.slot;
  out.token_ids = {result.token};
  if (state.params.logprobs >= 0) {
    protocol::TokenLogprobs lp;
    lp.num_positions = 1;
    lp.width = static_cast<uint32_t>(1 + result.top.size());
    lp.token_ids.push_back(result.sampled.token);
    lp.logprobs.push_back(result.sampled.logprob);
    lp.ranks.push_back(static_cast<int32_t>(result.sampled.rank));
    for (const TokenLogprob& t : result.top) {
      lp.token_ids.push_back(t.token);
      lp.logprobs.push_back(t.logprob);
    }
    out.logprobs = std::move(lp);
  }
  if (state.prompt_scores_done) {
    out.prompt_logprobs = std::move(*state.prompt_scores_done);
    state.prompt_scores_done.reset();
  }
  return out;
}

Result<protocol::StepResult> ModelRunner::execute(const protocol::StepPlan& plan,
                                                 const std::vector<protocol::MediaPixels>* shipped) {
  protocol::StepResult result;
  result.step_id = plan.step_id;
  result.worker_rank = rank_;
  if (encoder_cache_ != nullptr) {
    result.mm_cache_queries = encoder_cache_->queries();
    result.mm_cache_hits = encoder_cache_->hits();
  }
  for (const auto& id : plan.finished_request_ids) requests_.erase(id);
  if (plan.requests.empty()) {
    if (plan.report_expert_load) {
      K2_ASSIGN_OR_RETURN(result.expert_load, expert_load_since_last_report());
    }
    return result;
  }

  std::vector<RequestState*> states;
  ForwardBatch batch;
  batch.logit_rows = LogitRows::kLastPerSequence;
  int64_t total_rows = 0;  // logit rows the model returns
  for (const auto& r : plan.requests) {
    K2_RETURN_IF_ERROR(apply(plan, r));
    RequestState& state = requests_.at(r.request_id);
    states.push_back(&state);
    if (r.num_tokens == 0) return invalid_argument("request " + r.request_id + ": no tokens scheduled");
    // Prompt scores need every row of the chunk: only that sequence asks for them.
    total_rows += state.prompt_logprobs >= 0 ? r.num_tokens : 1;
  }
  for (size_t i = 0; i < plan.requests.size(); ++i) {
    const auto& r = plan.requests[i];
    SequenceChunk seq{std::span<const int32_t>(r.token_ids.ids), r.start_position,
                      std::span<const int32_t>(states[i]->block_table)};
    seq.all_logits = states[i]->prompt_logprobs >= 0;
    K2_ASSIGN_OR_RETURN(seq.media_rows, media_for_chunk(r, *states[i], shipped));
    batch.sequences.push_back(seq);
  }
  // The model leaves a dummy forward's rows out of the expert load (with experts spread over
  // DP ranks, this rank's experts meanwhile count the other ranks' real rows).
  batch.dummy = (plan.step_id & protocol::kDummyStepBit) != 0;
  K2_ASSIGN_OR_RETURN(Logits logits, model_.forward(batch, cache_));
  if (logits.rows != total_rows)
    return internal_error("model returned " + std::to_string(logits.rows) + " logit rows, expected " +
                          std::to_string(total_rows));
  int64_t first_row = 0;  // of request i's rows
  for (size_t i = 0; i < plan.requests.size(); ++i) {
    const auto& r = plan.requests[i];
    const bool all = batch.sequences[i].all_logits;
    if (all) score_prompt_chunk(r, *states[i], logits, first_row);
    const int64_t last_row = all ? first_row + r.num_tokens - 1 : first_row;
    first_row += all ? r.num_tokens : 1;
    if (!r.sample) continue;
    std::span<float> row(logits.data.data() + last_row * logits.vocab, static_cast<size_t>(logits.vocab));
    result.samples.push_back(sample(r, *states[i], row));
  }
  if (encoder_cache_ != nullptr) {
    result.mm_cache_queries = encoder_cache_->queries();
    result.mm_cache_hits = encoder_cache_->hits();
  }
  if (plan.report_expert_load) {
    K2_ASSIGN_OR_RETURN(result.expert_load, expert_load_since_last_report());
  }
  return result;
}

namespace {

// Sums counts over the group exactly with the float all-reduce: each count travels as its low
// 16 bits and the rest, so sums stay exact while a rank's count since the last report is
// below 2^40 / ranks (a report per second sees far fewer routed tokens).
Status sum_counts(Communicator& group, std::vector<uint64_t>& counts) {
  const size_t n = counts.size();
  std::vector<float> parts(2 * n);
  for (size_t i = 0; i < n; ++i) {
    parts[i] = static_cast<float>(counts[i] & 0xffffu);
    parts[n + i] = static_cast<float>(counts[i] >> 16);
  }
  K2_RETURN_IF_ERROR(group.all_reduce_sum(parts));
  for (size_t i = 0; i < n; ++i)
    counts[i] = (static_cast<uint64_t>(parts[n + i]) << 16) + static_cast<uint64_t>(parts[i]);
  return Status::ok_status();
}

}  // namespace

Result<std::optional<protocol::ExpertLoad>> ModelRunner::expert_load_since_last_report() {
  const bool sum = group_ != nullptr && group_->size() > 1 && model_.shard().expert_parallel;
  if (rank_ != 0 && !sum) return std::optional<protocol::ExpertLoad>();  // rank 0 counted the same
  const std::vector<DeepSeekV3::ExpertLoad> now = model_.expert_load();
  if (now.empty()) return std::optional<protocol::ExpertLoad>();
  const int64_t experts = model_.config().n_routed_experts;
  protocol::ExpertLoad out;
  out.num_experts = static_cast<uint32_t>(experts);
  out.tokens.assign(now.size() * static_cast<size_t>(experts), 0);
  reported_load_.resize(now.size());
  for (size_t i = 0; i < now.size(); ++i) {
    const DeepSeekV3::ExpertLoad& layer = now[i];
    if (layer.first_expert < 0 || layer.first_expert + static_cast<int64_t>(layer.tokens.size()) > experts)
      return internal_error("expert load of layer " + std::to_string(layer.layer) + " lies outside the experts");
    out.layers.push_back(static_cast<uint32_t>(layer.layer));
    std::vector<uint64_t>& before = reported_load_[i];
    before.resize(layer.tokens.size(), 0);
    uint64_t* row = out.tokens.data() + i * static_cast<size_t>(experts) + layer.first_expert;
    for (size_t e = 0; e < layer.tokens.size(); ++e) row[e] = layer.tokens[e] - before[e];
    before = layer.tokens;
  }
  if (sum) K2_RETURN_IF_ERROR(sum_counts(*group_, out.tokens));
  if (rank_ != 0) return std::optional<protocol::ExpertLoad>();
  return std::optional<protocol::ExpertLoad>(std::move(out));
}

}  // namespace k2
