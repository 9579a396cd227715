#include "frontend/openai/server_config.h"

#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace k2::openai {

namespace {

Result<std::optional<nlohmann::json>> read_json_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::optional<nlohmann::json>();
  std::stringstream ss;
  ss << in.rdbuf();
  auto j = nlohmann::json::parse(ss.str(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) return corrupt(path + ": not a JSON object");
  return std::optional<nlohmann::json>(std::move(j));
}

}  // namespace

Result<GenerationDefaults> load_generation_defaults(const std::string& model_dir) {
  GenerationDefaults d;
  K2_ASSIGN_OR_RETURN(auto j, read_json_file(model_dir + "/generation_config.json"));
  if (!j) return d;
  auto num = [&](const char* key, std::optional<double>& out) {
    if (j->contains(key) && (*j)[key].is_number()) out = (*j)[key].get<double>();
  };
  num("temperature", d.temperature);
  num("top_p", d.top_p);
  num("min_p", d.min_p);
  num("repetition_penalty", d.repetition_penalty);
  if (j->contains("top_k") && (*j)["top_k"].is_number_integer()) d.top_k = (*j)["top_k"].get<int32_t>();
  if (j->contains("max_new_tokens") && (*j)["max_new_tokens"].is_number_integer()) {
    d.max_tokens = (*j)["max_new_tokens"].get<int32_t>();
  }
  return d;
}

Result<std::map<std::string, int64_t>> parse_limit_mm_per_prompt(const std::string& json_text) {
  auto j = nlohmann::json::parse(json_text, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return invalid_argument("--limit-mm-per-prompt must be a JSON object such as '{\"image\": 2}'");
  std::map<std::string, int64_t> out;
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.key() != "image" && it.key() != "video")
      return invalid_argument("--limit-mm-per-prompt: unknown modality '" + it.key() + "' (image, video)");
    if (!it->is_number_integer() || it->get<int64_t>() < 0)
      return invalid_argument("--limit-mm-per-prompt: the limit of '" + it.key() + "' must be an integer >= 0");
    out[it.key()] = it->get<int64_t>();
  }
  return out;
}

namespace {

// A model directory with preprocessor_config.json takes media; others stay text-only.
Result<std::optional<MultimodalConfig>> make_multimodal_config(const EngineConfig& flags) {
  const std::filesystem::path pre = std::filesystem::path(flags.model) / "preprocessor_config.json";
  std::error_code ec;
  if (!std::filesystem::is_regular_file(pre, ec)) return std::optional<MultimodalConfig>();
  K2_ASSIGN_OR_RETURN(mm::MediaProcConfig proc, mm::load_media_proc_config(pre));
  K2_ASSIGN_OR_RETURN(auto cfg, read_json_file(flags.model + "/config.json"));
  MultimodalConfig m;
  if (cfg) {
    const nlohmann::json* text = cfg->contains("text_config") ? &(*cfg)["text_config"] : &*cfg;
    for (const nlohmann::json* j : {text, static_cast<const nlohmann::json*>(&*cfg)}) {
      if (j->contains("media_placeholder_token_id") && (*j)["media_placeholder_token_id"].is_number_integer()) {
        m.placeholder_token_id = (*j)["media_placeholder_token_id"].get<int32_t>();
        break;
      }
    }
  }
  if (m.placeholder_token_id < 0) return invalid_argument(pre.string() + " exists but config.json has no media_placeholder_token_id");
  mm::MediaLoaderOptions o;
  o.fetch.allowed_domains = flags.allowed_media_domains;
  o.fetch.max_bytes = static_cast<size_t>(flags.max_media_bytes);
  K2_ASSIGN_OR_RETURN(mm::FetchTimeouts timeouts, mm::fetch_timeouts_from_env([](const char* name) { return std::getenv(name); }));
  o.fetch.timeout = timeouts.image;
  o.video_fetch_timeout = timeouts.video;
  if (cfg && cfg->contains("video_placeholder") && (*cfg)["video_placeholder"].is_string()) {
    o.video_placeholder = (*cfg)["video_placeholder"].get<std::string>();
  }
  if (flags.allowed_local_media_path) o.allowed_local_media_path = *flags.allowed_local_media_path;
  K2_ASSIGN_OR_RETURN(m.loader, mm::MediaLoader::create(std::move(proc), std::move(o)));
  if (flags.limit_mm_per_prompt) {
    K2_ASSIGN_OR_RETURN(m.limit_per_prompt, parse_limit_mm_per_prompt(*flags.limit_mm_per_prompt));
  }
  return std::optional<MultimodalConfig>(std::move(m));
}

}  // namespace

Result<ServerConfig> make_server_config(const EngineConfig& flags) {
  ServerConfig c;
  c.served_model_names = flags.served_model_name;
  if (c.served_model_names.empty()) c.served_model_names.push_back(flags.model);
  c.model_root = flags.model;
  if (flags.max_model_len) {
    c.max_model_len = *flags.max_model_len;
  } else {
    K2_ASSIGN_OR_RETURN(auto cfg, read_json_file(flags.model + "/config.json"));
    if (!cfg) return not_found(flags.model + "/config.json not found (needed for max_model_len)");
    const nlohmann::json* text = cfg->contains("text_config") ? &(*cfg)["text_config"] : &*cfg;
    if (!text->contains("max_position_embeddings") || !(*text)["max_position_embeddings"].is_number_integer()) {
      return invalid_argument("config.json has no max_position_embeddings; pass --max-model-len");
    }
    c.max_model_len = (*text)["max_position_embeddings"].get<int64_t>();
  }
  c.api_key = flags.api_key;
  c.chat_template = flags.chat_template;
  c.enable_auto_tool_choice = flags.enable_auto_tool_choice;
  c.tool_call_parser = flags.tool_call_parser;
  c.reasoning_parser = flags.reasoning_parser;
  c.enable_request_id_headers = flags.enable_request_id_headers;
  c.log_requests = !flags.disable_log_requests;
  K2_ASSIGN_OR_RETURN(c.multimodal, make_multimodal_config(flags));
  if (flags.generation_config != "vllm") {
    const std::string dir = flags.generation_config == "auto" ? flags.model : flags.generation_config;
    K2_ASSIGN_OR_RETURN(c.generation_defaults, load_generation_defaults(dir));
  }
  return c;
}

http::ServerOptions make_http_options(const EngineConfig& flags) {
  http::ServerOptions o;
  o.host = flags.host;
  o.port = static_cast<uint16_t>(flags.port);
  return o;
}

}  // namespace k2::openai
