#include "frontend/parsers/output_parser.h"

#include <gtest/gtest.h>

#include <fstream>
#include <random>

#include "frontend/parsers/stream_test_util.h"

namespace k2::parsers {
namespace {

using nlohmann::json;
using testing::expect_same;
using testing::run_stream;

struct GoldenCase {
  std::string id;
  std::string model_output;
  json request;
  json expected;
};

std::vector<GoldenCase> load_goldens() {
  std::ifstream file(K2_TEST_DATA_DIR "/text/goldens/tool_parser_cases.jsonl");
  EXPECT_TRUE(file.good());
  std::vector<GoldenCase> cases;
  std::string line;
  while (std::getline(file, line)) {
    if (line.empty()) continue;
    json r = json::parse(line);
    cases.push_back({r["id"], r["model_output"], r["request"], r["expected"]});
  }
  return cases;
}

ParsedOutput expected_of(const GoldenCase& c) {
  ParsedOutput out;
  if (!c.expected["reasoning"].is_null()) out.reasoning = c.expected["reasoning"].get<std::string>();
  if (!c.expected["content"].is_null()) out.content = c.expected["content"].get<std::string>();
  out.tools_called = c.expected["tools_called"];
  for (const json& call : c.expected["tool_calls"])
    out.tool_calls.push_back({call["id"], call["name"], call["arguments"]});
  return out;
}

OutputParserConfig config_of(const GoldenCase& c) {
  Result<OutputParserConfig> config = output_config_from_request(c.request);
  EXPECT_TRUE(config.ok()) << c.id << ": " << config.status().to_string();
  return config.ok() ? *config : OutputParserConfig{};
}

TEST(OutputParserGolden, EveryRecordMatchesExpected) {
  std::vector<GoldenCase> cases = load_goldens();
  ASSERT_FALSE(cases.empty());
  for (const GoldenCase& c : cases) {
    ParsedOutput got = parse_output(c.model_output, config_of(c));
    ParsedOutput want = expected_of(c);
    EXPECT_EQ(got.reasoning, want.reasoning) << c.id;
    EXPECT_EQ(got.content, want.content) << c.id;
    EXPECT_EQ(got.tools_called, want.tools_called) << c.id;
    EXPECT_EQ(got.tool_calls, want.tool_calls) << c.id;
  }
}

TEST(OutputParserGolden, StreamingOneCharacterAtATime) {
  for (const GoldenCase& c : load_goldens()) {
    expect_same(run_stream(testing::split_chars(c.model_output), config_of(c)), expected_of(c), c.id);
  }
}

TEST(OutputParserGolden, StreamingEveryTwoPieceCut) {
  for (const GoldenCase& c : load_goldens()) {
    const std::string& text = c.model_output;
    for (size_t cut = 0; cut <= text.size(); ++cut) {
      std::vector<std::string> pieces = {text.substr(0, cut), text.substr(cut)};
      expect_same(run_stream(pieces, config_of(c)), expected_of(c), c.id + " cut at " + std::to_string(cut));
    }
  }
}

TEST(OutputParserGolden, StreamingRandomPieces) {
  std::mt19937 rng(20250711);
  for (const GoldenCase& c : load_goldens()) {
    for (size_t max_len : {2, 3, 7, 31}) {
      for (int round = 0; round < 20; ++round) {
        expect_same(run_stream(testing::split_random(c.model_output, rng, max_len), config_of(c)),
                    expected_of(c), c.id + " max_len " + std::to_string(max_len));
      }
    }
  }
}

TEST(OutputParserGolden, StreamedCallsUseTwoFragmentsAndIndexOrder) {
  for (const GoldenCase& c : load_goldens()) {
    testing::StreamTotals t = run_stream(testing::split_chars(c.model_output), config_of(c));
    if (t.tool_calls.empty()) {
      EXPECT_EQ(t.deltas_with_tool_calls, 0) << c.id;
    }
  }
  OutputParserConfig config{.parse_reasoning = true, .thinking = true, .parse_tools = true, .forced = {}};
  OutputStream stream(config);
  DeltaMessage d = stream.feed(
      "<think>r</think>Hi <|tool_calls_section_begin|><|tool_call_begin|>functions.a:0"
      "<|tool_call_argument_begin|>{\"x\": 1}<|tool_call_end|><|tool_call_begin|>functions.b:1"
      "<|tool_call_argument_begin|><|tool_call_end|>");
  EXPECT_EQ(d.reasoning, "r");
  EXPECT_EQ(d.content, "Hi ");
  json j = delta_to_json(d);
  EXPECT_EQ(j["tool_calls"], json::parse(R"([
    {"index":0,"id":"functions.a:0","type":"function","function":{"name":"a","arguments":""}},
    {"index":0,"function":{"arguments":"{\"x\": 1}"}},
    {"index":1,"id":"functions.b:1","type":"function","function":{"name":"b","arguments":""}}])"));
  EXPECT_TRUE(stream.tools_called());
  EXPECT_TRUE(stream.finish().empty());
}

TEST(OutputParserConfig, ReadsRequestFlags) {
  auto config = output_config_from_request(json::parse(
      R"({"tools":[{"type":"function"}],"tool_parser":"kimi_k2","reasoning_parser":"kimi_k2",
          "chat_template_kwargs":{"thinking":0}})"));
  ASSERT_TRUE(config.ok());
  EXPECT_TRUE(config->parse_tools);
  EXPECT_TRUE(config->parse_reasoning);
  EXPECT_FALSE(config->thinking);  // Python truthiness, as vLLM's bool(...)

  config = output_config_from_request(
      json::parse(R"({"tools":true,"tool_parser":"kimi_k2","tool_choice":"none"})"));
  ASSERT_TRUE(config.ok());
  EXPECT_FALSE(config->parse_tools);

  config = output_config_from_request(json::parse(R"({"tools":false,"tool_parser":"kimi_k2"})"));
  ASSERT_TRUE(config.ok());
  EXPECT_FALSE(config->parse_tools);

  config = output_config_from_request(json::parse(R"({"chat_template_kwargs":{"thinking":null}})"));
  ASSERT_TRUE(config.ok());
  EXPECT_FALSE(config->thinking);
  config = output_config_from_request(json::parse(R"({"chat_template_kwargs":{}})"));
  ASSERT_TRUE(config.ok());
  EXPECT_TRUE(config->thinking);
}

TEST(OutputParserConfig, RejectsUnknownParsersAndBadShapes) {
  EXPECT_FALSE(output_config_from_request(json::parse(R"({"tool_parser":"hermes"})")).ok());
  EXPECT_FALSE(output_config_from_request(json::parse(R"({"reasoning_parser":"deepseek_r1"})")).ok());
  EXPECT_FALSE(output_config_from_request(json::parse(R"({"reasoning_parser":3})")).ok());
  EXPECT_FALSE(output_config_from_request(json::parse(R"({"tools":"yes"})")).ok());
  EXPECT_FALSE(output_config_from_request(json::parse(R"({"chat_template_kwargs":[1]})")).ok());
  EXPECT_FALSE(output_config_from_request(json::parse("[]")).ok());
}

TEST(OutputParser, ReasoningOnlyWithToolsKeepsNullContent) {
  OutputParserConfig config{.parse_reasoning = true, .thinking = true, .parse_tools = true, .forced = {}};
  ParsedOutput out = parse_output("<think>still", config);
  EXPECT_EQ(out.reasoning, "still");
  EXPECT_FALSE(out.content.has_value());
  EXPECT_FALSE(out.tools_called);
}

TEST(OutputParser, NoParsersIsIdentity) {
  ParsedOutput out = parse_output("<think>a</think><|tool_calls_section_begin|>", OutputParserConfig{});
  EXPECT_FALSE(out.reasoning.has_value());
  EXPECT_EQ(out.content, "<think>a</think><|tool_calls_section_begin|>");
  EXPECT_FALSE(out.tools_called);
}

}  // namespace
}  // namespace k2::parsers

namespace k2::parsers {
namespace {

// Every stage keeps scan cursors, so byte-at-a-time streaming stays linear; a rescan of
// the accumulated text per delta would take minutes here.
TEST(OutputParser, LongOutputStreamsByteByByteInLinearTime) {
  std::string filler;
  while (filler.size() < 150'000) filler += "step <b> and </thin then <|tool_calls ";
  std::string text = "<think>" + filler + "<|tool_calls_section_begin|>" + filler + "</think>" + filler +
                     "<|tool_calls_section_begin|><|tool_call_begin|>functions.f:0<|tool_call_argument_begin|>" +
                     filler + "<|tool_call_end|>";
  OutputParserConfig config{.parse_reasoning = true, .thinking = true, .parse_tools = true, .forced = {}};
  std::vector<std::string> pieces;
  for (char c : text) pieces.emplace_back(1, c);
  ParsedOutput whole = parse_output(text, config);
  ASSERT_EQ(whole.tool_calls.size(), 1u);
  testing::expect_same(testing::run_stream(pieces, config), whole, "long output");
}

}  // namespace
}  // namespace k2::parsers
