// The streaming path as the server runs it: token ids -> incremental detokenizer (special
// tokens kept) -> OutputStream, for the ids of every golden record cut into deltas of 1,
// 2, 3 and random numbers of ids. The totals must equal the record's `expected`.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "frontend/parsers/output_parser.h"
#include "frontend/parsers/stream_test_util.h"
#include "frontend/tokenizer/incremental_detokenizer.h"
#include "frontend/tokenizer/tokenizer.h"

namespace k2::parsers {
namespace {

using nlohmann::json;

struct IdCase {
  std::string id;
  std::string model_output;
  std::vector<int32_t> ids;
  OutputParserConfig config;
  ParsedOutput expected;
};

std::vector<IdCase> load_cases() {
  std::ifstream file(K2_TEST_DATA_DIR "/text/goldens/tool_parser_cases.jsonl");
  EXPECT_TRUE(file.good());
  std::vector<IdCase> cases;
  for (std::string line; std::getline(file, line);) {
    if (line.empty()) continue;
    json r = json::parse(line);
    IdCase c{r["id"], r["model_output"], r["ids"].get<std::vector<int32_t>>(), {}, {}};
    Result<OutputParserConfig> config = output_config_from_request(r["request"]);
    EXPECT_TRUE(config.ok()) << c.id;
    if (config.ok()) c.config = *config;
    const json& e = r["expected"];
    if (!e["reasoning"].is_null()) c.expected.reasoning = e["reasoning"].get<std::string>();
    if (!e["content"].is_null()) c.expected.content = e["content"].get<std::string>();
    c.expected.tools_called = e["tools_called"];
    for (const json& call : e["tool_calls"])
      c.expected.tool_calls.push_back({call["id"], call["name"], call["arguments"]});
    cases.push_back(std::move(c));
  }
  return cases;
}

std::shared_ptr<const Tokenizer> tok1024() {
  static Result<std::shared_ptr<const Tokenizer>> tokenizer =
      Tokenizer::load(K2_TEST_DATA_DIR "/text/tok-1024");
  EXPECT_TRUE(tokenizer.ok()) << tokenizer.status().to_string();
  return tokenizer.ok() ? *tokenizer : nullptr;
}

// Feeds ids in pieces of the given sizes (cycled) through detokenizer and parsers.
testing::StreamTotals run_ids(const IdCase& c, const std::vector<size_t>& sizes) {
  IncrementalDetokenizer detok(tok1024(), /*skip_special_tokens=*/false);
  OutputStream stream(c.config);
  testing::StreamTotals totals;
  std::string text;
  size_t step = 0;
  for (size_t pos = 0; pos < c.ids.size(); ++step) {
    size_t n = std::min(sizes[step % sizes.size()], c.ids.size() - pos);
    Result<std::string> delta = detok.add(std::span<const int32_t>(c.ids).subspan(pos, n));
    EXPECT_TRUE(delta.ok()) << c.id;
    if (!delta.ok()) return totals;
    text += *delta;
    testing::accumulate(stream.feed(*delta), totals);
    pos += n;
  }
  std::string tail = detok.finish();
  text += tail;
  testing::accumulate(stream.feed(tail), totals);
  testing::accumulate(stream.finish(), totals);
  totals.tools_called = stream.tools_called();
  EXPECT_EQ(text, c.model_output) << c.id << ": the ids do not decode to model_output";
  return totals;
}

TEST(OutputParserIds, FixedDeltaSizes) {
  ASSERT_NE(tok1024(), nullptr);
  std::vector<IdCase> cases = load_cases();
  ASSERT_FALSE(cases.empty());
  for (const IdCase& c : cases) {
    for (size_t size : {1, 2, 3}) {
      testing::expect_same(run_ids(c, {size}), c.expected, c.id + " in deltas of " + std::to_string(size));
    }
  }
}

TEST(OutputParserIds, RandomDeltaSizes) {
  ASSERT_NE(tok1024(), nullptr);
  std::mt19937 rng(1024);
  std::uniform_int_distribution<size_t> size(1, 8);
  for (const IdCase& c : load_cases()) {
    for (int round = 0; round < 25; ++round) {
      std::vector<size_t> sizes(c.ids.size() + 1);
      for (size_t& s : sizes) s = size(rng);
      testing::expect_same(run_ids(c, sizes), c.expected, c.id + " random round " + std::to_string(round));
    }
  }
}

}  // namespace
}  // namespace k2::parsers
