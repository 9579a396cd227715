// GrammarMatcher: masks agree with accept_token, walks under the mask give valid documents,
// end tokens only at completion, multi-byte characters split across tokens.
#include <gtest/gtest.h>

#include <iostream>
#include <limits>
#include <random>
#include <regex>

#include "enginecore/structured/test_util.h"
#include "enginecore/structured/tool_schemas.h"

namespace k2::structured {
namespace {

using testing::Json;

// The grammar allows any JSON number, e.g. 5E1427, which nlohmann cannot hold in a double
// (Python reads it as inf): such exponents are clamped before parsing.
Json parse_allowing_huge_numbers(const std::string& text) {
  Json doc = Json::parse(text, nullptr, false);
  if (!doc.is_discarded()) return doc;
  return Json::parse(std::regex_replace(text, std::regex("([0-9])[eE][+-]?[0-9]{3,}"), "$1e0"), nullptr, false);
}

bool bit(const std::vector<uint32_t>& mask, size_t id) { return (mask[id / 32] >> (id % 32)) & 1u; }

std::vector<Json> test_schemas() {
  Json tools = Json::parse(R"([
    {"type":"function","function":{"name":"get_weather","parameters":{"type":"object",
      "properties":{"location":{"type":"string","maxLength":12},"unit":{"enum":["celsius","fahrenheit"]}},
      "required":["location"]}}},
    {"type":"function","function":{"name":"add","parameters":{"type":"object",
      "properties":{"a":{"type":"number"},"b":{"type":"integer"},"tags":{"type":"array","items":{"type":"string"},
      "maxItems":2}},"required":["a","b"]}}},
    {"type":"function","function":{"name":"noop"}}])");
  return {
      required_tool_calls_schema(tools).value(),
      Json::parse(R"({"type":"object","properties":{"s":{"type":"string","minLength":1,"maxLength":4},
                      "n":{"type":["integer","null"]},"b":{"type":"boolean"},"free":{}},"required":["s","b"]})"),
      Json::parse(R"({"$defs":{"node":{"type":"object","properties":{"v":{"type":"integer"},
                      "kids":{"type":"array","items":{"$ref":"#/$defs/node"},"maxItems":2}},"required":["v"]}},
                      "$ref":"#/$defs/node"})"),
      Json::parse(R"({"type":"array","prefixItems":[{"const":"x"},{"enum":[1,2,"three"]}],"minItems":1})"),
      Json::parse(R"({"type":"object","additionalProperties":{"type":"number"}})"),
  };
}

class MatcherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    vocab_ = testing::test_vocab(&end_);
    ASSERT_NE(vocab_, nullptr);
    ASSERT_GT(vocab_->size(), 1000u);
  }

  std::vector<uint32_t> mask_of(const GrammarMatcher& m) const {
    std::vector<uint32_t> mask(vocab_->mask_words());
    m.fill_next_token_bitmask(mask);
    return mask;
  }

  // Every token's mask bit equals whether a copy of the matcher accepts it.
  void expect_mask_consistent(const GrammarMatcher& m) const {
    std::vector<uint32_t> mask = mask_of(m);
    for (size_t id = 0; id < vocab_->size(); ++id) {
      GrammarMatcher copy = m;
      ASSERT_EQ(bit(mask, id), copy.accept_token(static_cast<int32_t>(id)))
          << "token " << id << " '" << vocab_->bytes(static_cast<int32_t>(id)) << "'";
    }
    EXPECT_EQ(bit(mask, static_cast<size_t>(end_)), m.can_terminate());
  }

  // Picks the allowed token that closes most (a quote, brackets, no comma; then the lowest id),
  // so a walk heads for the end of the document.
  int32_t closing_choice(const std::vector<uint32_t>& mask) const {
    int32_t best = -1;
    int best_score = std::numeric_limits<int>::min();
    for (size_t id = 0; id < vocab_->size(); ++id) {
      if (!bit(mask, id)) continue;
      if (static_cast<int32_t>(id) == end_) return end_;
      const std::string& b = vocab_->bytes(static_cast<int32_t>(id));
      int score = b.find('"') != std::string::npos ? 4 : 0;
      for (char c : b) score += c == '}' || c == ']' ? 2 : c == ',' ? -5 : 0;
      if (score > best_score) {
        best = static_cast<int32_t>(id);
        best_score = score;
      }
    }
    return best;
  }

  // Random tokens for `random_steps` steps, then closing choices; returns the text, or
  // nullopt when the walk got stuck (a mask without any token before termination).
  std::optional<std::string> walk(GrammarMatcher& m, std::mt19937& rng, int random_steps, bool check_masks) {
    std::string text;
    for (int step = 0; step < 2000 && !m.is_terminated(); ++step) {
      if (check_masks && step % 3 == 0 && step < 90) expect_mask_consistent(m);
      std::vector<uint32_t> mask = mask_of(m);
      std::vector<int32_t> allowed;
      for (size_t id = 0; id < vocab_->size(); ++id) {
        if (bit(mask, id)) allowed.push_back(static_cast<int32_t>(id));
      }
      if (allowed.empty()) return std::nullopt;
      EXPECT_EQ(bit(mask, static_cast<size_t>(end_)), m.can_terminate());
      // Closing choices alone can loop (a number's digits); one random pick in four breaks that.
      bool random = step < random_steps || rng() % 4 == 0;
      int32_t pick = random ? allowed[rng() % allowed.size()] : closing_choice(mask);
      EXPECT_TRUE(m.accept_token(pick)) << "masked-in token " << pick << " refused";
      if (pick != end_) text += vocab_->bytes(pick);
    }
    if (!m.is_terminated()) {
      std::cerr << "unfinished walk: " << text.substr(0, 300) << "\n";
      return std::nullopt;
    }
    return text;
  }

  std::shared_ptr<const TokenVocabulary> vocab_;
  int32_t end_ = -1;
};

TEST_F(MatcherTest, MasksMatchAcceptTokenAlongWalks) {
  std::mt19937 rng(1234);
  for (const Json& schema : test_schemas()) {
    auto g = CompiledGrammar::from_json_schema(schema);
    ASSERT_TRUE(g.ok()) << g.status().to_string();
    GrammarMatcher m(*g, vocab_);
    auto text = walk(m, rng, 12, /*check_masks=*/true);
    ASSERT_TRUE(text.has_value()) << schema.dump();
  }
}

