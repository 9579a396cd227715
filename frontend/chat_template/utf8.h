// UTF-8 helpers for the Jinja engine: Python strings count, index and slice code points,
// and Python's str.strip()/isspace() know Unicode whitespace, so the engine needs both
// on the UTF-8 bytes it stores. Invalid bytes are treated as one code point each so that
// fuzzed templates never read out of bounds. Stateless functions, thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "frontend/tokenizer/utf8.h"

namespace k2::jinja {

// Decodes the code point at `pos` and advances `pos`; an invalid byte decodes as itself.
char32_t next_code_point(std::string_view s, size_t& pos);
inline void append_utf8(std::string& out, char32_t cp) { tok::append_utf8(cp, out); }

// Byte offsets of every code point start, plus s.size() at the end.
std::vector<size_t> code_point_offsets(std::string_view s);
size_t code_point_count(std::string_view s);

// Python's str.isspace() for one code point (the tokenizer's pre-tokenizer needs the same).
inline bool py_isspace(char32_t cp) { return tok::python_isspace(cp); }
// Python's str.strip()/lstrip()/rstrip() without arguments.
std::string_view py_strip(std::string_view s, bool left, bool right);
// Python's str.strip(chars)/lstrip(chars)/rstrip(chars) with an explicit set of code points.
std::string_view py_strip_chars(std::string_view s, std::string_view chars, bool left, bool right);

}  // namespace k2::jinja
