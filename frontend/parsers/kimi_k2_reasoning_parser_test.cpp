#include "frontend/parsers/kimi_k2_reasoning_parser.h"

#include <gtest/gtest.h>

#include "frontend/parsers/stream_test_util.h"

namespace k2::parsers {
namespace {

ReasoningSplit stream_split(const std::vector<std::string>& pieces, bool thinking) {
  KimiK2ReasoningStream stream(thinking);
  std::string reasoning, content;
  for (const std::string& p : pieces) {
    ReasoningDelta d = stream.feed(p);
    reasoning += d.reasoning;
    content += d.content;
  }
  ReasoningDelta d = stream.finish();
  reasoning += d.reasoning;
  content += d.content;
  return {reasoning, content};
}

TEST(KimiK2Reasoning, NonStreamingRules) {
  auto s = extract_reasoning("<think>a</think>b", true);
  EXPECT_EQ(s.reasoning, "a");
  EXPECT_EQ(s.content, "b");
  s = extract_reasoning("a</think>", true);
  EXPECT_EQ(s.reasoning, "a");
  EXPECT_FALSE(s.content.has_value());
  s = extract_reasoning("<think>a<|tool_calls_section_begin|>x", true);
  EXPECT_EQ(s.reasoning, "a");
  EXPECT_EQ(s.content, "<|tool_calls_section_begin|>x");
  s = extract_reasoning("<think>a<|tool_calls_section_begin|>x</think>y", true);
  EXPECT_EQ(s.reasoning, "a<|tool_calls_section_begin|>x");
  EXPECT_EQ(s.content, "y");
  s = extract_reasoning("<thi", true);
  EXPECT_EQ(s.reasoning, "<thi");
  EXPECT_FALSE(s.content.has_value());
  s = extract_reasoning("", true);
  EXPECT_EQ(s.reasoning, "");
  EXPECT_FALSE(s.content.has_value());
  s = extract_reasoning("<think><think>x", true);  // only the first is consumed
  EXPECT_EQ(s.reasoning, "<think>x");
  s = extract_reasoning("<think>a</think>b", false);
  EXPECT_FALSE(s.reasoning.has_value());
  EXPECT_EQ(s.content, "<think>a</think>b");
}

TEST(KimiK2Reasoning, StreamingEqualsNonStreamingForEveryCut) {
  const std::vector<std::string> texts = {
      "<think>a</think>b",
      "a</think>b</think>c",
      "<think>a<|tool_calls_section_begin|>x</think>y",
      "<think>a<|tool_calls_section_begin|>x<|tool_calls_section_begin|>z",
      "<|tool_calls_section_begin|></think>",
      "</think><think>",
      "<thin",
      "<think",
      "<think>",
      "<<think>",
      "</thi</think>",
      "<|tool_calls_section_begi<|tool_calls_section_begin|>",
      "",
      "plain text",
      "\xE4\xBD\xA0<think>\xF0\x9F\xA4\x94</think>\xE5\xA5\xBD",
  };
  for (const std::string& text : texts) {
    for (bool thinking : {true, false}) {
      ReasoningSplit whole = extract_reasoning(text, thinking);
      for (size_t cut = 0; cut <= text.size(); ++cut) {
        for (size_t cut2 = cut; cut2 <= text.size(); ++cut2) {
          ReasoningSplit streamed =
              stream_split({text.substr(0, cut), text.substr(cut, cut2 - cut), text.substr(cut2)}, thinking);
          EXPECT_EQ(streamed.reasoning, whole.reasoning.value_or("")) << text << " @" << cut << "," << cut2;
          EXPECT_EQ(streamed.content, whole.content.value_or("")) << text << " @" << cut << "," << cut2;
        }
      }
    }
  }
}

TEST(KimiK2Reasoning, StreamsReasoningBeforeTheEndArrives) {
  KimiK2ReasoningStream stream(true);
  EXPECT_EQ(stream.feed("<think>").reasoning, "");
  EXPECT_EQ(stream.feed("step one").reasoning, "step one");
  ReasoningDelta d = stream.feed(" two</th");
  EXPECT_EQ(d.reasoning, " two");  // the partial end marker is held back
  d = stream.feed("ink>Answer");
  EXPECT_EQ(d.reasoning, "");
  EXPECT_EQ(d.content, "Answer");
  EXPECT_EQ(stream.feed(" more").content, " more");
}

TEST(KimiK2Reasoning, HoldsTheToolSectionUntilThinkEndOrFinish) {
  KimiK2ReasoningStream stream(true);
  EXPECT_EQ(stream.feed("plan<|tool_calls_section_begin|>call").reasoning, "plan");
  ReasoningDelta d = stream.feed("ing");
  EXPECT_TRUE(d.reasoning.empty() && d.content.empty());
  d = stream.finish();
  EXPECT_EQ(d.content, "<|tool_calls_section_begin|>calling");
}

}  // namespace
}  // namespace k2::parsers
