#include "workers/models/deepseek_v3.h"

#include <algorithm>
#include <cstdlib>
#include <string>

#include "kernels/ref/dense.h"
#include "workers/models/moe_dispatch.h"

namespace k2 {

Result<std::unique_ptr<DeepSeekV3>> DeepSeekV3::load(const Checkpoint& checkpoint, const ModelConfig& config,
                                                     ProgressStyle progress_style, const WeightLayouts& layouts,
                                                     const Shard& shard, Communicator* comm,
                                                     Communicator* expert_comm) {
  ProgressReporter progress("loading " + checkpoint.dir().string(), checkpoint.total_bytes(), progress_style);
  WeightLoader w(checkpoint, &progress);
  K2_ASSIGN_OR_RETURN(std::unique_ptr<DeepSeekV3> m, build(w, config, layouts, shard, comm, expert_comm));
  progress.finish();
  return m;
}

Result<std::unique_ptr<DeepSeekV3>> DeepSeekV3::load_dummy(const ModelConfig& config, uint64_t seed,
                                                           const WeightLayouts& layouts, const Shard& shard,
                                                           Communicator* comm, Communicator* expert_comm) {
  WeightLoader w(seed);
  return build(w, config, layouts, shard, comm, expert_comm);
}

Status DeepSeekV3::check_shard(const ModelConfig& c, const Shard& shard) {
  K2_RETURN_IF_ERROR(shard.validate());
  auto must_divide = [&](const char* what, int64_t value, const Shard& by = {}) -> Status {
    const Shard& s = by.size > 1 ? by : shard;
    if (s.divides(value)) return Status::ok_status();
    return invalid_argument(std::string("config ") + what + " " + std::to_string(value) + " does not divide by the " +
                            (shard.expert_parallel ? "expert" : "tensor") + "-parallel size " +
                            std::to_string(s.size));
  };
  K2_RETURN_IF_ERROR(must_divide("num_attention_heads", c.num_attention_heads));
  bool dense = false, moe = false;
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) (c.is_moe_layer(l) ? moe : dense) = true;
  if (dense) K2_RETURN_IF_ERROR(must_divide("intermediate_size", c.intermediate_size));
  if (moe && shard.expert_parallel) {
    K2_RETURN_IF_ERROR(must_divide("n_routed_experts", c.n_routed_experts, shard.experts()));
  }
  // The shared experts are split by tensor parallelism in both modes, the routed ones in TP only.
  if (moe && (!shard.expert_parallel || c.n_shared_experts > 0)) {
    K2_RETURN_IF_ERROR(must_divide("moe_intermediate_size", c.moe_intermediate_size));
  }
  return Status::ok_status();
}

