#include "frontend/openai/request.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <set>

namespace k2::openai {

namespace {

// Reads the fields of one request object; `known` collects the names it looked at so the
// rest can be reported as ignored. Null counts as absent (clients send explicit nulls).
class FieldReader {
 public:
  explicit FieldReader(const ojson& body) : body_(body) {}

  const ojson* get(const char* key) {
    known_.insert(key);
    auto it = body_.find(key);
    if (it == body_.end() || it->is_null()) return nullptr;
    return &*it;
  }
  Status read_bool(const char* key, bool& out) {
    const ojson* v = get(key);
    if (!v) return Status::ok_status();
    if (!v->is_boolean()) return type_error(key, "a boolean");
    out = v->get<bool>();
    return Status::ok_status();
  }
  Status read_number(const char* key, std::optional<double>& out) {
    const ojson* v = get(key);
    if (!v) return Status::ok_status();
    if (!v->is_number()) return type_error(key, "a number");
    double d = v->get<double>();
    if (!std::isfinite(d)) return type_error(key, "a finite number");
    out = d;
    return Status::ok_status();
  }
  // Integers; an integral float (5.0) is accepted as pydantic's lax mode does.
  Status read_int(const char* key, std::optional<int64_t>& out) {
    const ojson* v = get(key);
    if (!v) return Status::ok_status();
    return to_int(*v, key, out);
  }
  Status read_string(const char* key, std::optional<std::string>& out) {
    const ojson* v = get(key);
    if (!v) return Status::ok_status();
    if (!v->is_string()) return type_error(key, "a string");
    out = v->get<std::string>();
    return Status::ok_status();
  }
  std::vector<std::string> unknown_fields() const {
    std::vector<std::string> out;
    for (auto it = body_.begin(); it != body_.end(); ++it) {
      if (!known_.count(it.key())) out.push_back(it.key());
    }
    return out;
  }
  static Status type_error(const std::string& key, const char* what) {
    return invalid_argument("'" + key + "' must be " + what);
  }
  static Status to_int(const ojson& v, const std::string& key, std::optional<int64_t>& out) {
    if (v.is_number_integer()) {
      if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return invalid_argument("'" + key + "' is out of range");
      }
      out = v.get<int64_t>();
      return Status::ok_status();
    }
    if (v.is_number_float()) {
      double d = v.get<double>();
      if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9.2e18) {
        out = static_cast<int64_t>(d);
        return Status::ok_status();
      }
    }
    return type_error(key, "an integer");
  }

 private:
  const ojson& body_;
  std::set<std::string> known_;
};

std::string format_number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%g", v);
  return buf;
}

Status check_range(const char* key, double v, double lo, double hi, bool lo_open = false) {
  if (v < lo || v > hi || (lo_open && v == lo)) {
    std::string range = std::string(lo_open ? "(" : "[") + format_number(lo) + ", " + format_number(hi) + "]";
    return invalid_argument(std::string(key) + " must be in " + range + ", got " + format_number(v) + ".");
  }
  return Status::ok_status();
}

Status check_token_id(int64_t id, const RequestLimits& limits, const std::string& what) {
  if (id < 0 || id > std::numeric_limits<int32_t>::max() || (limits.vocab_size > 0 && id >= limits.vocab_size)) {
    return invalid_argument(what + " contains out-of-vocab token id " + std::to_string(id));
  }
  return Status::ok_status();
}

Status read_token_list(const ojson& v, const std::string& key, const RequestLimits& limits, size_t max_len,
                       std::vector<int32_t>& out) {
  if (!v.is_array()) return FieldReader::type_error(key, "a list of token ids");
  if (v.size() > max_len) return invalid_argument("'" + key + "' has more than " + std::to_string(max_len) + " entries");
  for (const auto& e : v) {
    std::optional<int64_t> id;
    K2_RETURN_IF_ERROR(FieldReader::to_int(e, key, id));
    K2_RETURN_IF_ERROR(check_token_id(*id, limits, "'" + key + "'"));
    out.push_back(static_cast<int32_t>(*id));
  }
  return Status::ok_status();
}

