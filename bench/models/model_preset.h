// Model presets of `k2serve make-random-model`: the hyper-parameters of a DeepSeek-V3 /
// Kimi-K2 shaped text model, and the Kimi-K2 style config.json that describes them.
//
// Plain value types and pure functions; thread-safe.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "shm/status.h"

namespace k2::bench {

enum class RandomWeights {
  kBf16,  // every tensor BF16 (router bias F32)
  kFp8,   // decoder-layer Linears (not the router) F8_E4M3 + F32 weight_scale_inv blocks
  kInt4,  // routed experts compressed-tensors pack-quantized INT4, the rest as kBf16
};

const char* random_weights_name(RandomWeights w);
std::optional<RandomWeights> parse_random_weights(const std::string& name);

struct ModelPreset {
  std::string name;
  std::string description;
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t first_k_dense_replace = 0;
  int64_t num_attention_heads = 0;
  int64_t q_lora_rank = 0;
  int64_t kv_lora_rank = 0;
  int64_t qk_rope_head_dim = 0;
  int64_t qk_nope_head_dim = 0;
  int64_t v_head_dim = 0;
  int64_t n_routed_experts = 0;
  int64_t num_experts_per_tok = 0;
  int64_t n_shared_experts = 0;
  int64_t moe_intermediate_size = 0;
  int64_t intermediate_size = 0;
  double routed_scaling_factor = 2.827;  // Kimi-K2's
  double rope_theta = 50000.0;
  double rope_factor = 32.0;
  int64_t original_max_position_embeddings = 4096;
  double rms_norm_eps = 1e-6;

  // Parameters in total, and those one token reads (embedding counted as one row).
  int64_t total_params() const;
  int64_t active_params() const;
};

// The presets, in the order --help lists them.
const std::vector<ModelPreset>& model_presets();
Result<ModelPreset> find_model_preset(const std::string& name);

// FP8 blocks and INT4 groups of the files this tool writes (the real checkpoints' values).
inline constexpr int64_t kFp8Block = 128;
inline constexpr int64_t kInt4Group = 32;

// Token ids the config names; they come from the tokenizer that ships with the model.
struct ConfigTokenIds {
  std::optional<int64_t> bos;
  std::vector<int64_t> eos;
};

// config.json of a kimi_k2 checkpoint (the keys of Kimi-K2-Instruct's file), with YaRN
// rope_scaling and the quantization_config of `weights`.
nlohmann::json make_config_json(const ModelPreset& preset, RandomWeights weights, const ConfigTokenIds& ids);

}  // namespace k2::bench
