#include "frontend/tokenizer/encode_cuts.h"

#include <random>

#include <gtest/gtest.h>

#include "frontend/tokenizer/utf8.h"

namespace k2::tok {
namespace {

// A transcription of Kimi's encode() cutting (range(0, len, 400_000) chunks, then
// _split_whitespaces_or_nonwhitespaces) over a sequence of characters, returning the cut
// positions as character indices. `space[i]` is str.isspace() of character i.
std::vector<size_t> reference_cuts(const std::vector<bool>& space, size_t max_chunk, size_t max_run) {
  std::vector<size_t> starts;
  for (size_t chunk = 0; chunk < space.size(); chunk += max_chunk) {
    const size_t n = std::min(max_chunk, space.size() - chunk);
    size_t current_len = 0;
    bool current_space = space[chunk];
    size_t slice_start = 0;
    starts.push_back(chunk);
    for (size_t i = 0; i < n; ++i) {
      const bool now = space[chunk + i];
      if (current_space != now) {
        current_len = 1;
        current_space = now;
      } else if (++current_len > max_run) {
        slice_start = i;
        starts.push_back(chunk + slice_start);
        current_len = 1;
      }
    }
  }
  return starts;
}

struct Sample {
  std::string bytes;
  std::vector<bool> space;          // per character
  std::vector<size_t> char_offset;  // byte offset of each character
};

Sample random_sample(std::mt19937& rng, size_t chars) {
  // Characters of 1-4 bytes, Python-only spaces (\x1c, U+3000, U+0085), a lone invalid
  // byte (one non-space character in the library's rules).
  const std::pair<std::string, bool> alphabet[] = {
      {"a", false}, {" ", true}, {"\n", true}, {"\xc3\xa9", false}, {"\xe4\xb8\xad", false},
      {"\xf0\x9f\x98\x80", false}, {"\x1c", true}, {"\xe3\x80\x80", true}, {"\xc2\x85", true},
      {"\xff", false}, {"\xe2\x80\x8b", false} /* U+200B: not a space */};
  std::uniform_int_distribution<size_t> pick(0, std::size(alphabet) - 1);
  std::uniform_int_distribution<int> run(1, 9);
  Sample s;
  while (s.space.size() < chars) {
    const auto& [c, sp] = alphabet[pick(rng)];
    for (int k = run(rng); k > 0 && s.space.size() < chars; --k) {
      s.char_offset.push_back(s.bytes.size());
      s.bytes += c;
      s.space.push_back(sp);
    }
  }
  return s;
}

TEST(EncodeCuts, MatchesKimiReferenceOnRandomText) {
  std::mt19937 rng(1234);
  for (int iter = 0; iter < 2000; ++iter) {
    const Sample s = random_sample(rng, 1 + rng() % 80);
    const size_t max_chunk = 1 + rng() % 30;
    const size_t max_run = 1 + rng() % 6;
    const auto cuts = encode_cuts(s.bytes, max_chunk, max_run);
    const auto want = reference_cuts(s.space, max_chunk, max_run);
    ASSERT_EQ(cuts.size(), want.size()) << "iteration " << iter;
    std::string joined;
    for (size_t k = 0; k < cuts.size(); ++k) {
      EXPECT_EQ(static_cast<size_t>(cuts[k].data() - s.bytes.data()), s.char_offset[want[k]]);
      EXPECT_FALSE(cuts[k].empty());
      joined += cuts[k];
    }
    EXPECT_EQ(joined, s.bytes);
  }
}

TEST(EncodeCuts, DefaultLimitsOnLongRuns) {
  // 60,000 letters, 30,000 spaces, 10 letters: cuts after 25,000 and 50,000 letters and
  // after 25,000 spaces.
  const std::string text = std::string(60000, 'x') + std::string(30000, ' ') + "0123456789";
  const auto cuts = encode_cuts(text);
  ASSERT_EQ(cuts.size(), 4u);
  EXPECT_EQ(cuts[0].size(), 25000u);
  EXPECT_EQ(cuts[1].size(), 25000u);
  EXPECT_EQ(cuts[2].size(), 10000u + 25000u);
  EXPECT_EQ(cuts[3].size(), 5000u + 10u);
}

TEST(EncodeCuts, FourHundredThousandCharacterChunks) {
  // "é " has two characters in three bytes: the chunk cut counts characters, not bytes.
  std::string text;
  for (int i = 0; i < 250000; ++i) text += "\xc3\xa9 ";
  const auto cuts = encode_cuts(text);
  ASSERT_EQ(cuts.size(), 2u);
  EXPECT_EQ(cuts[0].size(), 200000u * 3);
  EXPECT_EQ(cuts[1].size(), 50000u * 3);
  EXPECT_TRUE(encode_cuts("").empty());
}

}  // namespace
}  // namespace k2::tok