Status read_stop(FieldReader& r, const RequestLimits& limits, CommonRequest& out) {
  const ojson* v = r.get("stop");
  if (!v) return Status::ok_status();
  if (v->is_string()) {
    out.stop.push_back(v->get<std::string>());
  } else if (v->is_array()) {
    for (const auto& s : *v) {
      if (!s.is_string()) return FieldReader::type_error("stop", "a string or a list of strings");
      out.stop.push_back(s.get<std::string>());
    }
  } else {
    return FieldReader::type_error("stop", "a string or a list of strings");
  }
  if (out.stop.size() > limits.max_stop_strings) {
    return invalid_argument("At most " + std::to_string(limits.max_stop_strings) + " stop sequences are allowed, got " +
                            std::to_string(out.stop.size()) + ".");
  }
  for (const auto& s : out.stop) {
    if (s.empty()) return invalid_argument("stop cannot contain an empty string.");
    if (s.size() > limits.max_stop_string_bytes) {
      return invalid_argument("A stop sequence is longer than " + std::to_string(limits.max_stop_string_bytes) +
                              " bytes.");
    }
  }
  return Status::ok_status();
}

Status read_logit_bias(FieldReader& r, const RequestLimits& limits, SamplingParams& sp) {
  const ojson* v = r.get("logit_bias");
  if (!v) return Status::ok_status();
  if (!v->is_object()) return FieldReader::type_error("logit_bias", "an object of token id -> bias");
  if (v->size() > limits.max_logit_bias) {
    return invalid_argument("logit_bias has more than " + std::to_string(limits.max_logit_bias) + " entries");
  }
  for (auto it = v->begin(); it != v->end(); ++it) {
    const std::string& key = it.key();
    if (key.empty() || key.size() > 10 || key.find_first_not_of("0123456789") != std::string::npos) {
      return invalid_argument("logit_bias keys must be token ids, got '" + key.substr(0, 32) + "'");
    }
    const int64_t id = std::stoll(key);
    K2_RETURN_IF_ERROR(check_token_id(id, limits, "logit_bias"));
    if (!it->is_number() || !std::isfinite(it->get<double>())) {
      return FieldReader::type_error("logit_bias values", "numbers");
    }
    sp.logit_bias[static_cast<int32_t>(id)] = std::clamp(it->get<double>(), -100.0, 100.0);
  }
  return Status::ok_status();
}

Status read_max_tokens(FieldReader& r, CommonRequest& out) {
  std::optional<int64_t> max_tokens, max_completion_tokens;
  K2_RETURN_IF_ERROR(r.read_int("max_tokens", max_tokens));
  K2_RETURN_IF_ERROR(r.read_int("max_completion_tokens", max_completion_tokens));
  auto chosen = max_completion_tokens ? max_completion_tokens : max_tokens;
  if (chosen) {
    if (*chosen < 1) return invalid_argument("max_tokens must be at least 1, got " + std::to_string(*chosen) + ".");
    out.max_tokens = static_cast<int32_t>(std::min<int64_t>(*chosen, std::numeric_limits<int32_t>::max()));
  }
  return Status::ok_status();
}

