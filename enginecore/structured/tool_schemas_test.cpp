// tool_choice schema builders against the JSON vLLM builds, the "required" output parser, and
// Python-compatible json.dumps.
#include <gtest/gtest.h>

#include "enginecore/structured/python_json.h"
#include "enginecore/structured/tool_schemas.h"

namespace k2::structured {
namespace {

using Json = nlohmann::ordered_json;

const char* kTools = R"([
  {"type": "function", "function": {"name": "get_weather", "description": "Weather now",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
  {"type": "function", "function": {"name": "ping"}},
  {"type": "function", "function": {"name": "noop", "parameters": {}}}])";

// Expected values transcribed from vLLM, vllm/entrypoints/openai/protocol.py,
// ChatCompletionRequest._get_json_schema_from_tool (earlier _get_guided_json_from_tool):
//   get_tool_schema(tool) = {"properties": {"name": {"type": "string", "enum": [tool.function.name]},
//       "parameters": tool.function.parameters if tool.function.parameters
//                     else {"type": "object", "properties": {}}},
//     "required": ["name", "parameters"]}
//   json_schema = {"type": "array", "minItems": 1,
//                  "items": {"type": "object", "anyOf": [get_tool_schema(tool) for tool in self.tools]}}
//   plus json_schema["$defs"] = all tools' "$defs" (popped from their parameters) when any.
TEST(ToolSchemas, RequiredMatchesVllm) {
  auto schema = required_tool_calls_schema(Json::parse(kTools));
  ASSERT_TRUE(schema.ok()) << schema.status().to_string();
  Json expected = Json::parse(R"({"type": "array", "minItems": 1, "items": {"type": "object", "anyOf": [
    {"properties": {"name": {"type": "string", "enum": ["get_weather"]},
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
     "required": ["name", "parameters"]},
    {"properties": {"name": {"type": "string", "enum": ["ping"]}, "parameters": {"type": "object", "properties": {}}},
     "required": ["name", "parameters"]},
    {"properties": {"name": {"type": "string", "enum": ["noop"]}, "parameters": {"type": "object", "properties": {}}},
     "required": ["name", "parameters"]}]}})");
  EXPECT_EQ(*schema, expected);  // ordered_json: key order compared too, as Python dicts keep it
  EXPECT_EQ(schema->dump(), expected.dump());
}

TEST(ToolSchemas, RequiredHoistsDefs) {
  Json tools = Json::parse(R"([
    {"type": "function", "function": {"name": "a", "parameters": {"type": "object",
      "properties": {"p": {"$ref": "#/$defs/P"}}, "$defs": {"P": {"type": "integer"}}}}},
    {"type": "function", "function": {"name": "b", "parameters": {"type": "object",
      "properties": {"q": {"$ref": "#/$defs/P"}}, "$defs": {"P": {"type": "integer"}}}}}])");
  auto schema = required_tool_calls_schema(tools);
  ASSERT_TRUE(schema.ok());
  EXPECT_EQ((*schema)["$defs"], Json::parse(R"({"P": {"type": "integer"}})"));
  EXPECT_FALSE((*schema)["items"]["anyOf"][0]["properties"]["parameters"].contains("$defs"));
  tools[1]["function"]["parameters"]["$defs"]["P"] = {{"type", "string"}};
  auto conflict = required_tool_calls_schema(tools);
  ASSERT_FALSE(conflict.ok());
  EXPECT_EQ(conflict.status().message(), "Tool definition 'P' has multiple schemas, which is not supported.");
}

TEST(ToolSchemas, RequiredRejectsMalformedTools) {
  EXPECT_FALSE(required_tool_calls_schema(Json::array()).ok());
  EXPECT_FALSE(required_tool_calls_schema(Json::parse(R"([{"type": "function"}])")).ok());
  EXPECT_FALSE(required_tool_calls_schema(Json::parse(R"([{"function": {"name": 3}}])")).ok());
  EXPECT_FALSE(required_tool_calls_schema(Json::parse(R"([{"function": {"name": "x", "parameters": [1]}}])")).ok());
}

TEST(ToolSchemas, NamedIsTheToolsParameters) {
  Json tools = Json::parse(kTools);
  auto named = named_tool_schema(tools, "get_weather");
  ASSERT_TRUE(named.ok());
  EXPECT_EQ(*named, tools[0]["function"]["parameters"]);
  auto none = named_tool_schema(tools, "ping");
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->is_null());
  auto missing = named_tool_schema(tools, "nope");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().message(), "Tool 'nope' has not been passed in `tools`.");
}

