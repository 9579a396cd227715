// The JSON schemas vLLM builds for tool_choice, and the parser of what "required" generates.
// Pure functions on JSON values; thread-safe. JSON is ordered_json throughout: property
// order in a schema is the order the grammar makes the model write them.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "shm/status.h"

namespace k2::structured {

// tool_choice "required": vLLM's ChatCompletionRequest._get_json_schema_from_tool():
// {"type":"array","minItems":1,"items":{"type":"object","anyOf":[
//   {"properties":{"name":{"type":"string","enum":[NAME]},"parameters":PARAMS},
//    "required":["name","parameters"]}, ...]}}
// with PARAMS = {"type":"object","properties":{}} when a tool has no (or empty) parameters,
// and every tool's "$defs" moved to the top level (conflicting definitions are an error).
// `tools` is the request's OpenAI "tools" array.
Result<nlohmann::ordered_json> required_tool_calls_schema(const nlohmann::ordered_json& tools);

// tool_choice {"type":"function","function":{"name":NAME}}: the named tool's "parameters"
// (null when the tool has none, as in vLLM: such a request gets no constraint).
Result<nlohmann::ordered_json> named_tool_schema(const nlohmann::ordered_json& tools, std::string_view name);

struct ParsedToolCall {
  std::string name;
  std::string arguments;  // json.dumps(parameters, ensure_ascii=False); "null" when absent
};

// What vLLM does with the text generated under required_tool_calls_schema:
// TypeAdapter(list[FunctionDefinition]).validate_json(text), then one call per element.
Result<std::vector<ParsedToolCall>> parse_required_tool_calls(std::string_view generated);

}  // namespace k2::structured
