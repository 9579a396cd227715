#include "enginecore/structured/token_vocabulary.h"

#include <algorithm>
#include <limits>

namespace k2::structured {

Result<std::shared_ptr<const TokenVocabulary>> TokenVocabulary::create(std::vector<std::string> token_bytes,
                                                                       std::vector<int32_t> end_ids) {
  if (token_bytes.empty()) return invalid_argument("token vocabulary is empty");
  if (token_bytes.size() > static_cast<size_t>(std::numeric_limits<int32_t>::max())) {
    return invalid_argument("token vocabulary too large");
  }
  auto vocab = std::make_shared<TokenVocabulary>();
  vocab->is_end_.assign(token_bytes.size(), 0);
  for (int32_t id : end_ids) {
    if (id < 0 || static_cast<size_t>(id) >= token_bytes.size()) {
      return invalid_argument("end token id " + std::to_string(id) + " outside the vocabulary of " +
                              std::to_string(token_bytes.size()));
    }
    if (!vocab->is_end_[static_cast<size_t>(id)]) vocab->end_ids_.push_back(id);
    vocab->is_end_[static_cast<size_t>(id)] = 1;
  }
  std::vector<int32_t> order;
  for (size_t id = 0; id < token_bytes.size(); ++id) {
    if (token_bytes[id].empty() || vocab->is_end_[id]) continue;
    if (token_bytes[id].size() > std::numeric_limits<uint16_t>::max()) {
      return invalid_argument("token " + std::to_string(id) + " is longer than 65535 bytes");
    }
    order.push_back(static_cast<int32_t>(id));
    vocab->max_length_ = std::max(vocab->max_length_, token_bytes[id].size());
  }
  // std::string compares bytes as unsigned char, so a prefix sorts right before its extensions:
  // sorted order is the trie's preorder.
  std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
    const std::string& x = token_bytes[static_cast<size_t>(a)];
    const std::string& y = token_bytes[static_cast<size_t>(b)];
    return x != y ? x < y : a < b;
  });
  std::vector<TrieNode>& trie = vocab->trie_;
  std::vector<uint32_t> path;  // node index per depth - 1
  const std::string* prev = nullptr;
  for (int32_t id : order) {
    const std::string& s = token_bytes[static_cast<size_t>(id)];
    size_t common = 0;
    if (prev) {
      while (common < std::min(prev->size(), s.size()) && (*prev)[common] == s[common]) ++common;
    }
    while (path.size() > common) {
      trie[path.back()].subtree_end = static_cast<uint32_t>(trie.size());
      path.pop_back();
    }
    for (size_t d = common; d < s.size(); ++d) {
      uint32_t at = static_cast<uint32_t>(vocab->trie_tokens_.size());
      trie.push_back({static_cast<uint8_t>(s[d]), static_cast<uint16_t>(d + 1), 0, at, at});
      path.push_back(static_cast<uint32_t>(trie.size() - 1));
    }
    vocab->trie_tokens_.push_back(id);
    trie[path.back()].tokens_end = static_cast<uint32_t>(vocab->trie_tokens_.size());
    prev = &s;
  }
  while (!path.empty()) {
    trie[path.back()].subtree_end = static_cast<uint32_t>(trie.size());
    path.pop_back();
  }
  vocab->token_bytes_ = std::move(token_bytes);
  return std::shared_ptr<const TokenVocabulary>(std::move(vocab));
}

}  // namespace k2::structured
