#include "frontend/tokenizer/incremental_detokenizer.h"

#include <random>

#include "frontend/tokenizer/tokenizer_test_util.h"
#include "frontend/tokenizer/utf8.h"

namespace k2 {
namespace {

using nlohmann::json;

bool well_formed(const std::string& s) { return tok::utf8_valid_prefix(s) == s.size(); }

// Streams `ids` cut at the given chunk boundaries and returns the concatenated deltas,
// checking that every delta is well-formed UTF-8.
std::string stream(const std::shared_ptr<const Tokenizer>& t, const std::vector<int32_t>& ids,
                   const std::vector<size_t>& cuts, bool skip) {
  IncrementalDetokenizer d(t, skip);
  std::string all;
  size_t prev = 0;
  auto feed = [&](size_t end) {
    auto delta = d.add(std::span<const int32_t>(ids.data() + prev, end - prev));
    EXPECT_TRUE(delta.ok());
    EXPECT_TRUE(well_formed(*delta));
    EXPECT_LE(d.pending_bytes(), 3u);
    all += *delta;
    prev = end;
  };
  for (size_t c : cuts) feed(c);
  feed(ids.size());
  const std::string tail = d.finish();
  EXPECT_TRUE(well_formed(tail));
  return all + tail;
}

TEST(IncrementalDetokenizer, EverySplitOfEveryGoldenLine) {
  std::mt19937 rng(99);
  size_t checked = 0;
  for (const auto& [dir, golden] : tok_test::tokenizer_dirs()) {
    auto t = tok_test::load_or_die(dir);
    ASSERT_TRUE(t);
    for (const json& row : tok_test::read_jsonl(golden)) {
      for (const char* key : {"ids", "ids_ordinary"}) {
        const auto ids = tok_test::ids_of(row[key]);
        for (bool skip : {false, true}) {
          const std::string want = *t->decode(ids, skip);
          // One id at a time.
          std::vector<size_t> every(ids.empty() ? 0 : ids.size() - 1);
          for (size_t i = 0; i < every.size(); ++i) every[i] = i + 1;
          EXPECT_EQ(stream(t, ids, every, skip), want);
          // Every single cut point (two chunks).
          for (size_t c = 0; c <= ids.size(); ++c) EXPECT_EQ(stream(t, ids, {c}, skip), want);
          // Random chunkings.
          for (int r = 0; r < 3; ++r) {
            std::vector<size_t> cuts;
            for (size_t at = 0; at < ids.size();) {
              at += 1 + rng() % 4;
              if (at < ids.size()) cuts.push_back(at);
            }
            EXPECT_EQ(stream(t, ids, cuts, skip), want);
          }
          ++checked;
        }
      }
    }
  }
  EXPECT_EQ(checked, 4u * 165 * 2 * 2);
}

TEST(IncrementalDetokenizer, HoldsPartialCharactersAndReplacesBadBytes) {
  auto t = tok_test::load_or_die(tok_test::data_path("text/tok-512"));
  ASSERT_TRUE(t);
  // tok-512 has single-byte tokens only; ids are the cl100k byte ranks.
  auto byte_id = [&](unsigned char b) { return *t->token_id(std::string(1, static_cast<char>(b))); };
  IncrementalDetokenizer d(t, false);
  EXPECT_EQ(*d.add(byte_id(0xE2)), "");
  EXPECT_EQ(d.pending_bytes(), 1u);
  EXPECT_EQ(*d.add(byte_id(0x82)), "");
  EXPECT_EQ(*d.add(byte_id(0xAC)), "\xe2\x82\xac");  // €
  EXPECT_EQ(d.pending_bytes(), 0u);
  EXPECT_EQ(*d.add(byte_id(0xFF)), "\xEF\xBF\xBD");   // can never start a character
  EXPECT_EQ(*d.add(byte_id(0xF0)), "");
  EXPECT_EQ(*d.add(byte_id('A')), "\xEF\xBF\xBD" "A");  // broken sequence: U+FFFD, then A
  EXPECT_EQ(*d.add(byte_id(0xC3)), "");
  EXPECT_EQ(d.finish(), "\xEF\xBF\xBD");  // the stream ended inside a character
  EXPECT_EQ(d.pending_bytes(), 0u);
  // A bad id is an error and changes nothing; a padded row's id adds nothing either.
  EXPECT_EQ(*d.add(byte_id(0xC3)), "");
  EXPECT_FALSE(d.add(-1).ok());
  EXPECT_EQ(d.pending_bytes(), 1u);
  EXPECT_EQ(*d.add(t->vocab_size()), "");
  EXPECT_EQ(d.pending_bytes(), 1u);
  EXPECT_EQ(*d.add(byte_id(0xA9)), "\xc3\xa9");
}

TEST(IncrementalDetokenizer, SkipsSpecialTokens) {
  auto t = tok_test::load_or_die(tok_test::data_path("text/tok-1024"));
  ASSERT_TRUE(t);
  const auto ids = t->encode("<|im_assistant|>assistant<|im_middle|><think>hm</think>ok<|im_end|>");
  IncrementalDetokenizer skip(t, true);
  IncrementalDetokenizer keep(t, false);
  std::string a, b;
  for (int32_t id : ids) {
    a += *skip.add(id);
    b += *keep.add(id);
  }
  EXPECT_EQ(a, "assistant<think>hm</think>ok");
  EXPECT_EQ(b, "<|im_assistant|>assistant<|im_middle|><think>hm</think>ok<|im_end|>");
}

// Padded model rows (ids at or above the tokenizer's size) add no text, as in vLLM, wherever
// they fall in a chunk; a negative id is still an error.
TEST(IncrementalDetokenizer, IdsBeyondTheTokenizerAreEmptyText) {
  auto t = tok_test::load_or_die(tok_test::data_path("text/tok-1024"));
  ASSERT_TRUE(t);
  const auto ids = t->encode("hello world");
  ASSERT_GE(ids.size(), 2u);
  const int32_t pad = t->vocab_size();
  std::vector<int32_t> padded{pad, ids[0], pad + 7, pad};
  padded.insert(padded.end(), ids.begin() + 1, ids.end());
  padded.push_back(pad + 1000);
  IncrementalDetokenizer d(t, false);
  auto all = d.add(padded);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(*all + d.finish(), "hello world");
  auto only_pad = d.add(pad);
  ASSERT_TRUE(only_pad.ok());
  EXPECT_EQ(*only_pad, "");
  EXPECT_FALSE(d.add(-1).ok());
}

}  // namespace
}  // namespace k2
