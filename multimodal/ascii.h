// ASCII helpers for the URL and media-type parsers of this folder (internal). URL schemes
// and media types compare case-insensitively in ASCII only, never by locale.
#pragma once

#include <string_view>

namespace k2::mm {

inline char ascii_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

// `prefix` must be lower case.
inline bool starts_with_ci(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    if (ascii_lower(s[i]) != prefix[i]) return false;
  }
  return true;
}

}  // namespace k2::mm
