#include "frontend/openai/structured_plan.h"

#include <gtest/gtest.h>

namespace k2::openai {
namespace {

ojson body(ojson extra) {
  ojson j = {{"model", "m"}, {"messages", ojson::array({{{"role", "user"}, {"content", "hi"}}})}};
  for (auto it = extra.begin(); it != extra.end(); ++it) j[it.key()] = it.value();
  return j;
}

const ojson kParams = ojson::parse(R"({"type":"object","properties":{"city":{"type":"string"}},"required":["city"]})");

ojson tools() {
  return ojson::array({{{"type", "function"}, {"function", {{"name", "get_weather"}, {"parameters", kParams}}}},
                       {{"type", "function"}, {"function", {{"name", "ping"}}}}});
}

Result<StructuredPlan> plan(ojson extra, std::optional<int32_t> think_end = std::nullopt) {
  auto r = parse_chat_request(body(std::move(extra)), {});
  if (!r.ok()) return r.status();
  return plan_structured_output(*r, think_end);
}

TEST(RequestParse, ResponseFormatAndStructuredOutputs) {
  auto schema = parse_chat_request(
      body({{"response_format", {{"type", "json_schema"}, {"json_schema", {{"name", "x"}, {"schema", kParams}}}}}}), {});
  ASSERT_TRUE(schema.ok()) << schema.status().message();
  ASSERT_TRUE(schema->json_schema);
  EXPECT_EQ(schema->json_schema->dump(), kParams.dump());  // key order kept
  auto object = parse_chat_request(body({{"response_format", {{"type", "json_object"}}}}), {});
  ASSERT_TRUE(object.ok());
  EXPECT_TRUE(object->json_object);
  auto text = parse_completion_request({{"prompt", "a"}, {"structured_outputs", {{"json", kParams.dump()}}}}, {});
  ASSERT_TRUE(text.ok()) << text.status().message();
  EXPECT_EQ(text->json_schema->dump(), kParams.dump());
  EXPECT_EQ(parse_chat_request(body({{"structured_outputs", {{"regex", "a+"}}}}), {}).status().code(), Code::kUnimplemented);
  EXPECT_FALSE(parse_chat_request(body({{"response_format", {{"type", "json_schema"}}}}), {}).ok());
  EXPECT_FALSE(parse_chat_request(body({{"structured_outputs", {{"json", "{not json"}}}}), {}).ok());
  EXPECT_FALSE(parse_chat_request(body({{"structured_outputs", {{"json", 5}}}}), {}).ok());
}

TEST(StructuredPlan, RequiredBuildsVllmsArraySchemaAndParallelFalseCapsIt) {
  auto p = plan({{"tools", tools()}, {"tool_choice", "required"}});
  ASSERT_TRUE(p.ok()) << p.status().message();
  ASSERT_TRUE(p->engine);
  const ojson schema = ojson::parse(p->engine->json_schema);
  EXPECT_EQ(schema["type"], "array");
  EXPECT_EQ(schema["minItems"], 1);
  EXPECT_FALSE(schema.contains("maxItems"));
  EXPECT_EQ(schema["items"]["anyOf"].size(), 2u);
  EXPECT_EQ(p->forced.mode, parsers::ForcedToolMode::kRequired);
  auto one = plan({{"tools", tools()}, {"tool_choice", "required"}, {"parallel_tool_calls", false}});
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(ojson::parse(one->engine->json_schema)["maxItems"], 1);
}

TEST(StructuredPlan, NamedUsesTheParametersAndCountsHistoryCalls) {
  ojson messages = ojson::array(
      {{{"role", "user"}, {"content", "hi"}},
       {{"role", "assistant"}, {"content", ""}, {"tool_calls", ojson::array({{{"id", "functions.ping:0"}}, {{"id", "functions.ping:1"}}})}},
       {{"role", "tool"}, {"content", "ok"}}});
  ojson choice = {{"type", "function"}, {"function", {{"name", "get_weather"}}}};
  auto p = plan({{"messages", messages}, {"tools", tools()}, {"tool_choice", choice}}, 791);
  ASSERT_TRUE(p.ok()) << p.status().message();
  ASSERT_TRUE(p->engine);
  EXPECT_EQ(p->engine->json_schema, kParams.dump());
  EXPECT_EQ(p->engine->reasoning_end_token_id, 791);
  EXPECT_EQ(p->forced.mode, parsers::ForcedToolMode::kNamed);
  EXPECT_EQ(p->forced.name, "get_weather");
  EXPECT_EQ(p->forced.first_call_index, 2);
  // A tool without parameters: no constraint (vLLM), still a forced call.
  auto bare = plan({{"tools", tools()}, {"tool_choice", {{"type", "function"}, {"function", {{"name", "ping"}}}}}});
  ASSERT_TRUE(bare.ok());
  EXPECT_FALSE(bare->engine);
  EXPECT_EQ(bare->forced.mode, parsers::ForcedToolMode::kNamed);
}

TEST(StructuredPlan, ResponseFormatAndErrorsNameTheKeyword) {
  auto p = plan({{"response_format", {{"type", "json_object"}}}});
  ASSERT_TRUE(p.ok());
  ASSERT_TRUE(p->engine);
  EXPECT_TRUE(p->engine->json_object);
  EXPECT_FALSE(p->forced.active());
  auto none = plan({});
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->engine);
  ojson bad = {{"type", "json_schema"}, {"json_schema", {{"name", "x"}, {"schema", {{"type", "string"}, {"pattern", "a+"}}}}}};
  auto refused = plan({{"response_format", bad}});
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), Code::kInvalidArgument);
  EXPECT_NE(refused.status().message().find("pattern"), std::string::npos);
  // tool_choice wins over response_format.
  auto both = plan({{"tools", tools()}, {"tool_choice", "required"}, {"response_format", {{"type", "json_object"}}}});
  ASSERT_TRUE(both.ok());
  EXPECT_FALSE(both->engine->json_object);
}

}  // namespace
}  // namespace k2::openai
