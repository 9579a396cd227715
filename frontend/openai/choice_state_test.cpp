#include "frontend/openai/choice_state.h"

#include <gtest/gtest.h>

namespace k2::openai {
namespace {

std::shared_ptr<const Tokenizer> demo_tokenizer() {
  static auto tok = [] {
    auto t = Tokenizer::load(std::string(K2_TEST_DATA_DIR) + "/models/demo-trained");
    EXPECT_TRUE(t.ok()) << t.status().to_string();
    return std::move(t).value();
  }();
  return tok;
}

// Feeds the ids one per engine output; the last output finishes with `finish`.
std::vector<ChoiceDelta> feed_one_by_one(ChoiceState& s, const std::vector<int32_t>& ids, FinishReason finish,
                                         std::optional<int32_t> stop_token = std::nullopt) {
  std::vector<ChoiceDelta> out;
  for (size_t i = 0; i < ids.size() && !s.finished(); ++i) {
    EngineOutput o;
    o.new_token_ids = {ids[i]};
    if (i + 1 == ids.size()) {
      o.finish_reason = finish;
      o.stop_token_id = stop_token;
    }
    bool hit = false;
    out.push_back(s.consume(o, hit));
  }
  return out;
}

TEST(ChoiceState, StopStringTruncatesAndIsNeverPartlyStreamed) {
  auto tok = demo_tokenizer();
  ChoiceConfig c;
  c.tokenizer = tok;
  c.stop = {"STOP"};
  c.streaming = true;
  ChoiceState s(c);
  auto deltas = feed_one_by_one(s, tok->encode("Hello world. STOP here.", false), FinishReason::kLength);
  std::string streamed;
  for (const auto& d : deltas) {
    streamed += d.content;
    EXPECT_EQ(streamed.find("ST", streamed.size() > 1 ? streamed.size() - 2 : 0), std::string::npos);
  }
  EXPECT_EQ(streamed, "Hello world. ");
  ASSERT_TRUE(deltas.back().finish_reason);
  EXPECT_EQ(*deltas.back().finish_reason, "stop");
  EXPECT_EQ(deltas.back().stop_reason, "STOP");
  EXPECT_TRUE(s.finished());
}

TEST(ChoiceState, StopTokenTextIsDroppedAndStopReasonIsTheRequestsId) {
  auto tok = demo_tokenizer();
  const int32_t im_end = *tok->special_token_id("<|im_end|>");
  ChoiceConfig c;
  c.tokenizer = tok;
  c.skip_special_tokens = false;
  c.stop_token_ids = {im_end};
  ChoiceState s(c);
  auto ids = tok->encode("Fine.", false);
  ids.push_back(im_end);
  auto deltas = feed_one_by_one(s, ids, FinishReason::kStop, im_end);
  EXPECT_EQ(s.text(), "Fine.");
  EXPECT_EQ(deltas.back().stop_reason, im_end);
  EXPECT_EQ(s.num_generated(), static_cast<int32_t>(ids.size()));
}

TEST(ChoiceState, EosWithoutStopTokenIdsHasNullStopReason) {
  auto tok = demo_tokenizer();
  const int32_t im_end = *tok->special_token_id("<|im_end|>");
  ChoiceConfig c;
  c.tokenizer = tok;
  ChoiceState s(c);
  auto deltas = feed_one_by_one(s, {im_end}, FinishReason::kStop, im_end);
  EXPECT_TRUE(deltas.back().stop_reason.is_null());
  EXPECT_EQ(*deltas.back().finish_reason, "stop");
}

TEST(ChoiceState, StreamingToolCallDeltasAreOpenAiShaped) {
  auto tok = demo_tokenizer();
  ChoiceConfig c;
  c.tokenizer = tok;
  c.skip_special_tokens = false;
  c.streaming = true;
  parsers::OutputParserConfig pc;
  pc.parse_tools = true;
  c.parser = pc;
  ChoiceState s(c);
  auto ids = tok->encode(
      "Sure.<|tool_calls_section_begin|><|tool_call_begin|>functions.f:0<|tool_call_argument_begin|>{\"a\": 1}"
      "<|tool_call_end|><|tool_call_begin|>functions.g:1<|tool_call_argument_begin|>{}<|tool_call_end|>"
      "<|tool_calls_section_end|>",
      true);
  ChoiceDelta all;
  for (auto& d : feed_one_by_one(s, ids, FinishReason::kStop)) all.merge(std::move(d));
  EXPECT_EQ(all.content, "Sure.");
  ASSERT_EQ(all.tool_calls.size(), 2u);  // fragments of each call merged
  EXPECT_EQ(all.tool_calls[0].index, 0);
  EXPECT_EQ(*all.tool_calls[0].id, "functions.f:0");
  EXPECT_EQ(*all.tool_calls[0].name, "f");
  EXPECT_EQ(all.tool_calls[0].arguments, "{\"a\": 1}");
  EXPECT_EQ(all.tool_calls[1].index, 1);
  EXPECT_EQ(*all.tool_calls[1].name, "g");
  EXPECT_TRUE(s.tool_calls_sent());
}

TEST(ChoiceState, ParallelToolCallsFalseKeepsTheFirst) {
  auto tok = demo_tokenizer();
  ChoiceConfig c;
  c.tokenizer = tok;
  c.skip_special_tokens = false;
  c.streaming = true;
  c.parallel_tool_calls = false;
  parsers::OutputParserConfig pc;
  pc.parse_tools = true;
  c.parser = pc;
  ChoiceState s(c);
  auto ids = tok->encode(
      "<|tool_calls_section_begin|><|tool_call_begin|>functions.f:0<|tool_call_argument_begin|>{}<|tool_call_end|>"
      "<|tool_call_begin|>functions.g:1<|tool_call_argument_begin|>{}<|tool_call_end|><|tool_calls_section_end|>",
      true);
  ChoiceDelta all;
  for (auto& d : feed_one_by_one(s, ids, FinishReason::kStop)) all.merge(std::move(d));
  ASSERT_EQ(all.tool_calls.size(), 1u);
  EXPECT_EQ(*all.tool_calls[0].name, "f");
}

TEST(ChoiceState, EngineErrorEndsTheChoice) {
  auto tok = demo_tokenizer();
  ChoiceConfig c;
  c.tokenizer = tok;
  ChoiceState s(c);
  EngineOutput o;
  o.finish_reason = FinishReason::kError;
  o.error = "worker died";
  bool hit = false;
  auto d = s.consume(o, hit);
  ASSERT_TRUE(d.error);
  EXPECT_EQ(*d.error, "worker died");
  EXPECT_EQ(*d.finish_reason, "error");
}

TEST(ChoiceDelta, MergeConcatenatesArgumentsOfTheSameCall) {
  ChoiceDelta a, b;
  a.tool_calls.push_back({0, std::string("id0"), std::string("f"), ""});
  b.tool_calls.push_back({0, std::nullopt, std::nullopt, "{\"x\""});
  ChoiceDelta c;
  c.tool_calls.push_back({0, std::nullopt, std::nullopt, ": 1}"});
  c.finish_reason = "stop";
  a.merge(std::move(b));
  a.merge(std::move(c));
  ASSERT_EQ(a.tool_calls.size(), 1u);
  EXPECT_EQ(a.tool_calls[0].arguments, "{\"x\": 1}");
  EXPECT_EQ(*a.finish_reason, "stop");
}

}  // namespace
}  // namespace k2::openai
