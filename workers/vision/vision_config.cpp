#include "workers/vision/vision_config.h"

#include <cmath>
#include <nlohmann/json.hpp>

#include "workers/loader/model_config.h"

namespace k2 {
namespace {

using nlohmann::json;

constexpr int64_t kMaxSize = int64_t{1} << 20;   // widths, grid sides
constexpr int64_t kMaxCount = int64_t{1} << 12;  // layers, heads, patch side, frames

// Reads of one JSON object; every error names "<path><key>".
class VisionKeys {
 public:
  VisionKeys(const json& object, std::string path) : object_(object), path_(std::move(path)) {}

  std::string name(const std::string& key) const { return path_ + key; }
  const json* find(const std::string& key) const {
    auto it = object_.find(key);
    return it == object_.end() || it->is_null() ? nullptr : &*it;
  }

  // `key`, or `fallback` (vLLM's name) when `key` is absent; both absent is an error.
  Result<int64_t> integer(const std::string& key, int64_t lo, int64_t hi, const std::string& fallback = "") const {
    const json* v = find(key);
    std::string used = key;
    if (v == nullptr && !fallback.empty() && find(fallback) != nullptr) {
      used = fallback;
      v = find(fallback);
    }
    if (v == nullptr) return not_found("config key '" + name(key) + "' is missing");
    return check_integer(used, *v, lo, hi);
  }

  Result<int64_t> check_integer(const std::string& key, const json& v, int64_t lo, int64_t hi) const {
    if (!v.is_number_integer()) {
      return invalid_argument("config key '" + name(key) + "' must be an integer, got " + v.dump());
    }
    // An unsigned value above INT64_MAX must not wrap into range.
    const bool too_big = v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(hi);
    if (too_big || v.get<int64_t>() < lo || v.get<int64_t>() > hi) {
      return out_of_range("config key '" + name(key) + "' = " + v.dump() + " is out of range [" + std::to_string(lo) +
                          ", " + std::to_string(hi) + "]");
    }
    return v.get<int64_t>();
  }

  // An optional string key that, when present, must be `expected` (the one variant implemented).
  Status only_variant(const std::string& key, const std::string& expected) const {
    const json* v = find(key);
    if (v == nullptr) return Status::ok_status();
    if (!v->is_string()) return invalid_argument("config key '" + name(key) + "' must be a string");
    if (v->get<std::string>() != expected) {
      return unimplemented("config key '" + name(key) + "' = " + v->dump() + ": only \"" + expected +
                           "\" is implemented");
    }
    return Status::ok_status();
  }

