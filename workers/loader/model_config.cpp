#include "workers/loader/model_config.h"

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace k2 {
namespace {

using nlohmann::json;

constexpr int64_t kMaxSize = int64_t{1} << 24;   // widths, vocabulary
constexpr int64_t kMaxCount = int64_t{1} << 16;  // layers, heads, experts

// Typed, range-checked reads of one JSON object; every error names "<path><key>".
class Keys {
 public:
  Keys(const json& object, std::string path) : object_(object), path_(std::move(path)) {}

  std::string name(const std::string& key) const { return path_ + key; }
  // The path of this object itself ("text_config.quantization_config").
  std::string self_name() const { return path_.empty() ? std::string() : path_.substr(0, path_.size() - 1); }
  bool present(const std::string& key) const {
    auto it = object_.find(key);
    return it != object_.end() && !it->is_null();
  }
  const json* find(const std::string& key) const {
    auto it = object_.find(key);
    return it == object_.end() || it->is_null() ? nullptr : &*it;
  }

  Result<const json*> required(const std::string& key) const {
    if (!object_.contains(key)) return not_found("config key '" + name(key) + "' is missing");
    if (object_.at(key).is_null()) return invalid_argument("config key '" + name(key) + "' is null");
    return &object_.at(key);
  }

  Result<int64_t> integer(const std::string& key, int64_t lo, int64_t hi) const {
    K2_ASSIGN_OR_RETURN(const json* v, required(key));
    return check_integer(key, *v, lo, hi);
  }

  // Absent or null: nullopt.
  Result<std::optional<int64_t>> optional_integer(const std::string& key, int64_t lo, int64_t hi) const {
    const json* v = find(key);
    if (!v) return std::optional<int64_t>();
    K2_ASSIGN_OR_RETURN(int64_t value, check_integer(key, *v, lo, hi));
    return std::optional<int64_t>(value);
  }

  Result<int64_t> check_integer(const std::string& key, const json& v, int64_t lo, int64_t hi) const {
    int64_t value = 0;
    if (v.is_number_unsigned()) {
      if (v.get<uint64_t>() > static_cast<uint64_t>(hi)) return range_error(key, v.dump(), lo, hi);
      value = static_cast<int64_t>(v.get<uint64_t>());
    } else if (v.is_number_integer()) {
      value = v.get<int64_t>();
    } else {
      return invalid_argument("config key '" + name(key) + "' must be an integer, got " + v.dump());
    }
    if (value < lo || value > hi) return range_error(key, v.dump(), lo, hi);
    return value;
  }

  // A finite number in (lo, hi] when lo_open, else [lo, hi].
  Result<double> number(const std::string& key, double lo, double hi, bool lo_open) const {
    K2_ASSIGN_OR_RETURN(const json* v, required(key));
    if (!v->is_number()) return invalid_argument("config key '" + name(key) + "' must be a number, got " + v->dump());
    const double value = v->get<double>();
    if (!std::isfinite(value) || value > hi || (lo_open ? value <= lo : value < lo)) {
      std::ostringstream m;
      m << "config key '" << name(key) << "' = " << v->dump() << " is out of range " << (lo_open ? "(" : "[") << lo
        << ", " << hi << "]";
      return out_of_range(m.str());
    }
    return value;
  }

  Result<bool> boolean(const std::string& key) const {
    K2_ASSIGN_OR_RETURN(const json* v, required(key));
    if (!v->is_boolean()) return invalid_argument("config key '" + name(key) + "' must be true or false");
    return v->get<bool>();
  }

  Result<std::string> string(const std::string& key) const {
    K2_ASSIGN_OR_RETURN(const json* v, required(key));
    if (!v->is_string()) return invalid_argument("config key '" + name(key) + "' must be a string");
    return v->get<std::string>();
  }

  Result<Keys> object(const std::string& key) const {
    K2_ASSIGN_OR_RETURN(const json* v, required(key));
    if (!v->is_object()) return invalid_argument("config key '" + name(key) + "' must be an object");
    return Keys(*v, name(key) + ".");
  }

  const json& json_value() const { return object_; }

 private:
  Status range_error(const std::string& key, const std::string& got, int64_t lo, int64_t hi) const {
    return out_of_range("config key '" + name(key) + "' = " + got + " is out of range [" + std::to_string(lo) + ", " +
                        std::to_string(hi) + "]");
  }

  const json& object_;
  std::string path_;
};

Status parse_attention(const Keys& k, ModelConfig* c) {
  K2_ASSIGN_OR_RETURN(c->vocab_size, k.integer("vocab_size", 1, kMaxSize));
  K2_ASSIGN_OR_RETURN(c->hidden_size, k.integer("hidden_size", 1, kMaxSize));
  K2_ASSIGN_OR_RETURN(c->num_hidden_layers, k.integer("num_hidden_layers", 1, kMaxCount));
  K2_ASSIGN_OR_RETURN(c->num_attention_heads, k.integer("num_attention_heads", 1, kMaxCount));
  if (!k.json_value().contains("q_lora_rank")) return not_found("config key '" + k.name("q_lora_rank") + "' is missing");
  K2_ASSIGN_OR_RETURN(c->q_lora_rank, k.optional_integer("q_lora_rank", 1, kMaxSize));
  K2_ASSIGN_OR_RETURN(c->kv_lora_rank, k.integer("kv_lora_rank", 1, kMaxSize));
  K2_ASSIGN_OR_RETURN(c->qk_nope_head_dim, k.integer("qk_nope_head_dim", 1, kMaxCount));
  K2_ASSIGN_OR_RETURN(c->qk_rope_head_dim, k.integer("qk_rope_head_dim", 2, kMaxCount));
  if (c->qk_rope_head_dim % 2 != 0) {
    return out_of_range("config key '" + k.name("qk_rope_head_dim") + "' = " + std::to_string(c->qk_rope_head_dim) +
                        " must be even (rope acts on pairs)");
  }
  K2_ASSIGN_OR_RETURN(c->v_head_dim, k.integer("v_head_dim", 1, kMaxCount));
  K2_ASSIGN_OR_RETURN(c->rms_norm_eps, k.number("rms_norm_eps", 0.0, 1.0, /*lo_open=*/true));
  K2_ASSIGN_OR_RETURN(c->max_position_embeddings, k.integer("max_position_embeddings", 1, int64_t{1} << 40));
  if (const json* act = k.find("hidden_act"); act && *act != "silu") {
    return unimplemented("config key '" + k.name("hidden_act") + "' = " + act->dump() + ": only silu is implemented");
  }
  if (const json* bias = k.find("attention_bias"); bias && *bias != false) {
    return unimplemented("config key '" + k.name("attention_bias") + "' = " + bias->dump() + " is not implemented");
  }
  if (k.present("tie_word_embeddings")) {
    K2_ASSIGN_OR_RETURN(c->tie_word_embeddings, k.boolean("tie_word_embeddings"));
  }
  return Status::ok_status();
}

Status parse_moe(const Keys& k, ModelConfig* c) {
  K2_ASSIGN_OR_RETURN(c->intermediate_size, k.integer("intermediate_size", 1, kMaxSize));
  K2_ASSIGN_OR_RETURN(c->moe_intermediate_size, k.integer("moe_intermediate_size", 1, kMaxSize));
  K2_ASSIGN_OR_RETURN(c->n_routed_experts, k.integer("n_routed_experts", 1, kMaxCount));
  K2_ASSIGN_OR_RETURN(c->n_shared_experts, k.integer("n_shared_experts", 0, kMaxCount));
  K2_ASSIGN_OR_RETURN(c->n_group, k.integer("n_group", 1, c->n_routed_experts));
  const int64_t per_group = c->n_routed_experts / c->n_group;
  if (c->n_routed_experts % c->n_group != 0 || (c->n_group > 1 && per_group < 2)) {
    return out_of_range("config key '" + k.name("n_group") + "' = " + std::to_string(c->n_group) +
                        " must divide n_routed_experts (" + std::to_string(c->n_routed_experts) +
                        ") into groups of at least 2");
  }
  K2_ASSIGN_OR_RETURN(c->topk_group, k.integer("topk_group", 1, c->n_group));
  K2_ASSIGN_OR_RETURN(c->num_experts_per_tok, k.integer("num_experts_per_tok", 1, c->topk_group * per_group));
  K2_ASSIGN_OR_RETURN(c->first_k_dense_replace, k.integer("first_k_dense_replace", 0, c->num_hidden_layers));
  K2_ASSIGN_OR_RETURN(c->moe_layer_freq, k.integer("moe_layer_freq", 1, c->num_hidden_layers));
  K2_ASSIGN_OR_RETURN(c->norm_topk_prob, k.boolean("norm_topk_prob"));
  K2_ASSIGN_OR_RETURN(c->routed_scaling_factor, k.number("routed_scaling_factor", 0.0, 1e6, /*lo_open=*/true));
  K2_ASSIGN_OR_RETURN(c->scoring_func, k.string("scoring_func"));
  if (c->scoring_func != "sigmoid") {
    return unimplemented("config key '" + k.name("scoring_func") + "' = \"" + c->scoring_func +
                         "\": only sigmoid routing is implemented");
  }
  K2_ASSIGN_OR_RETURN(c->topk_method, k.string("topk_method"));
  if (c->topk_method != "noaux_tc") {
    return unimplemented("config key '" + k.name("topk_method") + "' = \"" + c->topk_method +
                         "\": only noaux_tc is implemented");
  }
  return Status::ok_status();
}

// rope_theta and rope_scaling, or transformers v5's rope_parameters (which may carry both).
Status parse_rope(const Keys& k, ModelConfig* c) {
  const char* scaling_key = k.present("rope_scaling") ? "rope_scaling"
                            : k.present("rope_parameters") ? "rope_parameters"
                                                           : nullptr;
  std::optional<Keys> rope;
  if (scaling_key) {
    K2_ASSIGN_OR_RETURN(Keys r, k.object(scaling_key));
    rope.emplace(r);
  }
  if (!k.present("rope_theta") && rope && rope->present("rope_theta")) {
    K2_ASSIGN_OR_RETURN(c->rope_theta, rope->number("rope_theta", 0.0, 1e12, /*lo_open=*/true));
  } else {
    K2_ASSIGN_OR_RETURN(c->rope_theta, k.number("rope_theta", 0.0, 1e12, /*lo_open=*/true));
  }
  if (!rope) return Status::ok_status();
  const std::string type_key = rope->present("type") ? "type" : "rope_type";
  K2_ASSIGN_OR_RETURN(std::string type, rope->string(type_key));
  if (type == "default") return Status::ok_status();
  if (type != "yarn") {
    return unimplemented("config key '" + rope->name(type_key) + "' = \"" + type + "\": only yarn is implemented");
  }
  RopeScaling& s = c->rope_scaling;
  s.type = type;
  K2_ASSIGN_OR_RETURN(s.factor, rope->number("factor", 1.0, 1e6, /*lo_open=*/false));
  K2_ASSIGN_OR_RETURN(s.original_max_position_embeddings,
                      rope->integer("original_max_position_embeddings", 1, int64_t{1} << 40));
  K2_ASSIGN_OR_RETURN(s.beta_fast, rope->number("beta_fast", 0.0, 1e6, /*lo_open=*/true));
  K2_ASSIGN_OR_RETURN(s.beta_slow, rope->number("beta_slow", 0.0, 1e6, /*lo_open=*/true));
  K2_ASSIGN_OR_RETURN(s.mscale, rope->number("mscale", 0.0, 1e6, /*lo_open=*/false));
  K2_ASSIGN_OR_RETURN(s.mscale_all_dim, rope->number("mscale_all_dim", 0.0, 1e6, /*lo_open=*/false));
  return Status::ok_status();
}

// An int, a list of ints or null.
Result<std::vector<int64_t>> parse_token_ids(const Keys& k, const std::string& key, int64_t vocab) {
  std::vector<int64_t> ids;
  const json* v = k.find(key);
  if (!v) return ids;
  if (!v->is_array()) {
    K2_ASSIGN_OR_RETURN(int64_t id, k.check_integer(key, *v, 0, vocab - 1));
    ids.push_back(id);
    return ids;
  }
  for (const json& e : *v) {
    K2_ASSIGN_OR_RETURN(int64_t id, k.check_integer(key, e, 0, vocab - 1));
    ids.push_back(id);
  }
  return ids;
}

Status parse_token_keys(const Keys& text, const Keys& top, ModelConfig* c) {
  const Keys& eos_from = text.present("eos_token_id") ? text : top;
  K2_ASSIGN_OR_RETURN(c->eos_token_ids, parse_token_ids(eos_from, "eos_token_id", c->vocab_size));
  const Keys& bos_from = text.present("bos_token_id") ? text : top;
  K2_ASSIGN_OR_RETURN(c->bos_token_id, bos_from.optional_integer("bos_token_id", 0, c->vocab_size - 1));
  const Keys& media_from = text.present("media_placeholder_token_id") ? text : top;
  K2_ASSIGN_OR_RETURN(std::optional<int64_t> media,
                      media_from.optional_integer("media_placeholder_token_id", 0, c->vocab_size - 1));
  if (media) c->media_placeholder_token_id = static_cast<int32_t>(*media);
  return Status::ok_status();
}

Status parse_fp8(const Keys& q, ModelConfig* c) {
  if (const json* fmt = q.find("fmt"); fmt && *fmt != "e4m3") {
    return unimplemented("config key '" + q.name("fmt") + "' = " + fmt->dump() + ": only e4m3 is implemented");
  }
  K2_ASSIGN_OR_RETURN(const json* block, q.required("weight_block_size"));
  if (!block->is_array() || block->size() != 2) {
    return invalid_argument("config key '" + q.name("weight_block_size") + "' must be a list of two integers");
  }
  K2_ASSIGN_OR_RETURN(c->fp8_block_out, q.check_integer("weight_block_size", (*block)[0], 1, kMaxSize));
  K2_ASSIGN_OR_RETURN(c->fp8_block_in, q.check_integer("weight_block_size", (*block)[1], 1, kMaxSize));
  c->weight_format = WeightFormat::kFp8Block;
  return Status::ok_status();
}

Status parse_int4_group(const Keys& weights, ModelConfig* c, bool first) {
  K2_ASSIGN_OR_RETURN(int64_t bits, weights.integer("num_bits", 1, 64));
  K2_ASSIGN_OR_RETURN(std::string type, weights.string("type"));
  K2_ASSIGN_OR_RETURN(bool symmetric, weights.boolean("symmetric"));
  K2_ASSIGN_OR_RETURN(std::string strategy, weights.string("strategy"));
  if (bits != 4 || type != "int" || !symmetric || strategy != "group") {
    return unimplemented("config key '" + weights.self_name() + "' describes " + std::to_string(bits) + "-bit " + type +
                         (symmetric ? " symmetric " : " asymmetric ") + strategy +
                         " weights: only 4-bit int symmetric group quantisation is implemented");
  }
  K2_ASSIGN_OR_RETURN(int64_t group, weights.integer("group_size", 1, kMaxSize));
  if (!first && group != c->int4_group_size) {
    return unimplemented("config key '" + weights.name("group_size") + "' differs between config_groups");
  }
  c->int4_group_size = group;
  return Status::ok_status();
}

Status parse_compressed_tensors(const Keys& q, ModelConfig* c) {
  K2_ASSIGN_OR_RETURN(std::string format, q.string("format"));
  if (format != "pack-quantized") {
    return unimplemented("config key '" + q.name("format") + "' = \"" + format + "\": only pack-quantized is implemented");
  }
  if (const json* status = q.find("quantization_status"); status && *status != "compressed") {
    return unimplemented("config key '" + q.name("quantization_status") + "' = " + status->dump() +
                         ": only compressed checkpoints are implemented");
  }
  K2_ASSIGN_OR_RETURN(Keys groups, q.object("config_groups"));
  bool first = true;
  for (const auto& [name, value] : groups.json_value().items()) {
    K2_ASSIGN_OR_RETURN(Keys group, groups.object(name));
    K2_ASSIGN_OR_RETURN(Keys weights, group.object("weights"));
    K2_RETURN_IF_ERROR(parse_int4_group(weights, c, first));
    first = false;
  }
  if (first) return invalid_argument("config key '" + q.name("config_groups") + "' is empty");
  c->weight_format = WeightFormat::kInt4PackQuantized;
  return Status::ok_status();
}

Status parse_quantization(const Keys& text, const Keys& top, ModelConfig* c) {
  const Keys* from = text.present("quantization_config") ? &text : top.present("quantization_config") ? &top : nullptr;
  if (!from) return Status::ok_status();
  K2_ASSIGN_OR_RETURN(Keys q, from->object("quantization_config"));
  K2_ASSIGN_OR_RETURN(std::string method, q.string("quant_method"));
  if (method == "fp8") return parse_fp8(q, c);
  if (method == "compressed-tensors") return parse_compressed_tensors(q, c);
  return unimplemented("config key '" + q.name("quant_method") + "' = \"" + method +
                       "\": only fp8 and compressed-tensors are implemented");
}

}  // namespace

Result<ModelConfig> ModelConfig::from_json_text(const std::string& text) {
  const json root = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded()) return invalid_argument("config is not valid JSON");
  if (!root.is_object()) return invalid_argument("config is not a JSON object");
  const Keys top(root, "");
  ModelConfig c;
  K2_ASSIGN_OR_RETURN(c.model_type, top.string("model_type"));
  std::optional<Keys> text_keys;
  if (c.model_type == "kimi_k25") {
    K2_ASSIGN_OR_RETURN(Keys inner, top.object("text_config"));
    K2_ASSIGN_OR_RETURN(std::string inner_type, inner.string("model_type"));
    if (inner_type != "kimi_k2" && inner_type != "deepseek_v3") {
      return unimplemented("config key '" + inner.name("model_type") + "' = \"" + inner_type +
                           "\": expected kimi_k2 or deepseek_v3");
    }
    text_keys.emplace(inner);
    c.tensor_prefix = "language_model.";
  } else if (c.model_type == "kimi_k2" || c.model_type == "deepseek_v3") {
    text_keys.emplace(top);
  } else {
    return unimplemented("config key 'model_type' = \"" + c.model_type +
                         "\": expected kimi_k2, deepseek_v3 or kimi_k25");
  }
  const Keys& k = *text_keys;
  K2_RETURN_IF_ERROR(parse_attention(k, &c));
  K2_RETURN_IF_ERROR(parse_moe(k, &c));
  K2_RETURN_IF_ERROR(parse_rope(k, &c));
  K2_RETURN_IF_ERROR(parse_token_keys(k, top, &c));
  K2_RETURN_IF_ERROR(parse_quantization(k, top, &c));
  return c;
}

Result<std::string> read_config_json(const std::filesystem::path& dir) {
  const std::filesystem::path path = dir / "config.json";
  std::ifstream in(path, std::ios::binary);
  if (!in) return not_found(path.string() + ": cannot open");
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return io_error(path.string() + ": read failed");
  return text.str();
}

Result<ModelConfig> ModelConfig::from_dir(const std::filesystem::path& dir) {
  K2_ASSIGN_OR_RETURN(std::string text, read_config_json(dir));
  auto config = from_json_text(text);
  if (!config.ok()) return config.status().with_context((dir / "config.json").string());
  return config;
}

}  // namespace k2
