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

Result<std::span<const float>> ModelRunner::pixels_of(const protocol::MediaItem& item) {
  auto it = media_arenas_.find(item.arena);
  if (it == media_arenas_.end()) {
    K2_ASSIGN_OR_RETURN(Arena arena, Arena::open(item.arena));
    it = media_arenas_.emplace(item.arena, std::move(arena)).first;
  }
  K2_ASSIGN_OR_RETURN(std::span<std::byte> bytes, it->second.view(item.pixels));
  return std::span<const float>(reinterpret_cast<const float*>(bytes.data()), bytes.size() / sizeof(float));
}

Status ModelRunner::encode_item(RequestState& state, size_t i, int64_t row_offset) {
  const protocol::MediaItem& item = state.media[i];
  const int64_t width = model_.config().hidden_size;
  float* dst = state.media_rows.data() + row_offset * width;
  const size_t floats = static_cast<size_t>(item.num_tokens) * static_cast<size_t>(width);
  const MediaHash key{item.hash_low, item.hash_high};
  if (encoder_cache_ != nullptr) {
    if (auto hit = encoder_cache_->lookup(key); hit && hit->size() == floats) {
      std::copy(hit->begin(), hit->end(), dst);
      return Status::ok_status();
    }
  }
  if (vision_ == nullptr) return invalid_argument("a media item was sent, but this model has no vision tower");
  const MediaGrid grid{item.grid_t, item.grid_h, item.grid_w};
  K2_ASSIGN_OR_RETURN(int64_t tokens, vision_->num_tokens(grid));
  if (tokens != item.num_tokens)
    return invalid_argument("a media item of grid [" + std::to_string(grid.t) + "," + std::to_string(grid.h) + "," +
                            std::to_string(grid.w) + "] has " + std::to_string(tokens) + " tokens, not " +
                            std::to_string(item.num_tokens));
  K2_ASSIGN_OR_RETURN(std::span<const float> pixels, pixels_of(item));
  if (pixels.size() != static_cast<size_t>(grid.patches() * vision_->config().patch_values()))
    return invalid_argument("a media item's pixel_values do not match its grid");
  K2_ASSIGN_OR_RETURN(MediaEmbedding emb, vision_->encode(grid, pixels));
  if (emb.width != width || emb.data.size() != floats)
    return internal_error("the vision tower's output does not match the text model's hidden size");
  ++num_encoded_;
  std::copy(emb.data.begin(), emb.data.end(), dst);
  if (encoder_cache_ != nullptr) encoder_cache_->insert(key, emb.data);
  return Status::ok_status();
}

Result<std::optional<std::span<const float>>> ModelRunner::media_for_chunk(const std::string& id, RequestState& state,
                                                                            int64_t begin, int64_t end) {
  using Out = std::optional<std::span<const float>>;
  if (state.media.empty() || !model_.config().media_placeholder_token_id) return Out();
  const int32_t placeholder = *model_.config().media_placeholder_token_id;
  const int64_t prompt = state.num_prompt_tokens;
  if (begin >= prompt) return Out();  // decode: generated ids are embedded as themselves
  for (int64_t p = prompt; p < end; ++p) {
    if (state.tokens[static_cast<size_t>(p)] == placeholder)
      return invalid_argument("request " + id + ": a recomputed chunk holds a generated media placeholder");
  }
  const int64_t width = model_.config().hidden_size;
  if (state.media_rows.empty()) {
    int64_t total = 0;
    for (const auto& m : state.media) total += m.num_tokens;
    state.media_rows.assign(static_cast<size_t>(total * width), 0.f);
  }
  int64_t row_offset = 0;
  for (size_t i = 0; i < state.media.size(); ++i) {
    const protocol::MediaItem& m = state.media[i];
    const int64_t lo = m.offset, hi = int64_t{m.offset} + m.num_tokens;
    if (!state.media_ready[i] && lo < end && hi > begin) {
      for (int64_t p = lo; p < hi; ++p) {
        if (p < static_cast<int64_t>(state.tokens.size()) && state.tokens[static_cast<size_t>(p)] != placeholder)
          return invalid_argument("request " + id + ": media span does not hold placeholder tokens");
      }
      K2_RETURN_IF_ERROR(encode_item(state, i, row_offset));
      state.media_ready[i] = true;
    }
    row_offset += m.num_tokens;
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

Result<protocol::StepResult> ModelRunner::execute(const protocol::StepPlan& plan) {
  protocol::StepResult result;
  result.step_id = plan.step_id;
  result.worker_rank = rank_;
  if (encoder_cache_ != nullptr) {
    result.mm_cache_queries = encoder_cache_->queries();
    result.mm_cache_hits = encoder_cache_->hits();
  }
  for (const auto& id : plan.finished_request_ids) requests_.erase(id);
  if (plan.requests.empty()) return result;

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
    K2_ASSIGN_OR_RETURN(seq.media_rows, media_for_chunk(r.request_id, *states[i], r.start_position,
                                                        int64_t{r.start_position} + r.num_tokens));
    batch.sequences.push_back(seq);
  }
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
  return result;
}

}  // namespace k2
