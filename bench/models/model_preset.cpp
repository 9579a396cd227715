#include "bench/models/model_preset.h"

namespace k2::bench {
namespace {

using nlohmann::json;

ModelPreset bench_ds3() {
  ModelPreset p;
  p.name = "bench-ds3";
  p.description = "Kimi-K2's ratios scaled down: 8 layers (first dense), 64 experts top-8 + 1 shared, ~483M params";
  p.vocab_size = 32000;
  p.hidden_size = 1024;
  p.num_hidden_layers = 8;
  p.first_k_dense_replace = 1;
  p.num_attention_heads = 16;
  p.q_lora_rank = 384;
  p.kv_lora_rank = 512;
  p.qk_rope_head_dim = 64;
  p.qk_nope_head_dim = 128;
  p.v_head_dim = 128;
  p.n_routed_experts = 64;
  p.num_experts_per_tok = 8;
  p.n_shared_experts = 1;
  p.moe_intermediate_size = 256;
  p.intermediate_size = 2816;
  return p;
}

// One MoE decoder layer at Kimi-K2's real dimensions (its config.json values), for
// per-layer figures; the vocabulary is kept small because only the layer is of interest.
ModelPreset k2_layer() {
  ModelPreset p;
  p.name = "k2-layer";
  p.description = "one MoE decoder layer at Kimi-K2's real dimensions (7168 hidden, 384 experts top-8), small vocab";
  p.vocab_size = 32000;
  p.hidden_size = 7168;
  p.num_hidden_layers = 1;
  p.first_k_dense_replace = 0;
  p.num_attention_heads = 64;
  p.q_lora_rank = 1536;
  p.kv_lora_rank = 512;
  p.qk_rope_head_dim = 64;
  p.qk_nope_head_dim = 128;
  p.v_head_dim = 128;
  p.n_routed_experts = 384;
  p.num_experts_per_tok = 8;
  p.n_shared_experts = 1;
  p.moe_intermediate_size = 2048;
  p.intermediate_size = 18432;
  return p;
}

// Small enough for unit tests; hidden 160 leaves partial FP8 blocks (128 + 32) everywhere.
ModelPreset tiny() {
  ModelPreset p;
  p.name = "tiny";
  p.description = "a few MB, for tests: 2 layers (first dense), 8 experts top-2 + 1 shared";
  p.vocab_size = 1024;
  p.hidden_size = 160;
  p.num_hidden_layers = 2;
  p.first_k_dense_replace = 1;
  p.num_attention_heads = 2;
  p.q_lora_rank = 48;
  p.kv_lora_rank = 32;
  p.qk_rope_head_dim = 16;
  p.qk_nope_head_dim = 16;
  p.v_head_dim = 16;
  p.n_routed_experts = 8;
  p.num_experts_per_tok = 2;
  p.n_shared_experts = 1;
  p.moe_intermediate_size = 64;
  p.intermediate_size = 192;
  p.original_max_position_embeddings = 64;
  return p;
}

int64_t attention_params(const ModelPreset& p) {
  const int64_t qk = p.qk_nope_head_dim + p.qk_rope_head_dim;
  const int64_t h = p.num_attention_heads;
  return p.q_lora_rank * p.hidden_size + p.q_lora_rank + h * qk * p.q_lora_rank +
         (p.kv_lora_rank + p.qk_rope_head_dim) * p.hidden_size + p.kv_lora_rank +
         h * (p.qk_nope_head_dim + p.v_head_dim) * p.kv_lora_rank + p.hidden_size * h * p.v_head_dim;
}

json int4_quantization_config() {
  // Kimi-K2-Thinking's block, its `ignore` list verbatim.
  json weights = {{"actorder", nullptr},   {"block_structure", nullptr}, {"dynamic", false},
                  {"group_size", kInt4Group}, {"num_bits", 4},            {"observer", "minmax"},
                  {"observer_kwargs", json::object()}, {"strategy", "group"}, {"symmetric", true},
                  {"type", "int"}};
  json group = {{"input_activations", nullptr}, {"output_activations", nullptr},
                {"targets", json::array({"Linear"})}, {"weights", weights}};
  return {{"config_groups", {{"group_0", group}}},
          {"format", "pack-quantized"},
          {"ignore", json::array({"lm_head", "re:.*self_attn.*", "re:.*shared_experts.*",
                                  "re:.*mlp\\.(gate|up|gate_up|down)_proj.*"})},
          {"kv_cache_scheme", nullptr},
          {"quant_method", "compressed-tensors"},
          {"quantization_status", "compressed"}};
}

json fp8_quantization_config() {
  return {{"activation_scheme", "dynamic"},
          {"fmt", "e4m3"},
          {"quant_method", "fp8"},
          {"weight_block_size", json::array({kFp8Block, kFp8Block})}};
}

}  // namespace

const char* random_weights_name(RandomWeights w) {
  switch (w) {
    case RandomWeights::kBf16: return "bf16";
    case RandomWeights::kFp8: return "fp8";
    case RandomWeights::kInt4: return "int4";
  }
  return "?";
}

std::optional<RandomWeights> parse_random_weights(const std::string& name) {
  for (RandomWeights w : {RandomWeights::kBf16, RandomWeights::kFp8, RandomWeights::kInt4}) {
    if (name == random_weights_name(w)) return w;
  }
  return std::nullopt;
}

int64_t ModelPreset::total_params() const {
  const int64_t mlp = 3 * hidden_size * moe_intermediate_size;
  int64_t n = 2 * vocab_size * hidden_size + hidden_size;  // embed, lm_head, final norm
  for (int64_t l = 0; l < num_hidden_layers; ++l) {
    n += attention_params(*this) + 2 * hidden_size;
    if (l < first_k_dense_replace) {
      n += 3 * hidden_size * intermediate_size;
    } else {
      n += (n_routed_experts + n_shared_experts) * mlp + n_routed_experts * hidden_size + n_routed_experts;
    }
  }
  return n;
}

int64_t ModelPreset::active_params() const {
  const int64_t mlp = 3 * hidden_size * moe_intermediate_size;
  int64_t n = 2 * hidden_size + vocab_size * hidden_size;  // one embedding row, final norm, lm_head
  for (int64_t l = 0; l < num_hidden_layers; ++l) {
    n += attention_params(*this) + 2 * hidden_size;
    if (l < first_k_dense_replace) {
      n += 3 * hidden_size * intermediate_size;
    } else {
      n += (num_experts_per_tok + n_shared_experts) * mlp + n_routed_experts * hidden_size + n_routed_experts;
    }
  }
  return n;
}

const std::vector<ModelPreset>& model_presets() {
  static const std::vector<ModelPreset> presets = {bench_ds3(), k2_layer(), tiny()};
  return presets;
}

Result<ModelPreset> find_model_preset(const std::string& name) {
  std::string names;
  for (const ModelPreset& p : model_presets()) {
    if (p.name == name) return p;
    names += (names.empty() ? "" : ", ") + p.name;
  }
  return invalid_argument("unknown preset '" + name + "' (one of: " + names + ")");
}

json make_config_json(const ModelPreset& p, RandomWeights weights, const ConfigTokenIds& ids) {
  json c = {
      {"architectures", json::array({"DeepseekV3ForCausalLM"})},
      {"attention_bias", false},
      {"attention_dropout", 0.0},
      {"auto_map",
       {{"AutoConfig", "configuration_deepseek.DeepseekV3Config"},
        {"AutoModel", "modeling_deepseek.DeepseekV3Model"},
        {"AutoModelForCausalLM", "modeling_deepseek.DeepseekV3ForCausalLM"}}},
      {"aux_loss_alpha", 0.001},
      {"first_k_dense_replace", p.first_k_dense_replace},
      {"hidden_act", "silu"},
      {"hidden_size", p.hidden_size},
      {"initializer_range", 0.02},
      {"intermediate_size", p.intermediate_size},
      {"kv_lora_rank", p.kv_lora_rank},
      {"max_position_embeddings",
       static_cast<int64_t>(static_cast<double>(p.original_max_position_embeddings) * p.rope_factor)},
      {"model_type", "kimi_k2"},
      {"moe_intermediate_size", p.moe_intermediate_size},
      {"moe_layer_freq", 1},
      {"n_group", 1},
      {"n_routed_experts", p.n_routed_experts},
      {"n_shared_experts", p.n_shared_experts},
      {"norm_topk_prob", true},
      {"num_attention_heads", p.num_attention_heads},
      {"num_experts_per_tok", p.num_experts_per_tok},
      {"num_hidden_layers", p.num_hidden_layers},
      {"num_key_value_heads", p.num_attention_heads},
      {"num_nextn_predict_layers", 0},
      {"pretraining_tp", 1},
      {"q_lora_rank", p.q_lora_rank},
      {"qk_nope_head_dim", p.qk_nope_head_dim},
      {"qk_rope_head_dim", p.qk_rope_head_dim},
      {"rms_norm_eps", p.rms_norm_eps},
      {"rope_scaling",
       {{"beta_fast", 1.0},
        {"beta_slow", 1.0},
        {"factor", p.rope_factor},
        {"mscale", 1.0},
        {"mscale_all_dim", 1.0},
        {"original_max_position_embeddings", p.original_max_position_embeddings},
        {"type", "yarn"}}},
      {"rope_theta", p.rope_theta},
      {"routed_scaling_factor", p.routed_scaling_factor},
      {"scoring_func", "sigmoid"},
      {"seq_aux", true},
      {"tie_word_embeddings", false},
      {"topk_group", 1},
      {"topk_method", "noaux_tc"},
      {"torch_dtype", "bfloat16"},
      {"transformers_version", "4.48.3"},
      {"use_cache", true},
      {"v_head_dim", p.v_head_dim},
      {"vocab_size", p.vocab_size},
  };
  if (ids.bos) c["bos_token_id"] = *ids.bos;
  if (ids.eos.size() == 1) c["eos_token_id"] = ids.eos[0];
  if (ids.eos.size() > 1) c["eos_token_id"] = ids.eos;
  if (weights == RandomWeights::kFp8) c["quantization_config"] = fp8_quantization_config();
  if (weights == RandomWeights::kInt4) c["quantization_config"] = int4_quantization_config();
  return c;
}

}  // namespace k2::bench
