#include "frontend/parsers/kimi_k2_tool_parser.h"

#include <gtest/gtest.h>

#include <random>

#include "frontend/parsers/reference_tool_regex.h"

namespace k2::parsers {
namespace {

constexpr char kBegin[] = "<|tool_call_begin|>";
constexpr char kArgs[] = "<|tool_call_argument_begin|>";
constexpr char kEnd[] = "<|tool_call_end|>";
constexpr char kSection[] = "<|tool_calls_section_begin|>";

std::string call(const std::string& id, const std::string& args) {
  return std::string(kBegin) + id + kArgs + args + kEnd;
}

// Expected values below were produced by Python's `regex` with vLLM's pattern.
TEST(ToolCallId, FollowsTheRegexBacktracking) {
  EXPECT_EQ(match_tool_call_id("functions.get_weather:0"), "functions.get_weather:0");
  EXPECT_EQ(match_tool_call_id("  :0 "), " :0");
  EXPECT_EQ(match_tool_call_id(" :0"), " :0");
  EXPECT_EQ(match_tool_call_id(":0"), std::nullopt);
  EXPECT_EQ(match_tool_call_id("a:1:2"), "a:1:2");
  EXPECT_EQ(match_tool_call_id("a:1 x:2"), "a:1 x:2");
  EXPECT_EQ(match_tool_call_id("a:b:3\n"), "a:b:3");
  EXPECT_EQ(match_tool_call_id("f:\xD9\xA3"), "f:\xD9\xA3");  // Arabic-Indic three is \d
  EXPECT_EQ(match_tool_call_id("f:3\xE3\x80\x80"), "f:3");    // U+3000 is \s
  EXPECT_EQ(match_tool_call_id("\xE3\x80\x80\xE3\x80\x80:7"), "\xE3\x80\x80:7");
  EXPECT_EQ(match_tool_call_id("a:1\x1c"), std::nullopt);  // 0x1C is not \s in `regex`
  EXPECT_EQ(match_tool_call_id("a: 1"), std::nullopt);
  EXPECT_EQ(match_tool_call_id("call_59ad0e1f"), std::nullopt);
  EXPECT_EQ(match_tool_call_id(""), std::nullopt);
}

TEST(ToolCallId, NameIsLastDottedPartBeforeTheFirstColon) {
  EXPECT_EQ(tool_name_from_id("functions.get_weather:0"), "get_weather");
  EXPECT_EQ(tool_name_from_id("functions.web.search-v2:3"), "search-v2");
  EXPECT_EQ(tool_name_from_id("get_weather:0"), "get_weather");
  EXPECT_EQ(tool_name_from_id("a:b.c:1"), "a");
  EXPECT_EQ(tool_name_from_id("x.:1"), "");
}

TEST(ExtractToolCalls, SectionRules) {
  ToolParseResult r = extract_tool_calls("no calls here");
  EXPECT_FALSE(r.tools_called);
  EXPECT_EQ(r.content, "no calls here");

  r = extract_tool_calls(call("f:0", "{}") + "pre" + kSection + call("g:1", " {\"a\": 1}\n") + "tail");
  EXPECT_TRUE(r.tools_called);
  EXPECT_EQ(r.content, call("f:0", "{}") + "pre");  // a call before the section is content and a call
  ASSERT_EQ(r.tool_calls.size(), 2u);
  EXPECT_EQ(r.tool_calls[0], (ToolCall{"f:0", "f", "{}"}));
  EXPECT_EQ(r.tool_calls[1], (ToolCall{"g:1", "g", "{\"a\": 1}"}));

  r = extract_tool_calls(std::string(kSection) + kBegin + "f:0" + kArgs + "a" + kBegin + "g:1" + kArgs + "b" +
                         kEnd);
  ASSERT_EQ(r.tool_calls.size(), 1u);  // the first call is voided by the second begin
  EXPECT_EQ(r.tool_calls[0], (ToolCall{"g:1", "g", "b"}));
  EXPECT_FALSE(r.content.has_value());

  r = extract_tool_calls(std::string(kSection) + call("f:0", " \xE2\x80\x83 x \xE2\x80\x83") + kEnd);
  ASSERT_EQ(r.tool_calls.size(), 1u);
  EXPECT_EQ(r.tool_calls[0].arguments, "x");
}

// Random texts over the marker alphabet: the matcher must agree with PCRE2 running the
// regex itself, and feeding the text in pieces must not change what it finds.
TEST(ToolCallMatcher, AgreesWithTheRegexOnRandomTexts) {
  const std::vector<std::string> alphabet = {
      kBegin, kArgs,          kEnd,      kSection, "<|tool_call_be", "f", "functions.g", ":",
      "0",    "12",           " ",       "\n",     "{\"a\": 1}",     "<", "|",           ".",
      "x",    "\xE3\x80\x80", "\xD9\xA3"};
  const std::vector<std::string> ids = {"functions.f:0", "g:12",         " f:1 ",         ":3",
                                        "a:b",           "x.y:\xD9\xA3", "\xE3\x80\x80:7"};
  std::mt19937 rng(42);
  std::uniform_int_distribution<size_t> pick(0, alphabet.size() - 1);
  std::uniform_int_distribution<size_t> pick_id(0, ids.size() - 1);
  std::uniform_int_distribution<int> length(0, 12);
  std::uniform_int_distribution<int> coin(0, 2);
  int with_calls = 0;
  for (int round = 0; round < 3000; ++round) {
    // Mostly near-calls (begin, id, argument marker, noise, end) mixed with loose tokens,
    // so that both matches and every way of failing one are common.
    std::string text;
    for (int i = length(rng); i > 0; --i) {
      if (coin(rng) != 0) {
        text += alphabet[pick(rng)];
        continue;
      }
      text += std::string(kBegin) + ids[pick_id(rng)] + kArgs;
      for (int j = coin(rng); j > 0; --j) text += alphabet[pick(rng)];
      text += kEnd;
    }
    std::optional<std::vector<ToolCall>> want = testing::reference_tool_calls(text);
    ASSERT_TRUE(want.has_value()) << text;
    ToolCallMatcher whole;
    whole.advance(text);
    EXPECT_EQ(whole.calls(), *want) << text;
    if (!want->empty()) ++with_calls;

    ToolCallMatcher pieces;
    std::uniform_int_distribution<size_t> cut_len(1, 5);
    for (size_t end = 0; end < text.size();) {
      end = std::min(text.size(), end + cut_len(rng));
      pieces.advance(std::string_view(text).substr(0, end));
    }
    EXPECT_EQ(pieces.calls(), *want) << text;
  }
  EXPECT_GT(with_calls, 100);  // the alphabet really produces calls
}

TEST(KimiK2ToolStream, StreamsContentThenCallsAtTheirEnd) {
  KimiK2ToolStream stream;
  EXPECT_EQ(stream.feed("Let me check. <|tool_calls_sec").content, "Let me check. ");
  ToolStreamDelta d = stream.feed("tion_begin|><|tool_call_begin|>functions.get_weather:0");
  EXPECT_TRUE(d.content.empty());
  EXPECT_TRUE(d.tool_calls.empty());
  EXPECT_TRUE(stream.tools_called());
  d = stream.feed("<|tool_call_argument_begin|>{\"city\": \"Oslo\"}");
  EXPECT_TRUE(d.tool_calls.empty());  // not certain until <|tool_call_end|>
  d = stream.feed("<|tool_call_end|><|tool_calls_section_end|> trailing");
  ASSERT_EQ(d.tool_calls.size(), 2u);
  EXPECT_EQ(d.tool_calls[0].index, 0);
  EXPECT_EQ(d.tool_calls[0].id, "functions.get_weather:0");
  EXPECT_EQ(d.tool_calls[0].name, "get_weather");
  EXPECT_EQ(d.tool_calls[0].arguments, "");
  EXPECT_EQ(d.tool_calls[1].index, 0);
  EXPECT_FALSE(d.tool_calls[1].id.has_value());
  EXPECT_EQ(d.tool_calls[1].arguments, "{\"city\": \"Oslo\"}");
  EXPECT_TRUE(d.content.empty());  // text after the section is dropped
  d = stream.finish();
  EXPECT_TRUE(d.content.empty() && d.tool_calls.empty());
}

TEST(KimiK2ToolStream, HeldPartialMarkerIsContentAtFinish) {
  KimiK2ToolStream stream;
  EXPECT_EQ(stream.feed("a<|tool_calls").content, "a");
  EXPECT_EQ(stream.finish().content, "<|tool_calls");
  EXPECT_FALSE(stream.tools_called());
}

TEST(KimiK2ToolStream, CallsBeforeTheSectionWaitForIt) {
  KimiK2ToolStream stream;
  ToolStreamDelta d = stream.feed(call("f:0", "{}"));
  EXPECT_EQ(d.content, call("f:0", "{}"));
  EXPECT_TRUE(d.tool_calls.empty());
  d = stream.feed(kSection);
  ASSERT_EQ(d.tool_calls.size(), 2u);
  EXPECT_EQ(d.tool_calls[0].id, "f:0");
}

}  // namespace
}  // namespace k2::parsers
