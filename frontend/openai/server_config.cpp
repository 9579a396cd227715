#include "frontend/openai/server_config.h"

#include <nlohmann/json.hpp>

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
