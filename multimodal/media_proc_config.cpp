#include "multimodal/media_proc_config.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace k2::mm {
namespace {

using nlohmann::json;

Result<const json*> field(const json& cfg, const char* key) {
  auto it = cfg.find(key);
  if (it == cfg.end()) return not_found(std::string("media_proc_cfg.") + key + " is missing");
  return &*it;
}

Result<int64_t> positive_int(const json& cfg, const char* key) {
  K2_ASSIGN_OR_RETURN(const json* v, field(cfg, key));
  if (!v->is_number_integer() || v->get<int64_t>() <= 0 || v->get<int64_t>() > (int64_t{1} << 30)) {
    return invalid_argument(std::string("media_proc_cfg.") + key + " must be a positive integer");
  }
  return v->get<int64_t>();
}

Result<std::optional<int64_t>> optional_int(const json& cfg, const char* key) {
  auto it = cfg.find(key);
  if (it == cfg.end() || it->is_null()) return std::optional<int64_t>();
  if (!it->is_number_integer() || it->get<int64_t>() <= 0 || it->get<int64_t>() > (int64_t{1} << 30)) {
    return invalid_argument(std::string("media_proc_cfg.") + key + " must be null or a positive integer");
  }
  return std::optional<int64_t>(it->get<int64_t>());
}

Result<std::array<double, 3>> triple(const json& cfg, const char* key) {
  K2_ASSIGN_OR_RETURN(const json* v, field(cfg, key));
  if (!v->is_array() || v->size() != 3) return invalid_argument(std::string("media_proc_cfg.") + key + " must have 3 numbers");
  std::array<double, 3> out{};
  for (size_t i = 0; i < 3; ++i) {
    if (!(*v)[i].is_number()) return invalid_argument(std::string("media_proc_cfg.") + key + " must have 3 numbers");
    out[i] = (*v)[i].get<double>();
  }
  return out;
}

Status parse_into(const json& cfg, MediaProcConfig* c) {
  K2_ASSIGN_OR_RETURN(int64_t patch, positive_int(cfg, "patch_size"));
  K2_ASSIGN_OR_RETURN(int64_t merge, positive_int(cfg, "merge_kernel_size"));
  K2_ASSIGN_OR_RETURN(int64_t tmerge, positive_int(cfg, "temporal_merge_kernel_size"));
  if (patch > 1024 || merge > 64 || tmerge > 1024) return invalid_argument("media_proc_cfg: implausible kernel sizes");
  c->patch_size = static_cast<int>(patch);
  c->merge_kernel_size = static_cast<int>(merge);
  c->temporal_merge_kernel_size = static_cast<int>(tmerge);
  K2_ASSIGN_OR_RETURN(c->in_patch_limit, positive_int(cfg, "in_patch_limit"));
  K2_ASSIGN_OR_RETURN(c->patch_limit_on_one_side, positive_int(cfg, "patch_limit_on_one_side"));
  K2_ASSIGN_OR_RETURN(c->in_patch_limit_each_frame, optional_int(cfg, "in_patch_limit_each_frame"));
  K2_ASSIGN_OR_RETURN(c->in_patch_limit_video, optional_int(cfg, "in_patch_limit_video"));
  K2_ASSIGN_OR_RETURN(c->fixed_output_tokens, optional_int(cfg, "fixed_output_tokens"));
  K2_ASSIGN_OR_RETURN(c->max_num_frames_each_video, optional_int(cfg, "max_num_frames_each_video"));
  K2_ASSIGN_OR_RETURN(const json* fps, field(cfg, "sample_fps"));
  if (!fps->is_number() || !(fps->get<double>() > 0)) return invalid_argument("media_proc_cfg.sample_fps must be positive");
  c->sample_fps = fps->get<double>();
  auto ts = cfg.find("timestamp_mode");
  c->timestamp_mode = (ts != cfg.end() && ts->is_string()) ? ts->get<std::string>() : "hh:mm:ss.fff";
  K2_ASSIGN_OR_RETURN(c->image_mean, triple(cfg, "image_mean"));
  K2_ASSIGN_OR_RETURN(c->image_std, triple(cfg, "image_std"));
  for (double s : c->image_std) {
    if (!(s > 0)) return invalid_argument("media_proc_cfg.image_std must be positive");
  }
  return {};
}

}  // namespace

Result<MediaProcConfig> parse_media_proc_config(std::string_view json_text) {
  json doc = json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) return invalid_argument("preprocessor config is not a JSON object");
  auto it = doc.find("media_proc_cfg");
  if (it == doc.end() || !it->is_object()) return not_found("preprocessor config has no media_proc_cfg object");
  MediaProcConfig cfg;
  K2_RETURN_IF_ERROR(parse_into(*it, &cfg));
  return cfg;
}

Result<MediaProcConfig> load_media_proc_config(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return not_found("cannot open " + path.string());
  std::stringstream ss;
  ss << in.rdbuf();
  auto cfg = parse_media_proc_config(ss.str());
  if (!cfg.ok()) return cfg.status().with_context(path.string());
  return cfg;
}

}  // namespace k2::mm