Result<std::unique_ptr<DeepSeekV3>> DeepSeekV3::build(WeightLoader& w, const ModelConfig& config,
                                                      const WeightLayouts& layouts, const Shard& shard,
                                                      Communicator* comm, Communicator* expert_comm) {
  const ModelConfig& c = config;
  if (c.tie_word_embeddings) return unimplemented("config tie_word_embeddings true is not supported");
  K2_RETURN_IF_ERROR(check_shard(c, shard));
  if (shard.sharded() && (comm == nullptr || comm->size() != shard.size || comm->rank() != shard.rank)) {
    return invalid_argument("a sharded model (" + shard.describe() + ") needs a communicator of that rank and size");
  }
  const Shard experts = shard.experts();
  if (shard.experts_across_dp() &&
      (expert_comm == nullptr || expert_comm->size() != experts.size || expert_comm->rank() != experts.rank)) {
    return invalid_argument("a model whose experts span data-parallel ranks (" + shard.describe() +
                            ") needs an expert-parallel communicator of that rank and size");
  }
  std::unique_ptr<DeepSeekV3> m(new DeepSeekV3());
  m->config_ = c;
  m->layouts_ = layouts;
  m->shard_ = shard;
  m->comm_ = shard.sharded() ? comm : nullptr;
  m->expert_comm_ = shard.experts_across_dp() ? expert_comm : nullptr;
  w.set_int4_group(layouts.int4_group);
  w.set_fp8_block(c.fp8_block_out, c.fp8_block_in);
  if (!layouts.exact()) {
    cpu::ThreadPoolOptions options;
    if (const char* env = std::getenv("K2_CPU_THREADS")) options.threads = std::atoi(env);
    m->pool_ = std::make_unique<cpu::ThreadPool>(options);
  }
  K2_ASSIGN_OR_RETURN(m->mla_, MlaParams::from_config(c));
  m->mla_.dims.heads = shard.count(c.num_attention_heads);
  K2_ASSIGN_OR_RETURN(m->embed_, w.tensor("model.embed_tokens.weight", {c.vocab_size, c.hidden_size}));
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const std::string prefix = "model.layers." + std::to_string(l) + ".";
    K2_ASSIGN_OR_RETURN(TensorF32 input_norm, w.tensor(prefix + "input_layernorm.weight", {c.hidden_size}));
    K2_ASSIGN_OR_RETURN(TensorF32 post_norm, w.tensor(prefix + "post_attention_layernorm.weight", {c.hidden_size}));
    K2_ASSIGN_OR_RETURN(MlaLayer attention, MlaLayer::load(w, prefix + "self_attn.", m->mla_, layouts.dense, shard));
    Layer layer{std::move(input_norm), std::move(post_norm), std::move(attention), std::nullopt, std::nullopt};
    if (c.is_moe_layer(l)) {
      K2_ASSIGN_OR_RETURN(Moe moe, Moe::load(w, prefix + "mlp.", c, layouts, shard));
      layer.moe = std::move(moe);
    } else {
      K2_ASSIGN_OR_RETURN(Mlp mlp, Mlp::load(w, prefix + "mlp.", c.hidden_size, c.intermediate_size, layouts.dense,
                                             shard));
      layer.dense = std::move(mlp);
    }
    m->layers_.push_back(std::move(layer));
  }
  K2_ASSIGN_OR_RETURN(m->norm_, w.tensor("model.norm.weight", {c.hidden_size}));
  K2_ASSIGN_OR_RETURN(m->lm_head_, w.linear("lm_head", c.vocab_size, c.hidden_size, layouts.dense));
  return m;
}

DeepSeekV3::DecodeBytes DeepSeekV3::decode_bytes() const {
  DecodeBytes b;
  for (const Layer& l : layers_) {
    b.fixed += l.attention.decode_bytes() + (l.input_norm.data.size() + l.post_norm.data.size()) * sizeof(float);
    if (l.dense) b.fixed += l.dense->bytes();
    if (l.moe) {
      b.fixed += l.moe->always_read_bytes();
      b.per_expert = l.moe->expert_bytes();
    }
  }
  b.fixed += lm_head_.bytes() + norm_.data.size() * sizeof(float);
  return b;
}

std::vector<DeepSeekV3::ExpertLoad> DeepSeekV3::expert_load() const {
  std::vector<ExpertLoad> out;
  for (size_t l = 0; l < layers_.size(); ++l) {
    if (!layers_[l].moe) continue;
    out.push_back(ExpertLoad{static_cast<int64_t>(l), layers_[l].moe->first_expert(),
                             layers_[l].moe->tokens_per_expert()});
  }
  return out;
}

uint64_t DeepSeekV3::resident_bytes() const {
  uint64_t b = (embed_.data.size() + norm_.data.size()) * sizeof(float) + lm_head_.bytes();
  for (const Layer& l : layers_) {
    b += l.attention.resident_bytes() + (l.input_norm.data.size() + l.post_norm.data.size()) * sizeof(float);
    if (l.dense) b += l.dense->bytes();
    if (l.moe) b += l.moe->resident_bytes();
  }
  return b;
}