// Sampling fields common to both endpoints.
Status read_sampling(FieldReader& r, const RequestLimits& limits, CommonRequest& out) {
  SamplingParams& sp = out.sampling;
  std::optional<double> d;
  std::optional<int64_t> i;
  K2_RETURN_IF_ERROR(r.read_number("temperature", d));
  if (d) {
    K2_RETURN_IF_ERROR(check_range("temperature", *d, 0, 1e6));
    sp.temperature = *d;
    out.has_temperature = true;
  }
  d.reset();
  K2_RETURN_IF_ERROR(r.read_number("top_p", d));
  if (d) {
    K2_RETURN_IF_ERROR(check_range("top_p", *d, 0, 1, true));
    sp.top_p = *d;
    out.has_top_p = true;
  }
  K2_RETURN_IF_ERROR(r.read_int("top_k", i));
  if (i) {
    if (*i < -1 || *i > std::numeric_limits<int32_t>::max()) {
      return invalid_argument("top_k must be 0 or -1 (disable), or at least 1, got " + std::to_string(*i) + ".");
    }
    sp.top_k = *i == -1 ? 0 : static_cast<int32_t>(*i);
    out.has_top_k = true;
  }
  d.reset();
  K2_RETURN_IF_ERROR(r.read_number("min_p", d));
  if (d) {
    K2_RETURN_IF_ERROR(check_range("min_p", *d, 0, 1));
    sp.min_p = *d;
    out.has_min_p = true;
  }
  for (auto [key, field] : {std::pair{"presence_penalty", &sp.presence_penalty},
                            std::pair{"frequency_penalty", &sp.frequency_penalty}}) {
    d.reset();
    K2_RETURN_IF_ERROR(r.read_number(key, d));
    if (d) {
      K2_RETURN_IF_ERROR(check_range(key, *d, -2, 2));
      *field = *d;
    }
  }
  d.reset();
  K2_RETURN_IF_ERROR(r.read_number("repetition_penalty", d));
  if (d) {
    if (*d <= 0 || *d > 1e6) return invalid_argument("repetition_penalty must be greater than zero.");
    sp.repetition_penalty = *d;
    out.has_repetition_penalty = true;
  }
  i.reset();
  K2_RETURN_IF_ERROR(r.read_int("seed", i));
  if (i) sp.seed = *i;
  i.reset();
  K2_RETURN_IF_ERROR(r.read_int("min_tokens", i));
  if (i) {
    if (*i < 0 || *i > std::numeric_limits<int32_t>::max()) {
      return invalid_argument("min_tokens must be greater than or equal to 0.");
    }
    sp.min_tokens = static_cast<int32_t>(*i);
  }
  K2_RETURN_IF_ERROR(r.read_bool("ignore_eos", sp.ignore_eos));
  if (const ojson* v = r.get("stop_token_ids")) {
    K2_RETURN_IF_ERROR(read_token_list(*v, "stop_token_ids", limits, limits.max_stop_token_ids, sp.stop_token_ids));
  }
  if (const ojson* v = r.get("allowed_token_ids")) {
    std::vector<int32_t> ids;
    K2_RETURN_IF_ERROR(read_token_list(*v, "allowed_token_ids", limits, 1u << 20, ids));
    if (ids.empty()) return invalid_argument("allowed_token_ids is not allowed to be empty.");
    sp.allowed_token_ids = std::move(ids);
  }
  K2_RETURN_IF_ERROR(read_logit_bias(r, limits, sp));
  i.reset();
  K2_RETURN_IF_ERROR(r.read_int("prompt_logprobs", i));
  if (i) {
    if (*i < 0 || *i > limits.max_logprobs) {
      return invalid_argument("prompt_logprobs must be in [0, " + std::to_string(limits.max_logprobs) + "], got " +
                              std::to_string(*i) + ".");
    }
    sp.prompt_logprobs = static_cast<int32_t>(*i);
  }
  i.reset();
  K2_RETURN_IF_ERROR(r.read_int("priority", i));  // needs --scheduling-policy priority: accepted, unused
  return read_max_tokens(r, out);
}

// response_format (OpenAI) and structured_outputs (vLLM), for chat and completions alike.
Status read_structured_outputs(FieldReader& r, CommonRequest& out) {
  if (const ojson* rf = r.get("response_format")) {
    auto type = rf->is_object() ? rf->find("type") : rf->end();
    if (!rf->is_object() || type == rf->end() || !type->is_string()) {
      return invalid_argument("response_format must be an object with a 'type'");
    }
    const std::string t = type->get<std::string>();
    if (t == "json_object") {
      out.json_object = true;
    } else if (t == "json_schema") {
      auto js = rf->find("json_schema");
      if (js == rf->end() || !js->is_object() || !js->contains("schema")) {
        return invalid_argument("response_format json_schema needs json_schema.schema");
      }
      out.json_schema = (*js)["schema"];
    } else if (t != "text") {
      return invalid_argument("response_format type must be 'text', 'json_object' or 'json_schema'");
    }
  }
  if (const ojson* so = r.get("structured_outputs")) {
    if (!so->is_object()) return FieldReader::type_error("structured_outputs", "an object");
    for (auto it = so->begin(); it != so->end(); ++it) {
      if (it.value().is_null() || (it.value().is_boolean() && !it.value().get<bool>())) continue;
      if (it.key() == "json") {
        out.json_schema = it.value();
        if (it.value().is_string()) {
          out.json_schema = ojson::parse(it.value().get<std::string>(), nullptr, false);
          if (out.json_schema->is_discarded()) return invalid_argument("structured_outputs.json is not JSON");
        }
      } else if (it.key() == "json_object") {
        out.json_object = true;
      } else if (it.key() != "disable_fallback" && it.key() != "disable_any_whitespace") {
        return unimplemented("structured_outputs." + it.key() + " is not supported (json and json_object are)");
      }
    }
  }
  if (out.json_schema && !out.json_schema->is_object() && !out.json_schema->is_boolean()) {
    return invalid_argument("a JSON schema must be an object");
  }
  return Status::ok_status();
}

