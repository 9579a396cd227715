// Comparisons of logit vectors that the sharded-model tests share (header-only, tests only):
// the largest absolute difference (the golden tolerance's measure) and bit identity (what the
// ranks of one group must reach). Free functions; thread-safe.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

namespace k2::logit_compare {

// max |a[i] - b[i]|; infinity when the lengths differ.
inline double max_diff(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return INFINITY;
  double d = 0;
  for (size_t i = 0; i < a.size(); ++i) d = std::max(d, std::fabs(double(a[i]) - b[i]));
  return d;
}

inline bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

}  // namespace k2::logit_compare
