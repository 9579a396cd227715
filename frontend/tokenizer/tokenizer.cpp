#include "frontend/tokenizer/tokenizer.h"

#include <algorithm>

#include "frontend/tokenizer/bpe.h"
#include "frontend/tokenizer/encode_cuts.h"
#include "frontend/tokenizer/pretokenizer.h"
#include "frontend/tokenizer/special_matcher.h"
#include "frontend/tokenizer/utf8.h"

namespace k2 {

namespace {
// Pieces handled per pre-tokenizer call: bounds the scratch vector for huge inputs.
constexpr size_t kPieceBatch = 512;
}  // namespace

// Per-call state: PCRE2 match data and the piece buffer, made once per encode call and
// reused for every segment between special tokens.
struct Tokenizer::EncodeScratch {
  explicit EncodeScratch(const tok::PreTokenizer& pre) : regex(pre) { pieces.reserve(kPieceBatch + 1); }
  tok::PreTokenizer::Scratch regex;
  std::vector<std::string_view> pieces;
  tok::BpeScratch bpe;
};

Tokenizer::Tokenizer() : table_(std::make_unique<tok::TokenTable>()) {}
Tokenizer::~Tokenizer() = default;

int32_t Tokenizer::vocab_size() const { return table_->size(); }
int32_t Tokenizer::num_base_tokens() const { return table_->num_base(); }

std::string_view Tokenizer::token_bytes(int32_t id) const {
  return is_valid_id(id) ? table_->bytes(id) : std::string_view();
}

bool Tokenizer::is_special(int32_t id) const {
  return is_special_slot(id) && skip_[static_cast<size_t>(id - num_base_tokens())] != 0;
}

std::optional<int32_t> Tokenizer::special_token_id(std::string_view content) const {
  const auto it = special_ids_.find(std::string(content));
  if (it == special_ids_.end()) return std::nullopt;
  return it->second;
}

std::optional<int32_t> Tokenizer::token_id(std::string_view bytes) const {
  if (auto id = special_token_id(bytes)) return id;
  const int32_t rank = table_->find(bytes);
  if (rank < 0) return std::nullopt;
  return rank;
}

std::vector<int32_t> Tokenizer::stop_token_ids() const {
  std::vector<int32_t> ids = generation_eos_ids_;
  if (eos_id_ && std::find(ids.begin(), ids.end(), *eos_id_) == ids.end()) ids.push_back(*eos_id_);
  return ids;
}

void Tokenizer::encode_plain(std::string_view text, EncodeScratch& scratch, std::vector<int32_t>& out) const {
  const tok::TokenTable& table = *table_;
  auto encode_piece = [&](std::string_view piece) {
    const int32_t rank = table.find(piece);
    if (rank >= 0) {
      out.push_back(rank);
    } else {
      tok::byte_pair_encode(table, piece, out, scratch.bpe);
    }
  };
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t valid = tok::utf8_valid_prefix(text.substr(pos));
    if (valid == 0) {
      const size_t bad = tok::utf8_invalid_run(text.substr(pos));
      encode_piece(text.substr(pos, bad));
      pos += bad;
      continue;
    }
    const std::string_view run = text.substr(pos, valid);
    for (size_t at = 0; at < run.size();) {
      scratch.pieces.clear();
      at = pretokenizer_->split(run, at, scratch.regex, scratch.pieces, kPieceBatch);
      for (std::string_view piece : scratch.pieces) encode_piece(piece);
    }
    pos += valid;
  }
}

void Tokenizer::encode_with_specials(std::string_view text, EncodeScratch& scratch,
                                     std::vector<int32_t>& out) const {
  size_t start = 0;
  for (;;) {
    const tok::SpecialMatch m = special_matcher_->find(text, start);
    const size_t end = m.length > 0 ? m.position : text.size();
    // Like tiktoken, the regex sees only the text up to the special token.
    encode_plain(text.substr(start, end - start), scratch, out);
    if (m.length == 0) return;
    out.push_back(m.id);
    start = m.position + m.length;
  }
}

void Tokenizer::encode_into(std::string_view text, bool allow_special_tokens, std::vector<int32_t>& out) const {
  EncodeScratch scratch(*pretokenizer_);
  for (std::string_view cut : tok::encode_cuts(text)) {
    if (allow_special_tokens) {
      encode_with_specials(cut, scratch, out);
    } else {
      encode_plain(cut, scratch, out);
    }
  }
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool allow_special_tokens) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 4);
  encode_into(text, allow_special_tokens, out);
  return out;
}

std::vector<int32_t> Tokenizer::encode_ordinary(std::string_view text) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 4);
  EncodeScratch scratch(*pretokenizer_);
  encode_plain(text, scratch, out);
  return out;
}

Result<std::string> Tokenizer::decode_bytes(std::span<const int32_t> ids, bool skip_special_tokens) const {
  size_t total = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (!is_valid_id(ids[i])) {
      return out_of_range("token id " + std::to_string(ids[i]) + " at position " + std::to_string(i) +
                          " is not below the vocabulary size " + std::to_string(vocab_size()));
    }
    total += table_->bytes(ids[i]).size();
  }
  std::string out;
  out.reserve(total);
  for (int32_t id : ids) {
    if (skip_special_tokens && is_special(id)) continue;
    out.append(table_->bytes(id));
  }
  return out;
}

Result<std::string> Tokenizer::decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  K2_ASSIGN_OR_RETURN(const std::string bytes, decode_bytes(ids, skip_special_tokens));
  if (tok::utf8_valid_prefix(bytes) == bytes.size()) return bytes;
  std::string text;
  text.reserve(bytes.size() + 16);
  tok::append_utf8_lossy(bytes, true, text);
  return text;
}

}  // namespace k2
