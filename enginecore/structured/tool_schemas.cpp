#include "enginecore/structured/tool_schemas.h"

#include "enginecore/structured/json_depth.h"
#include "enginecore/structured/python_json.h"

namespace k2::structured {

namespace {

using Json = nlohmann::ordered_json;

// Far beyond any real tool schema or grammar-constrained output; keeps the recursive copies
// and dumps below bounded.
constexpr size_t kMaxToolCallDepth = 512;

Result<const Json*> tool_function(const Json& tool, size_t index) {
  std::string where = "tools[" + std::to_string(index) + "]";
  if (!tool.is_object()) return invalid_argument(where + " must be an object");
  auto fn = tool.find("function");
  if (fn == tool.end() || !fn->is_object()) return invalid_argument(where + ".function must be an object");
  auto name = fn->find("name");
  if (name == fn->end() || !name->is_string()) return invalid_argument(where + ".function.name must be a string");
  auto params = fn->find("parameters");
  if (params != fn->end() && !params->is_null() && !params->is_object()) {
    return invalid_argument(where + ".function.parameters must be an object");
  }
  return &*fn;
}

// Python truthiness of `tool.function.parameters`: None and {} are both "no parameters".
bool has_parameters(const Json& fn) {
  auto params = fn.find("parameters");
  return params != fn.end() && params->is_object() && !params->empty();
}

}  // namespace

Result<Json> required_tool_calls_schema(const Json& tools) {
  if (!tools.is_array() || tools.empty()) return invalid_argument("tools must be a non-empty array");
  if (json_deeper_than(tools, kMaxToolCallDepth)) return invalid_argument("tools nested too deep");
  Json any_of = Json::array();
  Json defs = Json::object();
  for (size_t i = 0; i < tools.size(); ++i) {
    K2_ASSIGN_OR_RETURN(const Json* fn, tool_function(tools[i], i));
    Json params = has_parameters(*fn) ? (*fn)["parameters"] : Json{{"type", "object"}, {"properties", Json::object()}};
    // vLLM pops "$defs" from the very dict it put in the schema, so it leaves both places.
    if (params.contains("$defs")) {
      const Json& tool_defs = params["$defs"];
      if (tool_defs.is_object()) {
        for (auto d = tool_defs.begin(); d != tool_defs.end(); ++d) {
          if (defs.contains(d.key()) && defs[d.key()] != d.value()) {
            return invalid_argument("Tool definition '" + d.key() + "' has multiple schemas, which is not supported.");
          }
          defs[d.key()] = d.value();
        }
      }
      params.erase("$defs");
    }
    Json name_schema = {{"type", "string"}, {"enum", Json::array({(*fn)["name"]})}};
    any_of.push_back({{"properties", {{"name", name_schema}, {"parameters", params}}},
                      {"required", Json::array({"name", "parameters"})}});
  }
  Json schema = {{"type", "array"}, {"minItems", 1}, {"items", {{"type", "object"}, {"anyOf", any_of}}}};
  if (!defs.empty()) schema["$defs"] = defs;
  return schema;
}

Result<Json> named_tool_schema(const Json& tools, std::string_view name) {
  if (!tools.is_array()) return invalid_argument("tools must be an array");
  if (json_deeper_than(tools, kMaxToolCallDepth)) return invalid_argument("tools nested too deep");
  for (size_t i = 0; i < tools.size(); ++i) {
    K2_ASSIGN_OR_RETURN(const Json* fn, tool_function(tools[i], i));
    if ((*fn)["name"].get_ref<const std::string&>() != name) continue;
    auto params = fn->find("parameters");
    return params == fn->end() ? Json(nullptr) : *params;
  }
  return invalid_argument("Tool '" + std::string(name) + "' has not been passed in `tools`.");
}

Result<std::vector<ParsedToolCall>> parse_required_tool_calls(std::string_view generated) {
  // ordered_json keeps Python's dict semantics for duplicate keys: first position, last value.
  Json parsed = Json::parse(generated, nullptr, false);
  if (parsed.is_discarded()) return invalid_argument("tool calls are not valid JSON");
  if (json_deeper_than(parsed, kMaxToolCallDepth)) return invalid_argument("tool calls nested too deep");
  if (!parsed.is_array()) return invalid_argument("tool calls must be a JSON array");
  std::vector<ParsedToolCall> calls;
  for (size_t i = 0; i < parsed.size(); ++i) {
    const Json& call = parsed[i];
    std::string where = "tool call " + std::to_string(i);
    if (!call.is_object()) return invalid_argument(where + " must be an object");
    auto name = call.find("name");
    if (name == call.end() || !name->is_string()) return invalid_argument(where + ": 'name' must be a string");
    auto description = call.find("description");
    if (description != call.end() && !description->is_null() && !description->is_string()) {
      return invalid_argument(where + ": 'description' must be a string");
    }
    auto params = call.find("parameters");
    if (params != call.end() && !params->is_null() && !params->is_object()) {
      return invalid_argument(where + ": 'parameters' must be an object");
    }
    calls.push_back({name->get<std::string>(), params == call.end() ? "null" : python_json_dumps(*params)});
  }
  return calls;
}

}  // namespace k2::structured
