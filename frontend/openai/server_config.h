// ServerConfig: what the OpenAI layer needs to know about the deployment, built from the
// `k2serve serve` flags (EngineConfig) plus the model directory. Plain value type.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "enginecore/protocol/engine_config.h"
#include "frontend/http/server.h"
#include "frontend/openai/request.h"
#include "multimodal/media_loader.h"
#include "shm/status.h"

namespace k2::openai {

// Image inputs of a multimodal model (a model directory with preprocessor_config.json).
struct MultimodalConfig {
  std::shared_ptr<const mm::MediaLoader> loader;
  int32_t placeholder_token_id = -1;  // <|media_pad|>: config.json's media_placeholder_token_id
  // --limit-mm-per-prompt: items per prompt by modality ("image", "video"); absent: no limit.
  std::map<std::string, int64_t> limit_per_prompt;
  size_t pool_threads = 4;  // media fetch/decode/preprocess threads
};

// Parses --limit-mm-per-prompt's JSON ({"image": 2, "video": 0}).
Result<std::map<std::string, int64_t>> parse_limit_mm_per_prompt(const std::string& json_text);

enum class ReasoningField { kReasoning, kReasoningContent, kBoth };

struct ServerConfig {
  std::vector<std::string> served_model_names;  // first: the name in responses and metrics
  std::string model_root;                       // /v1/models `root` (the model path)
  int64_t max_model_len = 2048;
  std::optional<std::string> api_key;
  std::optional<std::string> chat_template;  // --chat-template: a file, or the template text
  bool trust_request_chat_template = false;
  bool enable_auto_tool_choice = false;
  std::optional<std::string> tool_call_parser;  // "kimi_k2"
  std::optional<std::string> reasoning_parser;  // "kimi_k2"
  ReasoningField reasoning_field = ReasoningField::kBoth;
  bool enable_force_include_usage = false;
  bool enable_request_id_headers = false;
  bool log_requests = true;
  GenerationDefaults generation_defaults;
  RequestLimits limits;
  std::optional<MultimodalConfig> multimodal;  // nullopt: a text-only model; media parts are a 400
  std::string version = "0.1.0";
};

// The model's generation_config.json sampling defaults (vLLM's get_diff_sampling_param:
// temperature, top_p, top_k, min_p, repetition_penalty, max_new_tokens). A missing file
// gives no defaults; a malformed one is an error.
Result<GenerationDefaults> load_generation_defaults(const std::string& model_dir);

// From parsed serve flags: served names (default: the model path), max_model_len (the flag,
// else config.json's max_position_embeddings), parsers, api key, generation defaults
// (unless --generation-config vllm). Also the HTTP options (host, port).
Result<ServerConfig> make_server_config(const EngineConfig& flags);
http::ServerOptions make_http_options(const EngineConfig& flags);

}  // namespace k2::openai
