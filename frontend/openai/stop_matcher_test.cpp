#include "frontend/openai/stop_matcher.h"

#include <gtest/gtest.h>

#include <random>

namespace k2::openai {
namespace {

// Feeds `text` in the given pieces and returns (released text, matched stop).
std::pair<std::string, std::string> run(StopStringMatcher& m, const std::vector<std::string>& pieces, bool finish) {
  std::string out, matched;
  for (const auto& p : pieces) {
    auto step = m.feed(p);
    out += step.text;
    if (step.matched) {
      matched = *step.matched;
      break;
    }
  }
  if (finish) out += m.finish();
  return {out, matched};
}

TEST(StopMatcher, NeverReleasesAPartialStopString) {
  StopStringMatcher m({"STOP"}, false);
  auto s1 = m.feed("Hello ST");
  EXPECT_EQ(s1.text, "Hello ");  // "ST" could start "STOP"
  EXPECT_EQ(m.held_bytes(), 2u);
  auto s2 = m.feed("O");
  EXPECT_EQ(s2.text, "");
  auto s3 = m.feed("P and more");
  EXPECT_EQ(s3.text, "");
  ASSERT_TRUE(s3.matched);
  EXPECT_EQ(*s3.matched, "STOP");
  EXPECT_EQ(m.feed("later").text, "");  // ended
}

TEST(StopMatcher, ReleasesHeldTextWhenItCannotMatch) {
  StopStringMatcher m({"STOP"}, false);
  EXPECT_EQ(m.feed("a ST").text, "a ");
  EXPECT_EQ(m.feed("ART").text, "START");
  EXPECT_EQ(m.feed("S").text, "");
  EXPECT_EQ(m.finish(), "S");
}

TEST(StopMatcher, IncludeStopStringInOutput) {
  StopStringMatcher m({"END"}, true);
  auto [out, matched] = run(m, {"abc E", "N", "Dxyz"}, false);
  EXPECT_EQ(out, "abc END");
  EXPECT_EQ(matched, "END");
}

TEST(StopMatcher, EarliestOfSeveralStopsWins) {
  StopStringMatcher m({"world", "lo w"}, false);
  auto [out, matched] = run(m, {"hello world"}, false);
  EXPECT_EQ(out, "hel");
  EXPECT_EQ(matched, "lo w");
}

TEST(StopMatcher, OverlappingPrefixesUseKmp) {
  StopStringMatcher m({"aab"}, false);
  auto [out, matched] = run(m, {"aaa", "aab"}, false);
  EXPECT_EQ(out, "aaa");
  EXPECT_EQ(matched, "aab");
}

TEST(StopMatcher, RandomSplitsGiveTheSameAnswer) {
  const std::string text = "The quick brown fox. STOP! jumps over STOP the lazy dog";
  std::mt19937 rng(7);
  for (int trial = 0; trial < 200; ++trial) {
    StopStringMatcher m({"STOP!", "lazy"}, false);
    std::vector<std::string> pieces;
    for (size_t i = 0; i < text.size();) {
      size_t n = 1 + rng() % 5;
      pieces.push_back(text.substr(i, n));
      i += n;
    }
    std::string streamed;
    std::string matched;
    for (const auto& p : pieces) {
      auto s = m.feed(p);
      // Nothing released may end with a proper prefix of a stop string that later completes.
      streamed += s.text;
      EXPECT_EQ(streamed.find("STOP!"), std::string::npos);
      if (s.matched) {
        matched = *s.matched;
        break;
      }
    }
    EXPECT_EQ(streamed, "The quick brown fox. ");
    EXPECT_EQ(matched, "STOP!");
  }
}

TEST(StopMatcher, NoStopsPassesThrough) {
  StopStringMatcher m({}, false);
  EXPECT_EQ(m.feed("abc").text, "abc");
  EXPECT_EQ(m.finish(), "");
}

}  // namespace
}  // namespace k2::openai
