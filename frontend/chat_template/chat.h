// Chat rendering with Hugging Face `apply_chat_template` semantics as Kimi's tokenizer
// drives it: render variables messages / tools / documents=None / add_generation_prompt /
// the special-token map / extra kwargs, with `tools` replaced by a recursively key-sorted
// copy first (Kimi's deep_sort_dict). Also the message normalisation a vLLM OpenAI server
// applies before rendering.
//
// JSON goes in as nlohmann::ordered_json because key order is data here: Python dicts keep
// insertion order, and tool-call arguments render in the order the client sent them.
//
// ChatTemplate owns a parsed template and is immutable: parse once, render from any
// number of threads at once.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "frontend/chat_template/evaluator.h"
#include "frontend/chat_template/template.h"
#include "shm/status.h"

namespace k2 {

// The special-token strings a template sees (empty = unset, not passed).
struct SpecialTokens {
  std::string bos_token;
  std::string eos_token;
  std::string unk_token;
  std::string pad_token;
  std::vector<std::string> additional_special_tokens;

  // From tokenizer_config.json (each token a string or {"content": ...}).
  static SpecialTokens from_tokenizer_config(const nlohmann::ordered_json& config);
};

class ChatTemplate {
 public:
  static Result<ChatTemplate> parse(std::string_view source);
  // The template of a tokenizer directory: chat_template.jinja, else tokenizer_config.json's
  // chat_template (a string, or the entry named "default" of a list).
  static Result<ChatTemplate> load_from_tokenizer_dir(const std::string& dir);
  static Result<ChatTemplate> load_from_file(const std::string& path);

  const jinja::Template& compiled() const { return template_; }

 private:
  explicit ChatTemplate(jinja::Template t) : template_(std::move(t)) {}
  jinja::Template template_;
};

// Renders one conversation. `tools` may be null (no tools); `kwargs` is an object holding
// add_generation_prompt (default false) and any chat-template kwargs (thinking, ...).
Result<std::string> render_chat(const ChatTemplate& chat_template, const nlohmann::ordered_json& messages,
                                const nlohmann::ordered_json& tools, const nlohmann::ordered_json& kwargs,
                                const SpecialTokens& special_tokens, const jinja::RenderLimits& limits = {});

// vLLM's normalisation of OpenAI messages before rendering: assistant tool-call argument
// strings parsed into objects (null/empty -> {}), empty tool_calls lists removed, and
// `reasoning` / `reasoning_content` each copied to the other when only one is present.
// A non-JSON arguments string is an error, as json.loads raises in vLLM.
Result<nlohmann::ordered_json> vllm_preprocess_messages(const nlohmann::ordered_json& messages);

// Kimi's deep_sort_dict: every object's keys sorted at every depth (lists keep order).
Result<nlohmann::ordered_json> deep_sort_keys(const nlohmann::ordered_json& value);

}  // namespace k2
