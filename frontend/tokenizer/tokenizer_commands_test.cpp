#include "frontend/tokenizer/tokenizer_commands.h"

#include <sstream>

#include "frontend/tokenizer/tokenizer_test_util.h"

namespace k2 {
namespace {

using nlohmann::json;

std::vector<json> lines_of(const std::string& out) {
  std::vector<json> rows;
  std::istringstream in(out);
  std::string line;
  while (std::getline(in, line)) rows.push_back(json::parse(line));
  return rows;
}

TEST(TokenizerCommands, TokenizeEveryGoldenLineAndCarryOnAfterErrors) {
  const std::string dir = tok_test::data_path("text/tok-1024");
  const auto rows = tok_test::read_jsonl(dir + "/golden.jsonl");
  std::string input;
  for (const json& row : rows) input += json{{"text", row["text"]}}.dump() + "\n";
  input += "not json\n";
  input += "[1, 2]\n";
  input += "{\"txt\": \"x\"}\n";
  input += "\n";
  input += "{\"text\": \"a<|im_end|>\", \"allow_special_tokens\": false}\n";
  input += "{\"text\": \"a<|im_end|>\"}\n";
  std::istringstream in(input);
  std::ostringstream out;
  EXPECT_EQ(tokenize_command(dir, in, out), 1);
  const auto got = lines_of(out.str());
  ASSERT_EQ(got.size(), rows.size() + 6);
  for (size_t i = 0; i < rows.size(); ++i) EXPECT_EQ(got[i], (json{{"ids", rows[i]["ids"]}})) << i;
  for (size_t i = rows.size(); i < rows.size() + 4; ++i) {
    ASSERT_TRUE(got[i].contains("error")) << got[i];
    EXPECT_TRUE(got[i]["error"].is_string());
  }
  EXPECT_GT(got[rows.size() + 4]["ids"].size(), 2u);
  EXPECT_EQ(got[rows.size() + 5]["ids"].size(), 2u);
}

TEST(TokenizerCommands, DetokenizeWithAndWithoutSkipping) {
  const std::string dir = tok_test::data_path("text/tok-1024");
  const auto rows = tok_test::read_jsonl(dir + "/golden.jsonl");
  std::string input;
  for (const json& row : rows) input += json{{"ids", row["ids"]}}.dump() + "\n";
  input += "{\"ids\": [1, 1024]}\n";
  input += "{\"ids\": [1.5]}\n";
  input += "{\"ids\": \"x\"}\n";
  input += "{\"ids\": [770, 64, 769]}\n";
  for (bool skip : {false, true}) {
    std::istringstream in(input);
    std::ostringstream out;
    EXPECT_EQ(detokenize_command(dir, skip, in, out), 1);
    const auto got = lines_of(out.str());
    ASSERT_EQ(got.size(), rows.size() + 4);
    for (size_t i = 0; i < rows.size(); ++i) {
      if (!skip) {
        EXPECT_EQ(got[i], (json{{"text", rows[i]["text"]}})) << i;
      }
      ASSERT_TRUE(got[i].contains("text"));
    }
    EXPECT_NE(got[rows.size()]["error"].get<std::string>().find("1024"), std::string::npos);
    EXPECT_TRUE(got[rows.size() + 1].contains("error"));
    EXPECT_TRUE(got[rows.size() + 2].contains("error"));
    EXPECT_EQ(got[rows.size() + 3]["text"], skip ? "a" : "<|im_end|>a[EOS]");
  }
}

TEST(TokenizerCommands, InvalidUtf8BytesComeBackAsReplacementCharacters) {
  // Byte ids 0xE2 0x82 (incomplete €) then "A": JSON output must still be valid.
  const std::string dir = tok_test::data_path("text/tok-512");
  auto t = tok_test::load_or_die(dir);
  ASSERT_TRUE(t);
  const int32_t e2 = *t->token_id("\xe2"), x82 = *t->token_id("\x82"), a = *t->token_id("A");
  std::istringstream in(json{{"ids", {e2, x82, a}}}.dump() + "\n");
  std::ostringstream out;
  EXPECT_EQ(detokenize_command(dir, false, in, out), 0);
  EXPECT_EQ(lines_of(out.str()).at(0)["text"], "\xEF\xBF\xBD" "A");
}

TEST(TokenizerCommands, LoadFailureIsOneErrorLine) {
  std::istringstream in("{\"text\": \"x\"}\n");
  std::ostringstream out;
  EXPECT_EQ(tokenize_command("/nonexistent", in, out), 2);
  const auto got = lines_of(out.str());
  ASSERT_EQ(got.size(), 1u);
  EXPECT_NE(got[0]["error"].get<std::string>().find("tiktoken.model"), std::string::npos);
}

}  // namespace
}  // namespace k2
