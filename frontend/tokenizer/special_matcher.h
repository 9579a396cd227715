// Finds special-token strings inside text (tiktoken's allowed_special="all" matching).
// Owns a byte trie of the token strings; immutable after construction, safe for concurrent
// const use.
#pragma once

#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

namespace k2::tok {

struct SpecialMatch {
  size_t position = 0;  // byte offset in the searched text
  size_t length = 0;    // 0: no match
  int32_t id = -1;
};

class SpecialMatcher {
 public:
  // (content, id) pairs; contents must be non-empty and distinct.
  explicit SpecialMatcher(const std::vector<std::pair<std::string_view, int32_t>>& tokens);

  // The leftmost occurrence at or after `from`; at one position the longest token wins
  // (Kimi's names are never prefixes of each other, so this only fixes a free choice).
  SpecialMatch find(std::string_view text, size_t from) const;

 private:
  struct Node {
    int32_t id = -1;
    uint32_t first_child = 0;  // index into edges_
    uint32_t num_children = 0;
  };
  struct Edge {
    uint8_t byte;
    uint32_t node;
  };
  // Length and id of the longest token starting at text[pos], or {0, -1}.
  std::pair<size_t, int32_t> longest_at(std::string_view text, size_t pos) const;

  std::vector<Node> nodes_;
  std::vector<Edge> edges_;
  bool first_byte_[256] = {};
};

}  // namespace k2::tok
