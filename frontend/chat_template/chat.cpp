#include "frontend/chat_template/chat.h"

#include <algorithm>
#include <fstream>
#include <sstream>

namespace k2 {
namespace {

using json = nlohmann::ordered_json;

Result<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return not_found("cannot open " + path);
  std::ostringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

std::string token_text(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  return "";
}

Result<json> deep_sort_impl(const json& v, int depth) {
  if (depth > jinja::kMaxValueDepth) return invalid_argument("tools nested deeper than " + std::to_string(jinja::kMaxValueDepth));
  if (v.is_object()) {
    std::vector<std::pair<std::string, const json*>> items;
    for (const auto& [k, e] : v.items()) items.emplace_back(k, &e);
    std::sort(items.begin(), items.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    json out = json::object();
    for (const auto& [k, e] : items) {
      K2_ASSIGN_OR_RETURN(out[k], deep_sort_impl(*e, depth + 1));
    }
    return out;
  }
  if (v.is_array()) {
    json out = json::array();
    for (const auto& e : v) {
      K2_ASSIGN_OR_RETURN(json item, deep_sort_impl(e, depth + 1));
      out.push_back(std::move(item));
    }
    return out;
  }
  return v;
}

// Python truthiness of a JSON value (what vLLM's `if content := ...` tests).
bool json_truthy(const json& v) {
  if (v.is_null()) return false;
  if (v.is_boolean()) return v.get<bool>();
  if (v.is_number()) return v.get<double>() != 0;
  if (v.is_string()) return !v.get_ref<const std::string&>().empty();
  if (v.is_array() || v.is_object()) return !v.empty();
  return true;
}

}  // namespace

SpecialTokens SpecialTokens::from_tokenizer_config(const json& config) {
  SpecialTokens t;
  if (!config.is_object()) return t;
  if (config.contains("bos_token")) t.bos_token = token_text(config["bos_token"]);
  if (config.contains("eos_token")) t.eos_token = token_text(config["eos_token"]);
  if (config.contains("unk_token")) t.unk_token = token_text(config["unk_token"]);
  if (config.contains("pad_token")) t.pad_token = token_text(config["pad_token"]);
  if (config.contains("additional_special_tokens") && config["additional_special_tokens"].is_array()) {
    for (const auto& e : config["additional_special_tokens"]) {
      std::string s = token_text(e);
      if (!s.empty()) t.additional_special_tokens.push_back(std::move(s));
    }
  }
  return t;
}

Result<ChatTemplate> ChatTemplate::parse(std::string_view source) {
  K2_ASSIGN_OR_RETURN(jinja::Template t, jinja::Template::parse(source));
  return ChatTemplate(std::move(t));
}

Result<ChatTemplate> ChatTemplate::load_from_file(const std::string& path) {
  K2_ASSIGN_OR_RETURN(std::string text, read_file(path));
  auto parsed = parse(text);
  if (!parsed.ok()) return parsed.status().with_context(path);
  return parsed;
}

Result<ChatTemplate> ChatTemplate::load_from_tokenizer_dir(const std::string& dir) {
  const std::string jinja_path = dir + "/chat_template.jinja";
  if (std::ifstream(jinja_path).good()) return load_from_file(jinja_path);
  const std::string config_path = dir + "/tokenizer_config.json";
  K2_ASSIGN_OR_RETURN(std::string text, read_file(config_path));
  const json config = json::parse(text, nullptr, false);
  if (config.is_discarded() || !config.is_object()) return corrupt(config_path + ": not a JSON object");
  const json* tpl = config.contains("chat_template") ? &config["chat_template"] : nullptr;
  if (tpl && tpl->is_array()) {
    const json* chosen = nullptr;
    for (const auto& e : *tpl) {
      if (e.is_object() && e.value("name", "") == "default") chosen = e.contains("template") ? &e["template"] : nullptr;
    }
    tpl = chosen;
  }
  if (!tpl || !tpl->is_string()) return not_found(dir + " has no chat_template.jinja and no chat_template in tokenizer_config.json");
  auto parsed = parse(tpl->get<std::string>());
  if (!parsed.ok()) return parsed.status().with_context(config_path);
  return parsed;
}

Result<json> deep_sort_keys(const json& value) { return deep_sort_impl(value, 0); }

Result<json> vllm_preprocess_messages(const json& messages) {
  if (!messages.is_array()) return invalid_argument("messages must be a list");
  json out = messages;
  for (auto& m : out) {
    if (!m.is_object()) continue;
    if (m.contains("reasoning") && !m.contains("reasoning_content")) m["reasoning_content"] = m["reasoning"];
    else if (m.contains("reasoning_content") && !m.contains("reasoning")) m["reasoning"] = m["reasoning_content"];
    if (!m.contains("tool_calls")) continue;
    json& calls = m["tool_calls"];
    if (calls.is_array() && calls.empty()) {
      m.erase("tool_calls");
      continue;
    }
    if (m.value("role", "") != "assistant" || !calls.is_array()) continue;
    for (auto& call : calls) {
      if (!call.is_object() || !call.contains("function") || !call["function"].is_object()) continue;
      json& fn = call["function"];
      const json args = fn.contains("arguments") ? fn["arguments"] : json();
      if (!json_truthy(args)) {
        fn["arguments"] = json::object();
      } else if (!args.is_object() && !args.is_array()) {
        if (!args.is_string()) return invalid_argument("tool call arguments must be a JSON string or object");
        json parsed = json::parse(args.get<std::string>(), nullptr, false);
        if (parsed.is_discarded()) {
          return invalid_argument("JSONDecodeError: tool call arguments are not valid JSON: " + args.get<std::string>());
        }
        fn["arguments"] = std::move(parsed);
      }
    }
  }
  return out;
}

Result<std::string> render_chat(const ChatTemplate& chat_template, const json& messages, const json& tools,
                                const json& kwargs, const SpecialTokens& special_tokens,
                                const jinja::RenderLimits& limits) {
  using jinja::Value;
  if (!kwargs.is_null() && !kwargs.is_object()) return invalid_argument("chat template kwargs must be an object");
  jinja::Dict vars;
  auto put = [&](const std::string& key, Value v) { vars.entries.emplace_back(Value::string(key), std::move(v)); };
  K2_ASSIGN_OR_RETURN(Value messages_value, jinja::from_json(messages));
  put("messages", std::move(messages_value));
  K2_ASSIGN_OR_RETURN(json sorted_tools, deep_sort_keys(tools));
  K2_ASSIGN_OR_RETURN(Value tools_value, jinja::from_json(sorted_tools));
  put("tools", std::move(tools_value));
  put("documents", Value::none());
  bool add_generation_prompt = false;
  if (kwargs.is_object() && kwargs.contains("add_generation_prompt")) {
    add_generation_prompt = json_truthy(kwargs["add_generation_prompt"]);
  }
  put("add_generation_prompt", Value::boolean(add_generation_prompt));
  auto put_token = [&](const char* name, const std::string& text) {
    if (!text.empty()) put(name, Value::string(text));
  };
  put_token("bos_token", special_tokens.bos_token);
  put_token("eos_token", special_tokens.eos_token);
  put_token("unk_token", special_tokens.unk_token);
  put_token("pad_token", special_tokens.pad_token);
  if (!special_tokens.additional_special_tokens.empty()) {
    jinja::ValueList extra;
    for (const auto& s : special_tokens.additional_special_tokens) extra.push_back(Value::string(s));
    put("additional_special_tokens", Value::list(std::move(extra)));
  }
  if (kwargs.is_object()) {
    for (const auto& [k, v] : kwargs.items()) {
      if (k == "messages" || k == "tools" || k == "documents" || k == "add_generation_prompt") continue;
      K2_ASSIGN_OR_RETURN(Value value, jinja::from_json(v));
      // Later kwargs override the special-token defaults, as **kwargs does in HF.
      bool replaced = false;
      for (auto& e : vars.entries) {
        if (e.first.as_string() == k) {
          e.second = value;
          replaced = true;
        }
      }
      if (!replaced) put(k, std::move(value));
    }
  }
  return chat_template.compiled().render(Value::dict(std::move(vars)), limits);
}

}  // namespace k2
