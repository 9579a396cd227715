// The Kimi tokenizer: tiktoken byte-pair encoding with Kimi's pre-tokenizer regex, Kimi's
// 256 reserved special-token slots and Kimi's encode() rules (special-token strings matched
// anywhere, the 400,000-character and 25,000-run cuts).
//
// Load one with Tokenizer::load(dir) from a Kimi tokenizer directory:
//   tiktoken.model          one `base64(bytes) rank` line per base token (rank = id)
//   tokenizer_config.json   added_tokens_decoder (names and `special` flags of the special
//                           slots), bos/eos/pad/unk_token, additional_special_tokens
//   generation_config.json  optional; eos_token_id (an id or a list of ids)
//   chat_template.jinja     optional; its text is exposed, not interpreted here
//
// A Tokenizer owns all its tables and is immutable after load(): every const method may be
// called from any number of threads at once.
//
// Invalid UTF-8 in encode input is not rejected: bytes are tokenized as they are. Each
// maximal run of bytes at which no well-formed character starts becomes one piece that is
// byte-pair merged like any other, and counts as one non-space character per byte for the
// cuts. decode(encode(x)) == x therefore holds for every byte string x.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "shm/status.h"

namespace k2 {

namespace tok {
class TokenTable;
class PreTokenizer;
class SpecialMatcher;
}  // namespace tok

// One of the 256 special slots after the base tokens.
struct SpecialToken {
  int32_t id = 0;
  std::string content;   // the name from tokenizer_config.json, or <|reserved_token_{id}|>
  bool named = false;    // listed in added_tokens_decoder
  bool special = false;  // dropped by decode(..., skip_special_tokens=true); true when unnamed
};

// The strings a chat template sees as bos_token, eos_token, ... (empty when unset).
struct SpecialTokensMap {
  std::string bos_token;
  std::string eos_token;
  std::string unk_token;
  std::string pad_token;
  std::vector<std::string> additional_special_tokens;
};

class Tokenizer {
 public:
  // Kimi's num_reserved_special_tokens.
  static constexpr int32_t kNumSpecialSlots = 256;

  // Reads a Kimi tokenizer directory. Errors name the file (and line, for tiktoken.model
  // and JSON syntax errors).
  static Result<std::shared_ptr<const Tokenizer>> load(const std::string& dir);
  // Builds one from file contents (what load() reads); `*_name` label error messages.
  // generation_config / chat_template may be empty (absent).
  static Result<std::shared_ptr<const Tokenizer>> from_contents(
      std::string_view tiktoken_model, std::string_view tokenizer_config,
      std::string_view generation_config, std::string chat_template,
      const std::string& origin = "");

  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // --- encoding ---------------------------------------------------------------------------
  // Kimi's TikTokenTokenizer.encode(text, allow_special_tokens): cuts, then special-token
  // strings (all 256, when allowed) become their ids and the rest is pre-tokenized and
  // byte-pair merged. No BOS/EOS is added.
  std::vector<int32_t> encode(std::string_view text, bool allow_special_tokens = true) const;
  // Same, appending to `out` (lets a caller reuse one buffer).
  void encode_into(std::string_view text, bool allow_special_tokens, std::vector<int32_t>& out) const;
  // tiktoken's encode_ordinary: no special-token matching and no cuts.
  std::vector<int32_t> encode_ordinary(std::string_view text) const;

  // --- decoding ---------------------------------------------------------------------------
  // The concatenated token bytes. An id outside [0, vocab_size()) is an error.
  Result<std::string> decode_bytes(std::span<const int32_t> ids, bool skip_special_tokens = false) const;
  // decode_bytes as text: ill-formed UTF-8 becomes U+FFFD exactly as Python's
  // bytes.decode("utf-8", "replace") (what tiktoken and Kimi's decode do).
  Result<std::string> decode(std::span<const int32_t> ids, bool skip_special_tokens = false) const;

  // --- vocabulary -------------------------------------------------------------------------
  int32_t vocab_size() const;       // base tokens + 256 special slots
  int32_t num_base_tokens() const;  // lines of tiktoken.model
  bool is_valid_id(int32_t id) const { return id >= 0 && id < vocab_size(); }
  // The bytes of one token (a special's name for a special id); empty for an invalid id.
  std::string_view token_bytes(int32_t id) const;
  // One of the 256 special slots (named or reserved).
  bool is_special_slot(int32_t id) const { return id >= num_base_tokens() && id < vocab_size(); }
  // Dropped by skip_special_tokens: the `special` flag of added_tokens_decoder, bos/eos/
  // unk/pad, additional_special_tokens (Hugging Face's all_special_ids) and the unnamed
  // <|reserved_token_N|> slots (as special_tokens.json marks them).
  bool is_special(int32_t id) const;
  // The id of a special token by its content (named or <|reserved_token_N|>).
  std::optional<int32_t> special_token_id(std::string_view content) const;
  // The id whose bytes are exactly `bytes`: a special token's name or a base token.
  std::optional<int32_t> token_id(std::string_view bytes) const;
  const std::vector<SpecialToken>& special_tokens() const { return specials_; }

  std::optional<int32_t> bos_token_id() const { return bos_id_; }
  std::optional<int32_t> eos_token_id() const { return eos_id_; }
  std::optional<int32_t> pad_token_id() const { return pad_id_; }
  std::optional<int32_t> unk_token_id() const { return unk_id_; }
  // generation_config.json's eos_token_id (one or several; empty if absent).
  const std::vector<int32_t>& generation_eos_token_ids() const { return generation_eos_ids_; }
  // What generation should stop on: generation_config's ids and eos_token, deduplicated.
  std::vector<int32_t> stop_token_ids() const;
  const SpecialTokensMap& special_tokens_map() const { return special_tokens_map_; }

  // chat_template.jinja's text, if the directory has one (or tokenizer_config.json's
  // string-valued chat_template key otherwise).
  const std::optional<std::string>& chat_template() const { return chat_template_; }
  // The directory load() read ("" for from_contents()).
  const std::string& directory() const { return directory_; }

 private:
  Tokenizer();
  friend class TokenizerBuilder;

  struct EncodeScratch;
  // Encodes text with no special tokens: valid UTF-8 runs through the regex, invalid runs
  // as pieces of their own.
  void encode_plain(std::string_view text, EncodeScratch& scratch, std::vector<int32_t>& out) const;
  void encode_with_specials(std::string_view text, EncodeScratch& scratch,
                            std::vector<int32_t>& out) const;

  std::unique_ptr<tok::TokenTable> table_;
  std::unique_ptr<tok::PreTokenizer> pretokenizer_;
  std::unique_ptr<tok::SpecialMatcher> special_matcher_;
  std::vector<SpecialToken> specials_;
  std::vector<uint8_t> skip_;  // per special slot: dropped by skip_special_tokens
  std::unordered_map<std::string, int32_t> special_ids_;
  std::optional<int32_t> bos_id_, eos_id_, pad_id_, unk_id_;
  std::vector<int32_t> generation_eos_ids_;
  SpecialTokensMap special_tokens_map_;
  std::optional<std::string> chat_template_;
  std::string directory_;
};

}  // namespace k2
