// Nesting depth of a parsed JSON value, measured without recursion, so values read from a
// request can be rejected before recursive code (copies, comparisons, dumps) walks them.
// Pure function, thread-safe.
#pragma once

#include <cstddef>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace k2::structured {

inline bool json_deeper_than(const nlohmann::ordered_json& value, size_t limit) {
  std::vector<std::pair<const nlohmann::ordered_json*, size_t>> todo{{&value, 1}};
  while (!todo.empty()) {
    auto [v, depth] = todo.back();
    todo.pop_back();
    if (depth > limit) return true;
    if (v->is_structured()) {
      for (const auto& child : *v) todo.emplace_back(&child, depth + 1);
    }
  }
  return false;
}

}  // namespace k2::structured
