// Small text primitives the Kimi parsers share: held-back marker prefixes and the
// whitespace/digit classes of Python's `regex` module, which vLLM's parsers use.
//
// Text is UTF-8. A byte that does not start a well-formed sequence counts as one
// character that is neither a space nor a digit, so invalid input never crashes and is
// classified the same way however it is split. Free functions; thread-safe.
#pragma once

#include <cstddef>
#include <string_view>

namespace k2::parsers {

// Length of the longest suffix of `text` that is a proper prefix of `marker`: the bytes a
// streaming parser must hold back because the next delta may complete the marker.
size_t partial_marker_suffix(std::string_view text, std::string_view marker);

// One decoded character: its code point (or -1 for an ill-formed byte) and byte length.
struct Utf8Char {
  int cp;
  size_t len;
};
Utf8Char decode_utf8(std::string_view text, size_t pos);

// `\s` of Python's `regex` module on str patterns: the Unicode White_Space property.
bool is_regex_space(int cp);
// `\d` of Python's `regex` module on str patterns: General_Category Nd.
bool is_regex_digit(int cp);

// Position after the run of spaces that starts at `from` (never past `to`).
size_t skip_spaces(std::string_view text, size_t from, size_t to);
// Start of the run of spaces that ends at `to` (never before `from`).
size_t trailing_spaces_start(std::string_view text, size_t from, size_t to);

}  // namespace k2::parsers