TEST(ToolSchemas, ParseRequiredOutput) {
  auto calls = parse_required_tool_calls(
      R"([{"name": "get_weather", "parameters": {"city": "Z\u00fcrich\n", "n": 1.0, "big": 1e16, "tiny": 0.00001,
          "list": [1,2,{"x":null}], "ok": true}}, {"name":"ping","parameters":{}}, {"name": "noop"}])");
  ASSERT_TRUE(calls.ok()) << calls.status().to_string();
  ASSERT_EQ(calls->size(), 3u);
  EXPECT_EQ((*calls)[0].name, "get_weather");
  EXPECT_EQ((*calls)[0].arguments,
            "{\"city\": \"Z\xC3\xBCrich\\n\", \"n\": 1.0, \"big\": 1e+16, \"tiny\": 1e-05, "
            "\"list\": [1, 2, {\"x\": null}], \"ok\": true}");
  EXPECT_EQ((*calls)[1].arguments, "{}");
  EXPECT_EQ((*calls)[2].name, "noop");
  EXPECT_EQ((*calls)[2].arguments, "null");  // json.dumps(None)
  // Duplicate keys: Python's dict keeps the first position and the last value.
  auto dup = parse_required_tool_calls(R"([{"name": "f", "parameters": {"a": 1, "b": 2, "a": 3}}])");
  ASSERT_TRUE(dup.ok());
  EXPECT_EQ((*dup)[0].arguments, R"({"a": 3, "b": 2})");
  EXPECT_TRUE(parse_required_tool_calls("[]").ok());
}

TEST(ToolSchemas, ParseRequiredOutputErrors) {
  EXPECT_FALSE(parse_required_tool_calls("").ok());
  EXPECT_FALSE(parse_required_tool_calls(R"([{"name": "f")").ok());
  EXPECT_FALSE(parse_required_tool_calls(R"({"name": "f"})").ok());
  EXPECT_FALSE(parse_required_tool_calls(R"([1])").ok());
  EXPECT_FALSE(parse_required_tool_calls(R"([{"parameters": {}}])").ok());
  EXPECT_FALSE(parse_required_tool_calls(R"([{"name": 1}])").ok());
  EXPECT_FALSE(parse_required_tool_calls(R"([{"name": "f", "parameters": [1]}])").ok());
  EXPECT_FALSE(parse_required_tool_calls(R"([{"name": "f", "description": 5}])").ok());
  std::string deep = R"([{"name": "f", "parameters": {"a": )" + std::string(100000, '[') + std::string(100000, ']') + "}}]";
  EXPECT_FALSE(parse_required_tool_calls(deep).ok());
}

TEST(PythonJson, FloatRepr) {
  const std::pair<double, const char*> cases[] = {
      {0.1, "0.1"}, {1.0, "1.0"}, {-2.5, "-2.5"}, {123456789.0, "123456789.0"}, {1e16, "1e+16"},
      {1e15, "1000000000000000.0"}, {9999999999999998.0, "9999999999999998.0"}, {1e22, "1e+22"},
      {0.0001, "0.0001"}, {0.00001, "1e-05"}, {1.5e-7, "1.5e-07"}, {5e-324, "5e-324"},
      {1.7976931348623157e308, "1.7976931348623157e+308"}, {-0.0, "-0.0"}, {0.0, "0.0"}, {3.14159, "3.14159"},
      {1.2345e-100, "1.2345e-100"}, {100.0, "100.0"}};
  for (const auto& [value, text] : cases) EXPECT_EQ(python_float_repr(value), text) << text;
}

TEST(PythonJson, DumpsLikeEnsureAsciiFalse) {
  Json v = Json::parse(R"({"s": "a\"b\\c\u0001\u001f\u007f\t\b\f\r/é", "n": [1, -2, 18446744073709551615], "e": {},
                          "l": [], "z": null})");
  EXPECT_EQ(python_json_dumps(v),
            "{\"s\": \"a\\\"b\\\\c\\u0001\\u001f\x7f\\t\\b\\f\\r/\xC3\xA9\", \"n\": [1, -2, 18446744073709551615], "
            "\"e\": {}, \"l\": [], \"z\": null}");
}

}  // namespace
}  // namespace k2::structured
