#include "frontend/parsers/parse_output_command.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace k2::parsers {
namespace {

using nlohmann::json;

const std::string kTokenizer = K2_TEST_DATA_DIR "/text/tok-1024";

TEST(ParseOutputCommand, EveryGoldenThroughTheCommand) {
  std::ifstream goldens(K2_TEST_DATA_DIR "/text/goldens/tool_parser_cases.jsonl");
  std::stringstream in;
  in << goldens.rdbuf();
  std::stringstream out;
  ASSERT_EQ(parse_output_command(kTokenizer, in, out), 0);

  in.clear();
  in.seekg(0);
  std::string record_line, answer_line;
  int count = 0;
  while (std::getline(in, record_line)) {
    ASSERT_TRUE(std::getline(out, answer_line)) << "missing answer for line " << count;
    json record = json::parse(record_line);
    EXPECT_EQ(json::parse(answer_line), record["expected"]) << record["id"];
    ++count;
  }
  EXPECT_FALSE(std::getline(out, answer_line));
  EXPECT_GT(count, 0);
}

TEST(ParseOutputCommand, BadLinesGetAnErrorAndTheRestIsAnswered) {
  std::stringstream in;
  in << "not json\n"
     << "[1]\n"
     << "{\"model_output\": 3}\n"
     << "{\"model_output\": \"x\", \"request\": {\"tool_parser\": \"hermes\", \"tools\": true}}\n"
     << "\n"
     << "{\"model_output\": \"<think>r</think>c\", \"request\": {\"reasoning_parser\": \"kimi_k2\"}}\n";
  std::stringstream out;
  ASSERT_EQ(parse_output_command("", in, out), 0);
  std::vector<json> lines;
  for (std::string line; std::getline(out, line);) lines.push_back(json::parse(line));
  ASSERT_EQ(lines.size(), 6u);
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(lines[i].contains("error")) << lines[i];
  EXPECT_NE(lines[3]["error"].get<std::string>().find("hermes"), std::string::npos);
  EXPECT_EQ(lines[5]["reasoning"], "r");
  EXPECT_EQ(lines[5]["content"], "c");
}

TEST(ParseOutputCommand, TokenizerWithoutMarkersRefusesTheParser) {
  std::string dir = ::testing::TempDir() + "/k2_parsers_tok";
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/tokenizer_config.json")
      << R"({"added_tokens_decoder": {"5": {"content": "<think>"}}})";
  std::stringstream in;
  in << R"({"model_output": "a", "request": {"tools": true, "tool_parser": "kimi_k2"}})"
     << "\n"
     << R"({"model_output": "a", "request": {"reasoning_parser": "kimi_k2"}})"
     << "\n"
     << R"({"model_output": "a", "request": {}})"
     << "\n";
  std::stringstream out;
  ASSERT_EQ(parse_output_command(dir, in, out), 0);
  std::vector<json> lines;
  for (std::string line; std::getline(out, line);) lines.push_back(json::parse(line));
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_TRUE(lines[0].contains("error"));
  EXPECT_TRUE(lines[1].contains("error"));  // </think> missing
  EXPECT_EQ(lines[2]["content"], "a");

  std::stringstream none;
  EXPECT_EQ(parse_output_command(dir + "/missing", none, out), 1);
}

TEST(ParseOutputCommand, InvalidUtf8InputIsAnErrorLine) {
  std::stringstream in;
  in << "{\"model_output\": \"a\xff b\"}\n"
     << R"({"model_output": "a\ud800b"})"
     << "\n";
  std::stringstream out;
  ASSERT_EQ(parse_output_command("", in, out), 0);
  int lines = 0;
  for (std::string line; std::getline(out, line); ++lines) {
    ASSERT_TRUE(json::accept(line)) << line;
    EXPECT_TRUE(json::parse(line).contains("error")) << line;
  }
  EXPECT_EQ(lines, 2);
}

}  // namespace
}  // namespace k2::parsers
