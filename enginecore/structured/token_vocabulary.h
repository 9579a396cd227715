// TokenVocabulary: the bytes every token id decodes to, arranged for fast grammar masks.
// Tokens are laid out as a byte trie in depth-first preorder, so a mask is one forward pass
// that skips a whole subtree as soon as its prefix is rejected.
//
// Immutable after create(); share it (shared_ptr) between all matchers and threads.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "shm/status.h"

namespace k2::structured {

class TokenVocabulary {
 public:
  struct TrieNode {
    uint8_t byte;
    uint16_t depth;        // 1 for a token's first byte
    uint32_t subtree_end;  // preorder index just past this node's subtree
    uint32_t tokens_begin; // [tokens_begin, tokens_end) index trie_tokens(): ids ending here
    uint32_t tokens_end;
  };

  // token_bytes[id]: the raw bytes id decodes to; "" = never allowed (special tokens).
  // end_ids: tokens that end generation, allowed exactly when the grammar can terminate.
  static Result<std::shared_ptr<const TokenVocabulary>> create(std::vector<std::string> token_bytes,
                                                               std::vector<int32_t> end_ids);

  size_t size() const { return token_bytes_.size(); }
  size_t mask_words() const { return (token_bytes_.size() + 31) / 32; }
  const std::string& bytes(int32_t id) const { return token_bytes_[static_cast<size_t>(id)]; }
  bool is_end(int32_t id) const { return is_end_[static_cast<size_t>(id)] != 0; }
  std::span<const int32_t> end_ids() const { return end_ids_; }
  std::span<const TrieNode> trie() const { return trie_; }
  std::span<const int32_t> trie_tokens() const { return trie_tokens_; }
  size_t max_token_length() const { return max_length_; }

 private:
  std::vector<std::string> token_bytes_;
  std::vector<uint8_t> is_end_;
  std::vector<int32_t> end_ids_;
  std::vector<TrieNode> trie_;
  std::vector<int32_t> trie_tokens_;
  size_t max_length_ = 0;
};

}  // namespace k2::structured
