#include "frontend/tokenizer/bpe.h"

#include <climits>
#include <random>

#include "frontend/tokenizer/tokenizer_test_util.h"

namespace k2 {
namespace {

// tiktoken's merge rule, written the obvious way.
std::vector<int32_t> reference_bpe(const Tokenizer& t, std::string_view piece) {
  std::vector<std::string> parts;
  for (char c : piece) parts.emplace_back(1, c);
  for (;;) {
    int32_t best = INT32_MAX;
    size_t at = 0;
    for (size_t i = 0; i + 1 < parts.size(); ++i) {
      const auto id = t.token_id(parts[i] + parts[i + 1]);
      if (id && *id < t.num_base_tokens() && *id < best) {
        best = *id;
        at = i;
      }
    }
    if (best == INT32_MAX) break;
    parts[at] += parts[at + 1];
    parts.erase(parts.begin() + static_cast<std::ptrdiff_t>(at) + 1);
  }
  std::vector<int32_t> ids;
  for (const auto& p : parts) ids.push_back(*t.token_id(p));
  return ids;
}

tok::TokenTable table_of(const Tokenizer& t) {
  tok::TokenTable table;
  for (int32_t id = 0; id < t.num_base_tokens(); ++id) table.add_token(t.token_bytes(id));
  table.build_index(t.num_base_tokens());
  return table;
}

std::vector<int32_t> library_bpe(const tok::TokenTable& table, std::string_view piece) {
  std::vector<int32_t> out;
  tok::BpeScratch scratch;
  tok::byte_pair_encode(table, piece, out, scratch);
  return out;
}

TEST(Bpe, EveryBaseTokenMergesToItself) {
  // tok-1024's table is a cut of cl100k_base; the data README guarantees this property.
  auto t = tok_test::load_or_die(tok_test::data_path("text/tok-1024"));
  ASSERT_TRUE(t);
  const tok::TokenTable table = table_of(*t);
  for (int32_t id = 0; id < t->num_base_tokens(); ++id) {
    const std::string_view bytes = t->token_bytes(id);
    EXPECT_EQ(library_bpe(table, bytes), std::vector<int32_t>{id}) << id;
    EXPECT_EQ(reference_bpe(*t, bytes), std::vector<int32_t>{id}) << id;
    EXPECT_EQ(table.find(bytes), id);
  }
  EXPECT_EQ(table.find("no such token"), -1);
}

TEST(Bpe, ShortAndLongPiecesMatchTheReference) {
  auto t = tok_test::load_or_die(tok_test::data_path("text/tok-1024"));
  ASSERT_TRUE(t);
  const tok::TokenTable table = table_of(*t);
  std::mt19937 rng(7);
  const std::string alphabets[] = {"aeinrst th", "ab", " \n\t", "0123456789.,"};
  for (int iter = 0; iter < 400; ++iter) {
    // Lengths on both sides of the quadratic/heap switch (16 bytes).
    const std::string& alphabet = alphabets[iter % std::size(alphabets)];
    const size_t len = 1 + rng() % 400;
    std::string piece;
    for (size_t i = 0; i < len; ++i) piece += alphabet[rng() % alphabet.size()];
    EXPECT_EQ(library_bpe(table, piece), reference_bpe(*t, piece)) << piece;
  }
}

}  // namespace
}  // namespace k2
