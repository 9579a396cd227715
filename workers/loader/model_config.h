// ModelConfig: every hyper-parameter of a DeepSeek-V3-family text model, read from
// config.json (kimi_k2 / deepseek_v3 at top level, or kimi_k25 with `text_config`).
// Nothing is inferred from tensor sizes. Plain value type, thread-compatible.
//
// Keys are required unless noted: a key the model needs that is missing, null where a value
// is needed, of the wrong JSON type or out of range is an error whose message names the key
// with its path ("text_config.rope_scaling.beta_fast"). Features the engine does not
// implement (softmax scoring, non-YaRN rope scaling, other quantisations) are kUnimplemented.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "shm/status.h"

namespace k2 {

struct RopeScaling {
  // "yarn", or "" when the config has no rope_scaling (or says "default"). Read from
  // `rope_scaling`, or from transformers v5's `rope_parameters` when that is absent.
  std::string type;
  double factor = 1.0;
  int64_t original_max_position_embeddings = 0;
  double beta_fast = 32.0;
  double beta_slow = 1.0;
  double mscale = 1.0;
  double mscale_all_dim = 0.0;
};

enum class WeightFormat { kBf16, kFp8Block, kInt4PackQuantized };

struct ModelConfig {
  std::string model_type;     // top-level model_type: kimi_k2, deepseek_v3, kimi_k25
  std::string tensor_prefix;  // "" or "language_model." (kimi_k25)

  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  std::optional<int64_t> q_lora_rank;  // nullopt: the query uses a plain q_proj
  int64_t kv_lora_rank = 0;
  int64_t qk_nope_head_dim = 0;
  int64_t qk_rope_head_dim = 0;
  int64_t v_head_dim = 0;
  int64_t intermediate_size = 0;      // dense MLP width
  int64_t moe_intermediate_size = 0;  // one routed expert's width
  int64_t n_routed_experts = 0;
  int64_t n_shared_experts = 0;
  int64_t num_experts_per_tok = 0;
  int64_t n_group = 1;
  int64_t topk_group = 1;
  int64_t first_k_dense_replace = 0;
  int64_t moe_layer_freq = 1;
  bool norm_topk_prob = true;
  double routed_scaling_factor = 1.0;
  std::string scoring_func;  // "sigmoid" (softmax is rejected: no family member uses it)
  std::string topk_method;   // "noaux_tc"
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  int64_t max_position_embeddings = 0;
  bool tie_word_embeddings = false;  // optional, default false
  // Optional; from the text config, else the top level. int, list or null. The generation
  // stop set may add generation_config.json's ids, which this does not read.
  std::vector<int64_t> eos_token_ids;
  std::optional<int64_t> bos_token_id;  // optional
  // Optional (text config, else top level): the token whose embedding rows a multimodal
  // prompt replaces by its encoded media rows. Absent: the model takes no media.
  std::optional<int32_t> media_placeholder_token_id;
  WeightFormat weight_format = WeightFormat::kBf16;
  // quantization_config (the text config's, else the top level's; absent: kBf16).
  int64_t fp8_block_out = 128, fp8_block_in = 128;  // fp8: weight_block_size, required
  int64_t int4_group_size = 32;  // compressed-tensors: config_groups.*.weights.group_size

  int64_t qk_head_dim() const { return qk_nope_head_dim + qk_rope_head_dim; }
  bool is_moe_layer(int64_t layer) const {
    return n_routed_experts > 0 && layer >= first_k_dense_replace && layer % moe_layer_freq == 0;
  }

  // Reads <dir>/config.json. A missing or out-of-range key the model needs is an error
  // that names the key.
  static Result<ModelConfig> from_dir(const std::filesystem::path& dir);
  static Result<ModelConfig> from_json_text(const std::string& text);
};

// The text of <dir>/config.json (errors name the file); every config reader starts here.
Result<std::string> read_config_json(const std::filesystem::path& dir);

}  // namespace k2
