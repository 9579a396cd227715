// Typed, validated forms of the OpenAI request bodies k2serve accepts, and their parsers.
//
// parse_chat_request / parse_completion_request read a JSON body (OpenAI fields plus
// vLLM's extra fields, with vLLM's meanings and defaults), type-check every field they
// know, range-check values against RequestLimits and return a Status whose code maps to
// the HTTP answer (kInvalidArgument -> 400, kNotFound -> 404, kUnimplemented -> 501).
// Unknown fields are accepted and listed in `ignored_fields`, as vLLM logs them.
// Checks that need the prompt's length (max_tokens vs. max_model_len) happen later, in
// finalize_sampling(). Pure functions of their input: thread-safe, and they never throw
// or crash on hostile input (a libFuzzer target runs them).
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "frontend/openai/engine_client.h"
#include "shm/status.h"

namespace k2::openai {

using ojson = nlohmann::ordered_json;

struct RequestLimits {
  int32_t max_n = 128;
  int32_t max_logprobs = 20;
  size_t max_stop_strings = 16;
  size_t max_stop_string_bytes = 1024;
  size_t max_stop_token_ids = 1024;
  size_t max_logit_bias = 1024;
  size_t max_prompts = 256;  // completions: prompts in one request
  size_t max_tools = 512;
  int32_t vocab_size = 0;  // > 0: token ids are checked against it
};

// Sampling defaults from the model's generation_config.json (vLLM: unless
// --generation-config vllm); they apply where the request leaves a field out.
struct GenerationDefaults {
  std::optional<double> temperature, top_p, min_p, repetition_penalty;
  std::optional<int32_t> top_k;
  std::optional<int32_t> max_tokens;  // max_new_tokens
};

enum class ToolChoiceKind { kNone, kAuto, kRequired, kNamed };

struct ToolChoice {
  ToolChoiceKind kind = ToolChoiceKind::kNone;
  std::string name;  // kNamed
};

// Fields chat and completions share.
struct CommonRequest {
  std::string model;  // empty: not given (the served model is meant)
  int32_t n = 1;
  bool stream = false;
  bool include_usage = false;          // stream_options.include_usage
  bool continuous_usage_stats = false;  // stream_options.continuous_usage_stats (vLLM)
  std::optional<int32_t> max_tokens;   // max_completion_tokens wins over max_tokens
  // Which sampling fields the request set (the rest take generation_config defaults).
  bool has_temperature = false, has_top_p = false, has_top_k = false, has_min_p = false,
       has_repetition_penalty = false;
  SamplingParams sampling;  // max_tokens filled in by finalize_sampling()
  std::vector<std::string> stop;
  bool include_stop_str_in_output = false;
  bool skip_special_tokens = true;
  bool spaces_between_special_tokens = true;
  bool return_tokens_as_token_ids = false;
  bool echo = false;
  std::optional<int32_t> logprobs;  // top-k count per generated token; absent: no logprobs
  std::optional<std::string> request_id;  // the body's vLLM `request_id`
  std::optional<std::string> cache_salt;  // vLLM's: prefix-cache blocks are shared only within a salt
  // A JSON document the output must be: response_format json_schema / json_object, or vLLM's
  // structured_outputs {json | json_object}. (tool_choice required/named bring their own.)
  std::optional<ojson> json_schema;
  bool json_object = false;
  std::vector<std::string> ignored_fields;
};

struct ChatRequest : CommonRequest {
  ojson messages = ojson::array();
  ojson tools;  // null or a non-empty array of {type:"function", function:{name,...}}
  ToolChoice tool_choice;
  bool tool_choice_given = false;
  bool parallel_tool_calls = true;
  bool add_generation_prompt = true;
  bool continue_final_message = false;
  ojson chat_template_kwargs = ojson::object();
  std::optional<std::string> chat_template;  // per-request template (needs the server's consent)
  bool include_reasoning = true;
};

// One prompt of /v1/completions: text or token ids.
struct PromptInput {
  std::optional<std::string> text;
  std::vector<int32_t> ids;
};

struct CompletionRequest : CommonRequest {
  std::vector<PromptInput> prompts;
};

Result<ChatRequest> parse_chat_request(const ojson& body, const RequestLimits& limits);
Result<CompletionRequest> parse_completion_request(const ojson& body, const RequestLimits& limits);
// Parses the text of a body as JSON (400 "malformed JSON" on failure; must be an object).
Result<ojson> parse_json_body(std::string_view body);

// Fills defaults and the prompt-dependent checks: max_tokens defaults to max_model_len -
// prompt_tokens (capped by generation_config's max_new_tokens); a prompt of max_model_len
// tokens or more, or prompt + max_tokens over max_model_len, is a 400 with vLLM's message.
Status finalize_sampling(CommonRequest& request, int64_t prompt_tokens, int64_t max_model_len,
                         const GenerationDefaults& defaults);

// "The model's maximum context length" message of vLLM, for either case above.
std::string context_length_message(int64_t max_model_len, int64_t prompt_tokens, std::optional<int64_t> max_tokens);

}  // namespace k2::openai