Status DeepSeekV3::validate(const ForwardBatch& batch, const LatentKvCache& cache) const {
  if (cache.num_layers() != config_.num_hidden_layers || cache.row_dim() != cache_row_dim()) {
    return invalid_argument("kv cache shape does not match the model");
  }
  for (size_t s = 0; s < batch.sequences.size(); ++s) {
    const SequenceChunk& seq = batch.sequences[s];
    const std::string where = "batch sequence " + std::to_string(s) + ": ";
    if (seq.tokens.empty()) return invalid_argument(where + "no tokens");
    if (seq.start_pos < 0) return invalid_argument(where + "negative start position");
    for (int32_t t : seq.tokens) {
      if (t < 0 || t >= config_.vocab_size) return invalid_argument(where + "token id " + std::to_string(t));
    }
    const int64_t end = seq.start_pos + static_cast<int64_t>(seq.tokens.size());
    if (static_cast<int64_t>(seq.block_table.size()) < cache.blocks_for(end)) {
      return invalid_argument(where + "block table holds fewer than " + std::to_string(end) + " positions");
    }
    for (int64_t b = 0; b < cache.blocks_for(end); ++b) {
      const int32_t id = seq.block_table[static_cast<size_t>(b)];
      if (id < 0 || id >= cache.num_blocks()) return invalid_argument(where + "block id " + std::to_string(id));
    }
    K2_RETURN_IF_ERROR(validate_media(seq, where));
  }
  return Status::ok_status();
}

// A multimodal chunk brings exactly one hidden-wide row per placeholder token.
Status DeepSeekV3::validate_media(const SequenceChunk& seq, const std::string& where) const {
  if (!seq.media_rows) return Status::ok_status();
  if (!config_.media_placeholder_token_id) {
    return invalid_argument(where + "media rows given, but the model has no media_placeholder_token_id");
  }
  const int32_t placeholder = *config_.media_placeholder_token_id;
  const size_t placeholders = static_cast<size_t>(std::count(seq.tokens.begin(), seq.tokens.end(), placeholder));
  const size_t d = static_cast<size_t>(config_.hidden_size);
  if (seq.media_rows->size() != placeholders * d) {
    return invalid_argument(where + std::to_string(placeholders) + " media placeholders but " +
                            std::to_string(seq.media_rows->size()) + " floats of media rows (" +
                            std::to_string(seq.media_rows->size() / d) + " rows of " + std::to_string(d) + ")");
  }
  return Status::ok_status();
}

// h = embed_tokens[token] for every new token, with the media rows over the placeholders
// (README of the vision goldens §5.8: positions stay 1-D, nothing scaled).
void DeepSeekV3::embed(const ForwardBatch& batch, float* h) const {
  const int64_t d = config_.hidden_size;
  const int32_t placeholder = config_.media_placeholder_token_id.value_or(-1);
  for (const SequenceChunk& seq : batch.sequences) {
    const float* media = seq.media_rows ? seq.media_rows->data() : nullptr;
    for (int32_t t : seq.tokens) {
      if (media != nullptr && t == placeholder) {
        std::copy_n(media, d, h);
        media += d;
      } else {
        std::copy_n(embed_.data.data() + t * d, d, h);
      }
      h += d;
    }
  }
}

// h = h + Attn(RMSNorm_in(h)); h = h + FFN(RMSNorm_post(h)), all [rows, hidden].
Status DeepSeekV3::all_reduce(std::vector<float>& partial) const {
  if (comm_ == nullptr) return Status::ok_status();
  return comm_->all_reduce_sum(partial);
}

Status DeepSeekV3::run_moe(const Layer& layer, int64_t l, const ForwardBatch& batch, const float* x, int64_t rows,
                           float* y, ForwardTrace* trace) const {
  RouterTrace* router = nullptr;
  if (trace != nullptr) {
    router = &trace->routers.emplace_back();
    router->layer = l;
  }
  if (expert_comm_ != nullptr) {
    return moe_forward_across_dp(*layer.moe, shard_, *expert_comm_, x, rows, batch.dummy, y, router);
  }
  layer.moe->forward(x, rows, y, router, /*count_load=*/!batch.dummy);
  return Status::ok_status();
}

