#include "frontend/parsers/output_parser.h"

namespace k2::parsers {

namespace {

constexpr std::string_view kParserName = "kimi_k2";

// Python's bool(x) on a JSON value, which is how vLLM reads `thinking`.
bool python_truthy(const nlohmann::json& value) {
  switch (value.type()) {
    case nlohmann::json::value_t::null:
      return false;
    case nlohmann::json::value_t::boolean:
      return value.get<bool>();
    case nlohmann::json::value_t::number_integer:
    case nlohmann::json::value_t::number_unsigned:
    case nlohmann::json::value_t::number_float:
      return value.get<double>() != 0.0;
    case nlohmann::json::value_t::string:
      return !value.get_ref<const std::string&>().empty();
    default:
      return !value.empty();
  }
}

// Reads an optional parser name: absent or null -> off, "kimi_k2" -> on, else an error.
Result<bool> parser_enabled(const nlohmann::json& request, const char* key) {
  auto it = request.find(key);
  if (it == request.end() || it->is_null()) return false;
  if (!it->is_string()) return invalid_argument(std::string(key) + " must be a string or null");
  if (it->get_ref<const std::string&>() != kParserName) {
    return invalid_argument(std::string("unsupported ") + key + " '" + it->get<std::string>() +
                            "' (supported: kimi_k2)");
  }
  return true;
}

}  // namespace

Result<OutputParserConfig> output_config_from_request(const nlohmann::json& request) {
  if (!request.is_object()) return invalid_argument("request must be a JSON object");
  OutputParserConfig config;
  K2_ASSIGN_OR_RETURN(config.parse_reasoning, parser_enabled(request, "reasoning_parser"));
  K2_ASSIGN_OR_RETURN(bool tool_parser, parser_enabled(request, "tool_parser"));

  bool tools = false;
  if (auto it = request.find("tools"); it != request.end()) {
    if (it->is_boolean()) {
      tools = it->get<bool>();
    } else if (it->is_array()) {
      tools = !it->empty();
    } else if (!it->is_null()) {
      return invalid_argument("tools must be a bool, a list or null");
    }
  }
  bool choice_none = false;
  if (auto it = request.find("tool_choice"); it != request.end() && !it->is_null()) {
    choice_none = it->is_string() && it->get_ref<const std::string&>() == "none";
  }
  config.parse_tools = tools && tool_parser && !choice_none;

  if (auto it = request.find("chat_template_kwargs"); it != request.end() && !it->is_null()) {
    if (!it->is_object()) return invalid_argument("chat_template_kwargs must be an object");
    if (auto t = it->find("thinking"); t != it->end()) config.thinking = python_truthy(*t);
  }
  return config;
}

ParsedOutput parse_output(std::string_view text, const OutputParserConfig& config) {
  ParsedOutput out;
  if (config.parse_reasoning) {
    ReasoningSplit split = extract_reasoning(text, config.thinking);
    out.reasoning = std::move(split.reasoning);
    out.content = std::move(split.content);
  } else {
    out.content = std::string(text);
  }
  if (config.forced.active()) {
    std::vector<ToolCall> calls = forced_tool_calls(out.content.value_or(""), config.forced);
    if (!calls.empty()) {
      out.tools_called = true;
      out.tool_calls = std::move(calls);
      out.content = "";  // as vLLM: "" rather than null beside forced calls
    }
  } else if (config.parse_tools) {
    ToolParseResult tools = extract_tool_calls(out.content.value_or(""));
    if (tools.tools_called) {
      out.tools_called = true;
      out.tool_calls = std::move(tools.tool_calls);
      out.content = std::move(tools.content);
    }
  }
  return out;
}

OutputStream::OutputStream(const OutputParserConfig& config)
    // Without a reasoning parser, or with thinking off, the reasoning stage passes every
    // byte through as content.
    : reasoning_(config.parse_reasoning && config.thinking) {
  if (config.forced.active()) {
    forced_.emplace(config.forced);
  } else if (config.parse_tools) {
    tools_.emplace();
  }
}

void OutputStream::route(const ReasoningDelta& step, bool final, DeltaMessage& out) {
  out.reasoning += step.reasoning;
  if (forced_) {
    forced_text_ += step.content;
    for (ToolCallDelta& d : forced_->feed(step.content)) out.tool_calls.push_back(std::move(d));
    if (final && !forced_->any_sent()) out.content += forced_text_;
    return;
  }
  if (!tools_) {
    out.content += step.content;
    return;
  }
  ToolStreamDelta tool_step = tools_->feed(step.content);
  if (final) {
    ToolStreamDelta rest = tools_->finish();
    tool_step.content += rest.content;
    for (ToolCallDelta& d : rest.tool_calls) tool_step.tool_calls.push_back(std::move(d));
  }
  out.content += tool_step.content;
  for (ToolCallDelta& d : tool_step.tool_calls) out.tool_calls.push_back(std::move(d));
}

DeltaMessage OutputStream::feed(std::string_view text) {
  DeltaMessage out;
  route(reasoning_.feed(text), /*final=*/false, out);
  return out;
}

DeltaMessage OutputStream::finish() {
  DeltaMessage out;
  route(reasoning_.finish(), /*final=*/true, out);
  return out;
}

nlohmann::json delta_to_json(const DeltaMessage& delta) {
  nlohmann::json out = nlohmann::json::object();
  if (!delta.reasoning.empty()) out["reasoning"] = delta.reasoning;
  if (!delta.content.empty()) out["content"] = delta.content;
  if (!delta.tool_calls.empty()) {
    nlohmann::json calls = nlohmann::json::array();
    for (const ToolCallDelta& d : delta.tool_calls) {
      nlohmann::json call = {{"index", d.index}};
      nlohmann::json function = {{"arguments", d.arguments}};
      if (d.id) {
        call["id"] = *d.id;
        call["type"] = "function";
      }
      if (d.name) function["name"] = *d.name;
      call["function"] = std::move(function);
      calls.push_back(std::move(call));
    }
    out["tool_calls"] = std::move(calls);
  }
  return out;
}

nlohmann::json tool_call_to_json(const ToolCall& call) {
  return {{"id", call.id},
          {"type", "function"},
          {"function", {{"name", call.name}, {"arguments", call.arguments}}}};
}

}  // namespace k2::parsers