Status read_common(FieldReader& r, const RequestLimits& limits, CommonRequest& out) {
  std::optional<std::string> s;
  K2_RETURN_IF_ERROR(r.read_string("model", s));
  if (s) out.model = *s;
  std::optional<int64_t> n;
  K2_RETURN_IF_ERROR(r.read_int("n", n));
  if (n) {
    if (*n < 1) return invalid_argument("n must be at least 1, got " + std::to_string(*n) + ".");
    if (*n > limits.max_n) {
      return invalid_argument("n must be at most " + std::to_string(limits.max_n) + ", got " + std::to_string(*n) + ".");
    }
    out.n = static_cast<int32_t>(*n);
  }
  K2_RETURN_IF_ERROR(r.read_bool("stream", out.stream));
  if (const ojson* so = r.get("stream_options")) {
    if (!so->is_object()) return FieldReader::type_error("stream_options", "an object");
    if (!out.stream) return invalid_argument("Stream options can only be defined when `stream=True`.");
    FieldReader sr(*so);
    K2_RETURN_IF_ERROR(sr.read_bool("include_usage", out.include_usage));
    K2_RETURN_IF_ERROR(sr.read_bool("continuous_usage_stats", out.continuous_usage_stats));
  }
  K2_RETURN_IF_ERROR(read_sampling(r, limits, out));
  K2_RETURN_IF_ERROR(read_stop(r, limits, out));
  K2_RETURN_IF_ERROR(r.read_bool("include_stop_str_in_output", out.include_stop_str_in_output));
  K2_RETURN_IF_ERROR(r.read_bool("skip_special_tokens", out.skip_special_tokens));
  K2_RETURN_IF_ERROR(r.read_bool("spaces_between_special_tokens", out.spaces_between_special_tokens));
  K2_RETURN_IF_ERROR(r.read_bool("return_tokens_as_token_ids", out.return_tokens_as_token_ids));
  K2_RETURN_IF_ERROR(r.read_bool("echo", out.echo));
  K2_RETURN_IF_ERROR(r.read_string("request_id", out.request_id));
  K2_RETURN_IF_ERROR(read_structured_outputs(r, out));
  K2_RETURN_IF_ERROR(r.read_string("cache_salt", out.cache_salt));
  if (out.cache_salt && out.cache_salt->empty()) {
    return invalid_argument("Parameter 'cache_salt' must be a non-empty string if provided.");
  }
  bool beam = false;
  K2_RETURN_IF_ERROR(r.read_bool("use_beam_search", beam));
  if (beam) return unimplemented("use_beam_search is not supported by this server");
  std::optional<int64_t> best_of;
  K2_RETURN_IF_ERROR(r.read_int("best_of", best_of));
  if (best_of && *best_of != out.n) return unimplemented("best_of is not supported; use n");
  // As vLLM: prompt_logprobs = 0 may stream (nothing of the prompt is returned then).
  if (out.sampling.prompt_logprobs.value_or(0) > 0 && out.stream) {
    return invalid_argument("`prompt_logprobs` are not available when `stream=True`.");
  }
  return Status::ok_status();
}

