// DeepSeekV3: the float32 DeepSeek-V3 / Kimi-K2 / Kimi-K2.5 text model (MLA attention,
// dense first layers, sigmoid-routed MoE with shared experts, untied lm_head).
//
// Every hyper-parameter comes from ModelConfig. The weights are read once from the
// Checkpoint and upcast to float32; the model owns them and nothing else. The KV cache and
// the block tables belong to the caller. forward() is const: concurrent calls are safe as
// long as they use different caches (on the fast path they take turns on the model's
// thread pool: K2_CPU_THREADS threads, default one per CPU the process may use).
//
// Tensor / expert parallel: each of N ranks loads the model with its Shard and a Communicator
// of the group (borrowed; it must outlive the model). The loader reads full tensors and keeps
// the rank's slice (mla_attention.h, moe.h); embeddings, norms, routers, lm_head and the
// latent KV cache are replicated. forward() then all-reduces the partial sums three times a
// layer at most (after o_proj, after the dense MLP or after the MoE's routed + shared sum),
// and every rank returns the same logits, bit for bit. Every rank must call forward() with
// the same batch, in the same order, one call at a time (the collectives pair up by order).
// Expert parallel across data-parallel ranks (Shard::experts_across_dp): a second group,
// `expert_comm`, of every DP rank's workers; each MoE layer then exchanges rows over it
// (moe_dispatch.h), so every worker of the deployment calls forward() equally often (an
// idle DP rank with a dummy batch), each DP rank with its own batch.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "shm/status.h"
#include "workers/kv_cache.h"
#include "workers/loader/checkpoint.h"
#include "workers/loader/model_config.h"
#include "workers/loader/progress.h"
#include "workers/models/forward_batch.h"
#include "workers/models/mla_attention.h"
#include "workers/models/moe.h"
#include "workers/models/weight_loader.h"
#include "workers/parallel/communicator.h"
#include "workers/parallel/shard.h"

namespace k2 {

class DeepSeekV3 {
 public:
  // Reads every weight the config names from `checkpoint` (its tensor prefix already set).
  // `formats` says which weights are packed for the CPU fast path (default: all float32).
  // `shard` / `comm`: this rank's part of a tensor- or expert-parallel group (comm may be null
  // only when shard.size is 1). `expert_comm`: the expert-parallel group across data-parallel
  // ranks (of shard.experts()'s rank and size), needed exactly when shard.experts_across_dp().
  static Result<std::unique_ptr<DeepSeekV3>> load(const Checkpoint& checkpoint, const ModelConfig& config,
                                                  ProgressStyle progress = ProgressStyle::kAuto,
                                                  const WeightLayouts& layouts = {}, const Shard& shard = {},
                                                  Communicator* comm = nullptr, Communicator* expert_comm = nullptr);
  // The same model with deterministic random weights (--load-format dummy): no checkpoint read.
  // A shard holds the slice of the very weights an unsharded dummy model holds.
  static Result<std::unique_ptr<DeepSeekV3>> load_dummy(const ModelConfig& config, uint64_t seed = 0,
                                                        const WeightLayouts& layouts = {}, const Shard& shard = {},
                                                        Communicator* comm = nullptr,
                                                        Communicator* expert_comm = nullptr);
  // Whether the config's shapes split over `shard`: heads, intermediate_size (dense layers),
  // moe_intermediate_size (tensor parallel) or n_routed_experts (expert parallel, by the
  // expert-parallel size shard.experts().size, TP x DP). The error names what "does not divide".
  static Status check_shard(const ModelConfig& config, const Shard& shard);

  const ModelConfig& config() const { return config_; }
  const WeightLayouts& weight_layouts() const { return layouts_; }
  const MlaParams& attention_params() const { return mla_; }
  // Width of one latent cache row: kv_lora_rank + qk_rope_head_dim.
  int64_t cache_row_dim() const { return mla_.dims.latent_dim(); }

  // One forward pass over a varlen batch. Writes the latent rows of every new token into
  // `cache` and returns the requested logit rows. A chunk's media_rows replace the
  // embeddings of its placeholder tokens. A batch that does not fit the model or the cache
  // (token id, block table too short, block id, empty chunk, media rows not one per
  // placeholder) is an error value.
  Result<Logits> forward(const ForwardBatch& batch, LatentKvCache& cache, ForwardTrace* trace = nullptr) const;

  // Weight bytes a decode step reads: `fixed` always (attention, norms, dense and shared
  // MLPs, routers, lm_head), plus `per_expert` for each distinct routed expert a MoE layer
  // uses in the step (the roofline's numerator in bench latency).
  struct DecodeBytes {
    uint64_t fixed = 0;
    uint64_t per_expert = 0;
  };
  DecodeBytes decode_bytes() const;
  const Shard& shard() const { return shard_; }

  // Token rows routed to each of this rank's experts, per MoE layer, since load (expert load
  // balance, for /metrics). Expert parallel: only the rank's own experts.
  struct ExpertLoad {
    int64_t layer = 0;
    int64_t first_expert = 0;       // global id of tokens[0]'s expert
    std::vector<uint64_t> tokens;   // [local experts]
  };
  std::vector<ExpertLoad> expert_load() const;
  // Every weight byte the model holds in its run-time layouts (embedding included).
  uint64_t resident_bytes() const;

 private:
  static Result<std::unique_ptr<DeepSeekV3>> build(WeightLoader& weights, const ModelConfig& config,
                                                   const WeightLayouts& layouts, const Shard& shard,
                                                   Communicator* comm, Communicator* expert_comm);

  struct Layer {
    TensorF32 input_norm, post_norm;  // [hidden]
    MlaLayer attention;
    std::optional<Mlp> dense;  // layers < first_k_dense_replace (and non-MoE layers)
    std::optional<Moe> moe;
  };

  DeepSeekV3() = default;
  Status validate(const ForwardBatch& batch, const LatentKvCache& cache) const;
  Status validate_media(const SequenceChunk& seq, const std::string& where) const;
  void embed(const ForwardBatch& batch, float* h) const;  // h: [rows, hidden]
  Status run_layer(int64_t l, const ForwardBatch& batch, const BatchRows& rows, LatentKvCache& cache,
                   std::vector<float>& h, ForwardTrace* trace) const;
  // Sums the ranks' partial outputs (a no-op unsharded).
  Status all_reduce(std::vector<float>& partial) const;
  // y = the MoE block of layer `layer` over x (this rank's partial sum when sharded).
  Status run_moe(const Layer& layer, int64_t l, const ForwardBatch& batch, const float* x, int64_t rows, float* y,
                 ForwardTrace* trace) const;

  ModelConfig config_;
  WeightLayouts layouts_;
  Shard shard_;
  Communicator* comm_ = nullptr;  // borrowed; null unsharded
  Communicator* expert_comm_ = nullptr;  // borrowed; null unless the experts span DP ranks
  MlaParams mla_;
  TensorF32 embed_;    // [vocab, hidden]
  std::vector<Layer> layers_;
  TensorF32 norm_;     // [hidden]
  // The fast path's threads (null on the float32 path, which runs on the caller alone).
  std::unique_ptr<cpu::ThreadPool> pool_;
  Linear lm_head_;     // [vocab, hidden]
};

}  // namespace k2