TEST_F(MatcherTest, MasksMatchAtRuleBoundaries) {
  auto any = CompiledGrammar::any_json_object();
  ASSERT_TRUE(any.ok());
  for (const char* prefix : {R"({"a": 1)", R"({"a": [1, 2)", R"({"a": tr)", R"({"a": "x)", R"({"a": {"b": 1.5e)",
                             R"({"a": [[]], "b": {"c": [{)", R"({"a")"}) {
    GrammarMatcher m(*any, vocab_);
    ASSERT_TRUE(m.accept_bytes(prefix)) << prefix;
    expect_mask_consistent(m);
  }
  Json tree = test_schemas()[2];
  auto g = CompiledGrammar::from_json_schema(tree);
  ASSERT_TRUE(g.ok());
  for (const char* prefix : {R"({"v": 1, "kids": [{"v": 2)", R"({"v": 1, "kids": [{"v": 2})", R"({"v": 1)"}) {
    GrammarMatcher m(*g, vocab_);
    ASSERT_TRUE(m.accept_bytes(prefix)) << prefix;
    expect_mask_consistent(m);
  }
}

TEST_F(MatcherTest, GreedyWalksGiveValidDocuments) {
  std::mt19937 rng(7);
  for (const Json& schema : test_schemas()) {
    auto g = CompiledGrammar::from_json_schema(schema);
    ASSERT_TRUE(g.ok());
    GrammarMatcher m(*g, vocab_);
    auto text = walk(m, rng, 0, false);
    ASSERT_TRUE(text.has_value()) << schema.dump();
    Json doc = Json::parse(*text, nullptr, false);
    ASSERT_FALSE(doc.is_discarded()) << *text;
    std::string why;
    EXPECT_TRUE(testing::validate(doc, schema, schema, &why)) << *text << ": " << why;
  }
}

TEST_F(MatcherTest, RandomWalksEndInValidDocuments) {
  std::mt19937 rng(42);
  int completed = 0;
  int runs = 0;
  for (const Json& schema : test_schemas()) {
    auto g = CompiledGrammar::from_json_schema(schema);
    ASSERT_TRUE(g.ok());
    for (int run = 0; run < 25; ++run, ++runs) {
      GrammarMatcher m(*g, vocab_);
      auto text = walk(m, rng, 5 + run * 3, false);
      if (!text) continue;  // hit the step limit: allowed, counted below
      ++completed;
      Json doc = parse_allowing_huge_numbers(*text);
      ASSERT_FALSE(doc.is_discarded()) << *text;
      std::string why;
      EXPECT_TRUE(testing::validate(doc, schema, schema, &why)) << *text << ": " << why;
    }
  }
  EXPECT_GE(completed, runs * 9 / 10);
}

TEST_F(MatcherTest, EndTokenOnlyWhenComplete) {
  auto g = CompiledGrammar::from_json_schema(Json::parse(R"({"type":"object","properties":{"a":{"type":"integer"}}})"));
  ASSERT_TRUE(g.ok());
  GrammarMatcher m(*g, vocab_);
  EXPECT_FALSE(m.can_terminate());
  EXPECT_FALSE(bit(mask_of(m), static_cast<size_t>(end_)));
  EXPECT_FALSE(GrammarMatcher(m).accept_token(end_));
  ASSERT_TRUE(m.accept_bytes(R"({"a": 12)"));
  EXPECT_FALSE(m.can_terminate());
  ASSERT_TRUE(m.accept_bytes("}"));
  EXPECT_TRUE(m.can_terminate());
  // After the closing brace only the end token is allowed: no trailing whitespace.
  std::vector<uint32_t> mask = mask_of(m);
  for (size_t id = 0; id < vocab_->size(); ++id) EXPECT_EQ(bit(mask, id), id == static_cast<size_t>(end_)) << id;
  EXPECT_FALSE(GrammarMatcher(m).accept_bytes(" "));
  EXPECT_TRUE(m.accept_token(end_));
  EXPECT_TRUE(m.is_terminated());
  EXPECT_FALSE(m.accept_token(end_));
  mask = mask_of(m);
  for (uint32_t w : mask) EXPECT_EQ(w, 0u);
}

TEST_F(MatcherTest, NumberRootMayContinueOrEnd) {
  auto g = CompiledGrammar::from_json_schema(Json::parse(R"({"type":"integer"})"));
  ASSERT_TRUE(g.ok());
  GrammarMatcher m(*g, vocab_);
  ASSERT_TRUE(m.accept_bytes("12"));
  EXPECT_TRUE(m.can_terminate());
  std::vector<uint32_t> mask = mask_of(m);
  EXPECT_TRUE(bit(mask, static_cast<size_t>(end_)));
  expect_mask_consistent(m);
}

TEST_F(MatcherTest, SpecialAndOutOfRangeTokensNeverAllowed) {
  auto g = CompiledGrammar::any_json_object();
  ASSERT_TRUE(g.ok());
  GrammarMatcher m(*g, vocab_);
  ASSERT_TRUE(m.accept_bytes("{\"k\": \""));
  int32_t special = end_ - 1;  // the empty-bytes token of test_vocab()
  EXPECT_TRUE(vocab_->bytes(special).empty());
  EXPECT_FALSE(bit(mask_of(m), static_cast<size_t>(special)));
  EXPECT_FALSE(m.accept_token(special));
  EXPECT_FALSE(m.accept_token(-1));
  EXPECT_FALSE(m.accept_token(static_cast<int32_t>(vocab_->size())));
}

TEST_F(MatcherTest, Utf8CharactersSplitAcrossTokens) {
  // 你 = E4 BD A0; tokens cut it in every way.
  std::vector<std::string> tokens = {"\"", "\xE4", "\xBD\xA0", "\xE4\xBD", "\xA0", "a", "\xFF", "\xA0\"", ""};
  auto vocab = TokenVocabulary::create(tokens, {8});
  ASSERT_TRUE(vocab.ok());
  auto g = CompiledGrammar::from_json_schema(Json::parse(R"({"type":"string","maxLength":2})"));
  ASSERT_TRUE(g.ok());
  GrammarMatcher m(*g, *vocab);
  std::vector<uint32_t> mask(1);
  ASSERT_TRUE(m.accept_token(0));
  ASSERT_TRUE(m.accept_token(1));  // E4: first byte of a 3-byte character
  m.fill_next_token_bitmask(mask);
  EXPECT_EQ(mask[0], (1u << 2) | (1u << 4)) << std::hex << mask[0];  // continuation bytes only
  ASSERT_TRUE(m.accept_token(2));
  ASSERT_TRUE(m.accept_token(3));  // E4 BD
  m.fill_next_token_bitmask(mask);
  EXPECT_EQ(mask[0], (1u << 4) | (1u << 7));  // A0, or A0 + closing quote
  ASSERT_TRUE(m.accept_token(7));
  EXPECT_TRUE(m.can_terminate());
  EXPECT_TRUE(m.accept_token(8));
}

TEST_F(MatcherTest, NestingLimitStopsDeepDocuments) {
  GrammarLimits limits;
  limits.max_nesting_depth = 8;
  auto g = CompiledGrammar::from_json_schema(Json::parse("{}"), limits);
  ASSERT_TRUE(g.ok());
  GrammarMatcher m(*g, vocab_);
  int opened = 0;
  while (opened < 100 && m.accept_bytes("[")) ++opened;
  EXPECT_GT(opened, 3);
  EXPECT_LE(opened, limits.max_nesting_depth);
  // The innermost array may only be empty; the refused byte left the state alone, so the
  // document can still be finished.
  EXPECT_FALSE(m.accept_bytes("1"));
  for (int i = 0; i < opened; ++i) ASSERT_TRUE(m.accept_bytes("]"));
  EXPECT_TRUE(m.can_terminate());
}

TEST_F(MatcherTest, MaskCacheServesRepeatedStates) {
  auto g = CompiledGrammar::from_json_schema(Json::parse(R"({"type":"object","properties":{"t":{"type":"string"}}})"));
  ASSERT_TRUE(g.ok());
  GrammarMatcher m(*g, vocab_);
  ASSERT_TRUE(m.accept_bytes(R"({"t": "a)"));
  std::vector<uint32_t> first = mask_of(m);
  ASSERT_TRUE(m.accept_bytes("b"));
  std::vector<uint32_t> second = mask_of(m);
  EXPECT_EQ(first, second);
  EXPECT_GE(m.mask_cache_hits(), 1u);
  expect_mask_consistent(m);
}

TEST_F(MatcherTest, RequiredToolCallsRoundTrip) {
  Json tools = Json::parse(R"([{"type":"function","function":{"name":"f","parameters":{"type":"object",
      "properties":{"x":{"type":"integer"}},"required":["x"]}}},{"type":"function","function":{"name":"g"}}])");
  auto g = CompiledGrammar::from_json_schema(required_tool_calls_schema(tools).value());
  ASSERT_TRUE(g.ok());
  GrammarMatcher m(*g, vocab_);
  EXPECT_FALSE(GrammarMatcher(m).accept_bytes("[]"));                                  // minItems 1
  EXPECT_FALSE(GrammarMatcher(m).accept_bytes(R"([{"name": "h")"));                     // unknown tool
  EXPECT_FALSE(GrammarMatcher(m).accept_bytes(R"([{"name": "g", "parameters": {"x")"));  // g takes none
  std::string text = R"([{"name": "f", "parameters": {"x": 3}}, {"name": "g", "parameters": {}}])";
  ASSERT_TRUE(m.accept_bytes(text));
  EXPECT_TRUE(m.can_terminate());
  auto calls = parse_required_tool_calls(text);
  ASSERT_TRUE(calls.ok());
  ASSERT_EQ(calls->size(), 2u);
  EXPECT_EQ((*calls)[0].name, "f");
  EXPECT_EQ((*calls)[0].arguments, R"({"x": 3})");
  EXPECT_EQ((*calls)[1].arguments, "{}");
}

}  // namespace
}  // namespace k2::structured