 private:
  const json& object_;
  std::string path_;
};

Status parse_variants(const VisionKeys& k) {
  K2_RETURN_IF_ERROR(k.only_variant("pos_emb_type", "divided_fixed"));
  K2_RETURN_IF_ERROR(k.only_variant("merge_type", "sd2_tpool"));
  K2_RETURN_IF_ERROR(k.only_variant("video_attn_type", "spatial_temporal"));
  K2_RETURN_IF_ERROR(k.only_variant("mm_projector_type", "patchmerger"));
  K2_RETURN_IF_ERROR(k.only_variant("projector_hidden_act", "gelu"));
  return Status::ok_status();
}

Status parse_merge_kernel(const VisionKeys& k, VisionConfig* c) {
  const json* merge = k.find("merge_kernel_size");
  if (merge == nullptr) return not_found("config key '" + k.name("merge_kernel_size") + "' is missing");
  if (!merge->is_array() || merge->size() != 2) {
    return invalid_argument("config key '" + k.name("merge_kernel_size") + "' must be a list of two integers");
  }
  K2_ASSIGN_OR_RETURN(c->merge_height, k.check_integer("merge_kernel_size[0]", (*merge)[0], 1, kMaxCount));
  K2_ASSIGN_OR_RETURN(c->merge_width, k.check_integer("merge_kernel_size[1]", (*merge)[1], 1, kMaxCount));
  return Status::ok_status();
}

Status parse_tower(const VisionKeys& k, VisionConfig* c) {
  K2_ASSIGN_OR_RETURN(c->patch_size, k.integer("patch_size", 1, kMaxCount));
  K2_ASSIGN_OR_RETURN(c->pos_emb_height, k.integer("init_pos_emb_height", 1, kMaxSize));
  K2_ASSIGN_OR_RETURN(c->pos_emb_width, k.integer("init_pos_emb_width", 1, kMaxSize));
  K2_ASSIGN_OR_RETURN(c->pos_emb_time, k.integer("init_pos_emb_time", 1, kMaxCount));
  K2_ASSIGN_OR_RETURN(c->hidden_size, k.integer("vt_hidden_size", 1, kMaxSize, "hidden_size"));
  K2_ASSIGN_OR_RETURN(c->intermediate_size, k.integer("vt_intermediate_size", 1, kMaxSize, "intermediate_size"));
  K2_ASSIGN_OR_RETURN(c->num_heads, k.integer("vt_num_attention_heads", 1, kMaxCount, "num_attention_heads"));
  K2_ASSIGN_OR_RETURN(c->num_layers, k.integer("vt_num_hidden_layers", 1, kMaxCount, "num_hidden_layers"));
  // 2D RoPE turns pairs in groups of four (column pair, row pair) per head.
  if (c->hidden_size % c->num_heads != 0 || c->head_dim() % 4 != 0) {
    return out_of_range("config: vt_hidden_size " + std::to_string(c->hidden_size) + " / vt_num_attention_heads " +
                        std::to_string(c->num_heads) + " must give a head size that is a multiple of 4");
  }
  return parse_merge_kernel(k, c);
}

Status parse_projector(const VisionKeys& k, const json& root, VisionConfig* c) {
  // The projector's LayerNorm acts on the tower's vectors: mm_hidden_size must be D.
  if (k.find("mm_hidden_size") != nullptr) {
    K2_ASSIGN_OR_RETURN(int64_t mm_hidden, k.integer("mm_hidden_size", 1, kMaxSize));
    if (mm_hidden != c->hidden_size) {
      return unimplemented("config key '" + k.name("mm_hidden_size") + "' = " + std::to_string(mm_hidden) +
                           " differs from vt_hidden_size " + std::to_string(c->hidden_size));
    }
  }
  if (k.find("text_hidden_size") != nullptr) {
    K2_ASSIGN_OR_RETURN(c->text_hidden_size, k.integer("text_hidden_size", 1, kMaxSize));
  } else {
    auto text = root.find("text_config");
    if (text == root.end() || !text->is_object()) {
      return not_found("config key 'vision_config.text_hidden_size' is missing (and there is no text_config)");
    }
    K2_ASSIGN_OR_RETURN(c->text_hidden_size, VisionKeys(*text, "text_config.").integer("hidden_size", 1, kMaxSize));
  }
  if (const json* eps = k.find("projector_ln_eps")) {
    if (!eps->is_number() || !std::isfinite(eps->get<double>()) || eps->get<double>() <= 0.0 ||
        eps->get<double>() > 1.0) {
      return out_of_range("config key '" + k.name("projector_ln_eps") + "' = " + eps->dump() +
                          " must be a number in (0, 1]");
    }
    c->projector_ln_eps = eps->get<double>();
  }
  return Status::ok_status();
}

}  // namespace

Result<VisionConfig> VisionConfig::from_json_text(const std::string& text) {
  const json root = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded()) return invalid_argument("config is not valid JSON");
  if (!root.is_object()) return invalid_argument("config is not a JSON object");
  auto it = root.find("vision_config");
  if (it == root.end() || it->is_null()) return not_found("config key 'vision_config' is missing");
  if (!it->is_object()) return invalid_argument("config key 'vision_config' must be an object");
  const VisionKeys k(*it, "vision_config.");
  VisionConfig c;
  K2_RETURN_IF_ERROR(parse_variants(k));
  K2_RETURN_IF_ERROR(parse_tower(k, &c));
  K2_RETURN_IF_ERROR(parse_projector(k, root, &c));
  return c;
}

Result<VisionConfig> VisionConfig::from_dir(const std::filesystem::path& dir) {
  K2_ASSIGN_OR_RETURN(std::string text, read_config_json(dir));
  auto config = from_json_text(text);
  if (!config.ok()) return config.status().with_context((dir / "config.json").string());
  return config;
}

}  // namespace k2
