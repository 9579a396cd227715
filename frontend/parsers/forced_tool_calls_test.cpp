#include "frontend/parsers/forced_tool_calls.h"

#include <gtest/gtest.h>

#include <random>

#include "frontend/parsers/stream_test_util.h"

namespace k2::parsers {
namespace {

using testing::expect_same;
using testing::run_stream;
using testing::split_chars;
using testing::split_random;

OutputParserConfig forced(ForcedToolMode mode, std::string name = "", int32_t first = 0, bool reasoning = false) {
  OutputParserConfig c;
  c.parse_reasoning = reasoning;
  c.forced = ForcedToolChoice{mode, std::move(name), first};
  return c;
}

TEST(ForcedToolCalls, NamedTakesTheContentAsTheArguments) {
  const ParsedOutput out = parse_output(R"({"a": 1, "b": "x"})", forced(ForcedToolMode::kNamed, "multiply", 2));
  ASSERT_EQ(out.tool_calls.size(), 1u);
  EXPECT_EQ(out.tool_calls[0], (ToolCall{"functions.multiply:2", "multiply", R"({"a": 1, "b": "x"})"}));
  EXPECT_EQ(out.content, "");
  EXPECT_FALSE(forced(ForcedToolMode::kNamed).tool_calls_finish_reason());
}

TEST(ForcedToolCalls, RequiredGivesOneCallPerElementWithPythonDumpsArguments) {
  const std::string text = R"([{"name": "add", "parameters": {"a":1,"b":[2, "é"]}}, {"name":"sub","parameters":{}}])";
  const ParsedOutput out = parse_output(text, forced(ForcedToolMode::kRequired, "", 1));
  ASSERT_EQ(out.tool_calls.size(), 2u);
  EXPECT_EQ(out.tool_calls[0], (ToolCall{"functions.add:1", "add", R"({"a": 1, "b": [2, "é"]})"}));
  EXPECT_EQ(out.tool_calls[1], (ToolCall{"functions.sub:2", "sub", "{}"}));
  EXPECT_TRUE(out.tools_called);
  EXPECT_TRUE(forced(ForcedToolMode::kRequired).tool_calls_finish_reason());
}

TEST(ForcedToolCalls, OutputCutShortStaysContent) {
  const std::string cut = R"([{"name": "add", "parameters": {"a": 1)";
  const ParsedOutput out = parse_output(cut, forced(ForcedToolMode::kRequired));
  EXPECT_TRUE(out.tool_calls.empty());
  EXPECT_EQ(out.content, cut);
  // Streamed, the complete elements go out as calls and nothing else: here none, so the
  // text comes back as content at the end, as in the one-shot form.
  expect_same(run_stream(split_chars(cut), forced(ForcedToolMode::kRequired)), out, "cut");
}

TEST(ForcedToolCalls, StreamingEqualsOneShotForEverySplit) {
  struct Case {
    ForcedToolMode mode;
    std::string text;
  };
  const std::vector<Case> cases = {
      {ForcedToolMode::kNamed, R"({"city": "Paris \"15e\"", "days": [1, 2]})"},
      {ForcedToolMode::kRequired, R"([{"name": "a", "parameters": {"s": "}]{[\\\""}}, {"name": "b", "parameters": {}}])"},
      {ForcedToolMode::kRequired, "[ {\"name\":\"only\",\"parameters\":{\"n\":-1.5e3}} ]"},
  };
  std::mt19937 rng(7);
  for (const Case& c : cases) {
    for (bool reasoning : {false, true}) {
      const std::string text = reasoning ? "<think>let me think</think>" + c.text : c.text;
      const OutputParserConfig config = forced(c.mode, "f", 3, reasoning);
      const ParsedOutput whole = parse_output(text, config);
      ASSERT_FALSE(whole.tool_calls.empty()) << text;
      expect_same(run_stream(split_chars(text), config), whole, "chars " + text);
      for (int round = 0; round < 20; ++round) {
        expect_same(run_stream(split_random(text, rng, 7), config), whole, "random " + text);
      }
    }
  }
}

}  // namespace
}  // namespace k2::parsers