Status read_tool_choice(FieldReader& r, ChatRequest& out) {
  const bool has_tools = !out.tools.is_null();
  out.tool_choice.kind = has_tools ? ToolChoiceKind::kAuto : ToolChoiceKind::kNone;
  const ojson* v = r.get("tool_choice");
  if (!v) return Status::ok_status();
  out.tool_choice_given = true;
  if (v->is_string()) {
    const auto& s = v->get_ref<const std::string&>();
    if (s == "none") out.tool_choice.kind = ToolChoiceKind::kNone;
    else if (s == "auto") out.tool_choice.kind = ToolChoiceKind::kAuto;
    else if (s == "required") out.tool_choice.kind = ToolChoiceKind::kRequired;
    else return invalid_argument("tool_choice must be 'none', 'auto', 'required' or a named function");
  } else if (v->is_object()) {
    auto fn = v->find("function");
    if (fn == v->end() || !fn->is_object() || !fn->contains("name") || !(*fn)["name"].is_string()) {
      return invalid_argument("tool_choice must name a function: {\"type\": \"function\", \"function\": {\"name\": ...}}");
    }
    out.tool_choice.kind = ToolChoiceKind::kNamed;
    out.tool_choice.name = (*fn)["name"].get<std::string>();
  } else {
    return FieldReader::type_error("tool_choice", "a string or an object");
  }
  if (out.tool_choice.kind == ToolChoiceKind::kNone) return Status::ok_status();
  if (!has_tools) return invalid_argument("When using `tool_choice`, `tools` must be set.");
  if (out.tool_choice.kind == ToolChoiceKind::kNamed) {
    for (const auto& t : out.tools) {
      if (t["function"]["name"] == out.tool_choice.name) return Status::ok_status();
    }
    return invalid_argument("Tool '" + out.tool_choice.name.substr(0, 200) +
                            "' has been chosen in tool_choice but is not in the tools list.");
  }
  return Status::ok_status();
}

Status read_tools(FieldReader& r, const RequestLimits& limits, ChatRequest& out) {
  const ojson* v = r.get("tools");
  if (!v) return Status::ok_status();
  if (!v->is_array()) return FieldReader::type_error("tools", "a list");
  if (v->size() > limits.max_tools) return invalid_argument("Too many tools (at most " + std::to_string(limits.max_tools) + ")");
  for (const auto& t : *v) {
    if (!t.is_object()) return FieldReader::type_error("tools[]", "an object");
    auto type = t.find("type");
    if (type != t.end() && !(type->is_string() && *type == "function")) {
      return invalid_argument("Only tools of type 'function' are supported");
    }
    auto fn = t.find("function");
    if (fn == t.end() || !fn->is_object()) return invalid_argument("Each tool needs a 'function' object");
    auto name = fn->find("name");
    if (name == fn->end() || !name->is_string() || name->get_ref<const std::string&>().empty()) {
      return invalid_argument("Each tool function needs a non-empty 'name'");
    }
    auto params = fn->find("parameters");
    if (params != fn->end() && !params->is_null() && !params->is_object()) {
      return invalid_argument("A tool's 'parameters' must be a JSON Schema object");
    }
  }
  if (!v->empty()) out.tools = *v;
  return Status::ok_status();
}

Status read_messages(FieldReader& r, ChatRequest& out) {
  const ojson* v = r.get("messages");
  if (!v) return invalid_argument("'messages' is required");
  if (!v->is_array()) return FieldReader::type_error("messages", "a list");
  if (v->empty()) return invalid_argument("'messages' must not be empty");
  for (const auto& m : *v) {
    if (!m.is_object()) return FieldReader::type_error("messages[]", "an object");
    auto role = m.find("role");
    if (role == m.end() || !role->is_string()) return invalid_argument("Each message needs a string 'role'");
    auto content = m.find("content");
    if (content == m.end() || content->is_null() || content->is_string()) continue;
    if (!content->is_array()) return invalid_argument("A message's 'content' must be a string, a list of parts or null");
    for (const auto& part : *content) {
      if (!part.is_object()) return invalid_argument("Each content part must be an object");
      auto type = part.find("type");
      // Media parts are checked and loaded by chat_media.h (a text-only model refuses them there).
      if (type != part.end() && type->is_string() && (*type == "image_url" || *type == "video_url")) continue;
      if (type != part.end() && type->is_string() && *type != "text") {
        return invalid_argument("Content parts of type '" + type->get<std::string>().substr(0, 40) +
                                "' are not supported by this server");
      }
      auto text = part.find("text");
      if (text == part.end() || !text->is_string()) return invalid_argument("A text content part needs a string 'text'");
    }
  }
  out.messages = *v;
  return Status::ok_status();
}

