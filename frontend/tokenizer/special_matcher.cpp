#include "frontend/tokenizer/special_matcher.h"

#include <algorithm>
#include <map>
#include <memory>

namespace k2::tok {

SpecialMatcher::SpecialMatcher(const std::vector<std::pair<std::string_view, int32_t>>& tokens) {
  // Build a pointer trie first, then flatten it breadth-first so every node's children
  // are contiguous (and sorted) in edges_.
  struct Build {
    int32_t id = -1;
    std::map<uint8_t, std::unique_ptr<Build>> children;
  };
  Build root;
  for (const auto& [content, id] : tokens) {
    if (content.empty()) continue;
    first_byte_[static_cast<uint8_t>(content[0])] = true;
    Build* node = &root;
    for (char c : content) {
      auto& child = node->children[static_cast<uint8_t>(c)];
      if (!child) child = std::make_unique<Build>();
      node = child.get();
    }
    node->id = id;
  }
  std::vector<const Build*> order{&root};
  nodes_.push_back(Node{root.id, 0, 0});
  for (size_t k = 0; k < order.size(); ++k) {
    const Build* b = order[k];
    nodes_[k].first_child = static_cast<uint32_t>(edges_.size());
    nodes_[k].num_children = static_cast<uint32_t>(b->children.size());
    for (const auto& [byte, child] : b->children) {
      edges_.push_back(Edge{byte, static_cast<uint32_t>(order.size())});
      order.push_back(child.get());
      nodes_.push_back(Node{child->id, 0, 0});
    }
  }
}

std::pair<size_t, int32_t> SpecialMatcher::longest_at(std::string_view text, size_t pos) const {
  size_t best_len = 0;
  int32_t best_id = -1;
  uint32_t node = 0;
  for (size_t i = pos; i < text.size(); ++i) {
    const Node& n = nodes_[node];
    const auto b = static_cast<uint8_t>(text[i]);
    const Edge* first = edges_.data() + n.first_child;
    const Edge* last = first + n.num_children;
    const Edge* e = std::find_if(first, last, [b](const Edge& x) { return x.byte == b; });
    if (e == last) break;
    node = e->node;
    if (nodes_[node].id >= 0) {
      best_len = i + 1 - pos;
      best_id = nodes_[node].id;
    }
  }
  return {best_len, best_id};
}

SpecialMatch SpecialMatcher::find(std::string_view text, size_t from) const {
  if (nodes_.size() <= 1) return {};
  for (size_t pos = from; pos < text.size(); ++pos) {
    if (!first_byte_[static_cast<uint8_t>(text[pos])]) continue;
    const auto [len, id] = longest_at(text, pos);
    if (len > 0) return SpecialMatch{pos, len, id};
  }
  return {};
}

}  // namespace k2::tok
