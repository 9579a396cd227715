// Multi-head Latent Attention of the DeepSeek-V3 family on the float32 path.
//
// Multi-token chunks (prefill, chunked prefill) use the naive form: keys and values are
// decompressed with kv_b from the latent rows in the cache, so a chunk attends to every
// earlier position of its sequence. One-token rows (decode) use the weight-absorbed form
// directly over the paged latent cache. Both write their new latent rows first.
//
// MlaLayer owns one layer's weights (Linear: float32 or packed); forward() is const and may
// run concurrently on different caches. kv_b is kept twice: whole for the naive form, and
// split per head (W_UKᵀ, W_UV) for the absorbed form, so decode reads each in the layout
// its product wants.
//
// Tensor parallel (Shard): a rank computes a contiguous range of heads: its rows of q_b /
// q_proj and kv_b, its columns of o_proj, so forward() returns its partial sum of the output
// (the model all-reduces it). q_a, kv_a and their norms are replicated, and so is the latent
// KV cache: a latent row is per token, not per head, so every rank writes and keeps all of
// it (as vLLM does for MLA).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "kernels/ref/mla.h"
#include "shm/status.h"
#include "workers/kv_cache.h"
#include "workers/loader/model_config.h"
#include "workers/models/forward_batch.h"
#include "workers/models/linear.h"
#include "workers/models/weight_loader.h"
#include "workers/parallel/shard.h"

namespace k2 {

// Attention hyper-parameters shared by all layers.
struct MlaParams {
  ref::MlaDims dims;  // dims.heads: the heads this rank computes (all of them unsharded)
  int64_t hidden = 0;
  std::optional<int64_t> q_lora_rank;  // nullopt: plain q_proj
  float eps = 0.0f;
  std::vector<float> inv_freq;  // [rope_dim / 2], YaRN
  float softmax_scale = 0.0f;

  // Fails on rope scaling this path does not implement (a type other than yarn, or
  // mscale != mscale_all_dim, which would scale cos/sin).
  static Result<MlaParams> from_config(const ModelConfig& config);
};

// Rows of a forward batch: which sequence each new token belongs to and its position.
struct BatchRows {
  int64_t rows = 0;
  std::vector<int64_t> positions;  // [rows]
  std::vector<int64_t> first_row;  // [sequences + 1]: sequence s owns rows first_row[s] ..
  static BatchRows from(const ForwardBatch& batch);
};

class MlaLayer {
 public:
  // `params.dims.heads` is the rank's head count: heads [rank·heads, (rank+1)·heads) of the
  // heads·shard.size in the checkpoint.
  static Result<MlaLayer> load(WeightLoader& loader, const std::string& prefix, const MlaParams& params,
                               WeightLayout layout, const Shard& shard = {});

  // x: [rows, hidden] (after input_layernorm) -> out: [rows, hidden]. Writes this layer's
  // latent rows of every new token into `cache`.
  void forward(const MlaParams& p, int64_t layer, const float* x, const ForwardBatch& batch, const BatchRows& rows,
               LatentKvCache& cache, float* out) const;
  // Weight bytes a decode step reads (the absorbed form: per-head W_UK/W_UV, not kv_b).
  size_t decode_bytes() const;
  // Every weight byte held (also kv_b whole, for the naive form).
  size_t resident_bytes() const { return decode_bytes() + kv_b_.bytes(); }

 private:
  void project_q(const MlaParams& p, const float* x, int64_t rows, float* q) const;
  void write_latents(const MlaParams& p, int64_t layer, const float* x, const ForwardBatch& batch,
                     const BatchRows& rows, LatentKvCache& cache) const;
  void attend_naive(const MlaParams& p, int64_t layer, const SequenceChunk& seq, const float* q,
                    const LatentKvCache& cache, float* attn) const;
  void attend_absorbed(const MlaParams& p, int64_t layer, const ForwardBatch& batch, const BatchRows& rows,
                       const std::vector<int64_t>& decode_seqs, const float* q, const LatentKvCache& cache,
                       float* attn) const;

  Linear q_a_, q_b_;       // q_lora path: q_a [q_lora, D], q_b [H*(nope+rope), q_lora]
  TensorF32 q_a_norm_;     // [q_lora]
  Linear q_proj_;          // plain path: [H*(nope+rope), D]
  Linear kv_a_;            // [kv_lora + rope, D]
  TensorF32 kv_a_norm_;    // [kv_lora]
  Linear kv_b_;            // [H*(nope+v), kv_lora]
  std::vector<Linear> uk_t_;  // per head: W_UKᵀ [kv_lora, nope]
  std::vector<Linear> uv_;    // per head: W_UV [v, kv_lora]
  Linear o_;               // [D, H*v]
};

}  // namespace k2