const std::set<std::string>& reserved_template_variables() {
  static const std::set<std::string> k{"messages", "tools", "documents", "raise_exception", "strftime_now",
                                       "bos_token", "eos_token", "unk_token", "pad_token", "additional_special_tokens"};
  return k;
}

Status read_chat_extras(FieldReader& r, ChatRequest& out, const RequestLimits& limits) {
  K2_RETURN_IF_ERROR(r.read_bool("parallel_tool_calls", out.parallel_tool_calls));
  K2_RETURN_IF_ERROR(r.read_bool("add_generation_prompt", out.add_generation_prompt));
  K2_RETURN_IF_ERROR(r.read_bool("continue_final_message", out.continue_final_message));
  if (out.continue_final_message && out.add_generation_prompt) {
    return invalid_argument("Cannot set both `continue_final_message` and `add_generation_prompt` to True.");
  }
  if (const ojson* kw = r.get("chat_template_kwargs")) {
    if (!kw->is_object()) return FieldReader::type_error("chat_template_kwargs", "an object");
    for (auto it = kw->begin(); it != kw->end(); ++it) {
      if (reserved_template_variables().count(it.key())) {
        return invalid_argument("chat_template_kwargs may not set '" + it.key() + "'");
      }
    }
    out.chat_template_kwargs = *kw;
  }
  K2_RETURN_IF_ERROR(r.read_string("chat_template", out.chat_template));
  K2_RETURN_IF_ERROR(r.read_bool("include_reasoning", out.include_reasoning));
  bool logprobs = false;
  K2_RETURN_IF_ERROR(r.read_bool("logprobs", logprobs));
  std::optional<int64_t> top;
  K2_RETURN_IF_ERROR(r.read_int("top_logprobs", top));
  if (top) {
    if (*top < 0 || *top > limits.max_logprobs) {
      return invalid_argument("top_logprobs must be in [0, " + std::to_string(limits.max_logprobs) + "], got " +
                              std::to_string(*top) + ".");
    }
    if (*top > 0 && !logprobs) return invalid_argument("when using `top_logprobs`, `logprobs` must be set to true.");
  }
  if (logprobs) out.logprobs = static_cast<int32_t>(top.value_or(0));
  return Status::ok_status();
}

}  // namespace

Result<ojson> parse_json_body(std::string_view body) {
  ojson j = ojson::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return invalid_argument("Malformed JSON in request body");
  if (!j.is_object()) return invalid_argument("The request body must be a JSON object");
  return j;
}

Result<ChatRequest> parse_chat_request(const ojson& body, const RequestLimits& limits) {
  if (!body.is_object()) return invalid_argument("The request body must be a JSON object");
  ChatRequest out;
  FieldReader r(body);
  K2_RETURN_IF_ERROR(read_messages(r, out));
  K2_RETURN_IF_ERROR(read_common(r, limits, out));
  K2_RETURN_IF_ERROR(read_tools(r, limits, out));
  K2_RETURN_IF_ERROR(read_tool_choice(r, out));
  K2_RETURN_IF_ERROR(read_chat_extras(r, out, limits));
  for (const char* k : {"logprobs", "top_logprobs"}) r.get(k);
  out.ignored_fields = r.unknown_fields();
  return out;
}