Status DeepSeekV3::run_layer(int64_t l, const ForwardBatch& batch, const BatchRows& rows, LatentKvCache& cache,
                             std::vector<float>& h, ForwardTrace* trace) const {
  const Layer& layer = layers_[static_cast<size_t>(l)];
  const int64_t d = config_.hidden_size, n = rows.rows;
  const float eps = static_cast<float>(config_.rms_norm_eps);
  std::vector<float> x(h.size()), y(h.size());  // [rows, hidden]

  ref::rms_norm(h.data(), d, layer.input_norm.data.data(), n, d, eps, x.data(), d);
  layer.attention.forward(mla_, l, x.data(), batch, rows, cache, y.data());
  K2_RETURN_IF_ERROR(all_reduce(y));
  ref::axpy(1.0f, y.data(), n * d, h.data());

  ref::rms_norm(h.data(), d, layer.post_norm.data.data(), n, d, eps, x.data(), d);
  if (layer.moe) {
    K2_RETURN_IF_ERROR(run_moe(layer, l, batch, x.data(), n, y.data(), trace));
  } else {
    layer.dense->forward(x.data(), n, y.data());
  }
  K2_RETURN_IF_ERROR(all_reduce(y));
  ref::axpy(1.0f, y.data(), n * d, h.data());
  if (trace != nullptr) trace->hidden.push_back(h);
  return Status::ok_status();
}

Result<Logits> DeepSeekV3::forward(const ForwardBatch& batch, LatentKvCache& cache, ForwardTrace* trace) const {
  K2_RETURN_IF_ERROR(validate(batch, cache));
  ParallelScope parallel(pool_.get());
  const BatchRows rows = BatchRows::from(batch);
  const int64_t d = config_.hidden_size, vocab = config_.vocab_size;

  std::vector<float> h(static_cast<size_t>(rows.rows * d));  // residual stream [rows, hidden]
  embed(batch, h.data());
  if (trace != nullptr) trace->embed = h;

  for (int64_t l = 0; l < config_.num_hidden_layers; ++l) {
    K2_RETURN_IF_ERROR(run_layer(l, batch, rows, cache, h, trace).with_context("layer " + std::to_string(l)));
  }

  // Final norm and lm_head over the requested rows only.
  std::vector<int64_t> picked;
  for (size_t s = 0; s < batch.sequences.size(); ++s) {
    if (batch.logit_rows == LogitRows::kLastPerSequence && !batch.sequences[s].all_logits) {
      picked.push_back(rows.first_row[s + 1] - 1);
    } else {
      for (int64_t i = rows.first_row[s]; i < rows.first_row[s + 1]; ++i) picked.push_back(i);
    }
  }
  if (trace != nullptr) {
    trace->final_norm.resize(h.size());
    ref::rms_norm(h.data(), d, norm_.data.data(), rows.rows, d, static_cast<float>(config_.rms_norm_eps),
                  trace->final_norm.data(), d);
  }
  const int64_t out_rows = static_cast<int64_t>(picked.size());
  std::vector<float> normed(static_cast<size_t>(out_rows * d));  // [out_rows, hidden]
  for (int64_t i = 0; i < out_rows; ++i) std::copy_n(h.data() + picked[i] * d, d, normed.data() + i * d);
  ref::rms_norm(normed.data(), d, norm_.data.data(), out_rows, d, static_cast<float>(config_.rms_norm_eps),
                normed.data(), d);
  Logits logits{.rows = out_rows, .vocab = vocab, .data = std::vector<float>(static_cast<size_t>(out_rows * vocab))};
  lm_head_.forward(normed.data(), out_rows, logits.data.data());
  return logits;
}

}  // namespace k2