Result<CompletionRequest> parse_completion_request(const ojson& body, const RequestLimits& limits) {
  if (!body.is_object()) return invalid_argument("The request body must be a JSON object");
  CompletionRequest out;
  FieldReader r(body);
  const ojson* p = r.get("prompt");
  if (!p) return invalid_argument("'prompt' is required");
  auto add_ids = [&](const ojson& arr) -> Status {
    PromptInput in;
    K2_RETURN_IF_ERROR(read_token_list(arr, "prompt", limits, size_t{1} << 24, in.ids));
    out.prompts.push_back(std::move(in));
    return Status::ok_status();
  };
  if (p->is_string()) {
    out.prompts.push_back({p->get<std::string>(), {}});
  } else if (p->is_array() && !p->empty() && (*p)[0].is_number()) {
    K2_RETURN_IF_ERROR(add_ids(*p));
  } else if (p->is_array() && !p->empty()) {
    if (p->size() > limits.max_prompts) {
      return invalid_argument("At most " + std::to_string(limits.max_prompts) + " prompts per request");
    }
    for (const auto& e : *p) {
      if (e.is_string()) out.prompts.push_back({e.get<std::string>(), {}});
      else if (e.is_array()) K2_RETURN_IF_ERROR(add_ids(e));
      else return FieldReader::type_error("prompt", "a string, a list of strings, token ids, or lists of token ids");
    }
  } else {
    return invalid_argument("'prompt' must be a non-empty string, list of strings, token ids, or lists of token ids");
  }
  for (const auto& in : out.prompts) {
    if (!in.text && in.ids.empty()) return invalid_argument("A token-id prompt must not be empty");
    if (in.text && in.text->empty()) return invalid_argument("The prompt cannot be empty.");
  }
  K2_RETURN_IF_ERROR(read_common(r, limits, out));
  std::optional<int64_t> logprobs;
  K2_RETURN_IF_ERROR(r.read_int("logprobs", logprobs));
  if (logprobs) {
    if (*logprobs < 0 || *logprobs > limits.max_logprobs) {
      return invalid_argument("logprobs must be in [0, " + std::to_string(limits.max_logprobs) + "], got " +
                              std::to_string(*logprobs) + ".");
    }
    out.logprobs = static_cast<int32_t>(*logprobs);
  }
  std::optional<std::string> suffix;
  K2_RETURN_IF_ERROR(r.read_string("suffix", suffix));
  if (suffix) return invalid_argument("suffix is not currently supported");
  if (out.echo && out.logprobs) out.sampling.prompt_logprobs = std::max(out.sampling.prompt_logprobs.value_or(0), *out.logprobs);
  out.ignored_fields = r.unknown_fields();
  return out;
}

std::string context_length_message(int64_t max_model_len, int64_t prompt_tokens, std::optional<int64_t> max_tokens) {
  const std::string L = std::to_string(max_model_len), n = std::to_string(prompt_tokens);
  if (!max_tokens || prompt_tokens >= max_model_len) {
    return "This model's maximum context length is " + L + " tokens. However, your request has " + n +
           " input tokens. Please reduce the length of the input messages.";
  }
  const std::string m = std::to_string(*max_tokens);
  return "'max_tokens' or 'max_completion_tokens' is too large: " + m + ". This model's maximum context length is " +
         L + " tokens and your request has " + n + " input tokens (" + m + " > " + L + " - " + n + ").";
}

Status finalize_sampling(CommonRequest& request, int64_t prompt_tokens, int64_t max_model_len,
                         const GenerationDefaults& defaults) {
  if (prompt_tokens >= max_model_len) {
    return invalid_argument(context_length_message(max_model_len, prompt_tokens, std::nullopt));
  }
  if (request.max_tokens && prompt_tokens + *request.max_tokens > max_model_len) {
    return invalid_argument(context_length_message(max_model_len, prompt_tokens, *request.max_tokens));
  }
  SamplingParams& sp = request.sampling;
  int64_t max_tokens = max_model_len - prompt_tokens;
  if (request.max_tokens) max_tokens = *request.max_tokens;
  else if (defaults.max_tokens) max_tokens = std::min<int64_t>(max_tokens, *defaults.max_tokens);
  sp.max_tokens = static_cast<int32_t>(max_tokens);
  if (!request.has_temperature && defaults.temperature) sp.temperature = *defaults.temperature;
  if (!request.has_top_p && defaults.top_p) sp.top_p = *defaults.top_p;
  if (!request.has_top_k && defaults.top_k) sp.top_k = *defaults.top_k;
  if (!request.has_min_p && defaults.min_p) sp.min_p = *defaults.min_p;
  if (!request.has_repetition_penalty && defaults.repetition_penalty) sp.repetition_penalty = *defaults.repetition_penalty;
  if (sp.min_tokens > sp.max_tokens) {
    return invalid_argument("min_tokens must be less than or equal to max_tokens=" + std::to_string(sp.max_tokens) +
                            ", got " + std::to_string(sp.min_tokens) + ".");
  }
  sp.logprobs = request.logprobs;
  return Status::ok_status();
}

}  // namespace k2::openai
