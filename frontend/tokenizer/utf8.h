// UTF-8 helpers for the tokenizer: validation, Python-compatible lossy decoding and
// Python's str.isspace(). Pure functions on byte strings; thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace k2::tok {

inline constexpr char32_t kReplacementChar = 0xFFFD;

// Length (1-4) of the well-formed UTF-8 character at the start of `bytes`, or 0 when the
// bytes there are not one (bad lead, bad continuation, overlong, surrogate, > U+10FFFF,
// or truncated). `*cp` receives the code point when non-null.
size_t utf8_char_length(std::string_view bytes, char32_t* cp = nullptr);

// Length of the longest prefix of `bytes` that is well-formed UTF-8.
size_t utf8_valid_prefix(std::string_view bytes);

// Length of the run of bytes at the start of `bytes` at none of which a well-formed
// character starts (0 when one starts at offset 0).
size_t utf8_invalid_run(std::string_view bytes);

// Appends `bytes` decoded as Python's bytes.decode("utf-8", "replace") does: every maximal
// ill-formed subpart becomes one U+FFFD. When `final` is false, an incomplete but so far
// well-formed sequence at the very end is not decoded; the return value is the number of
// bytes consumed, so a streaming caller keeps the rest for the next call. With `final`
// true it consumes everything.
size_t append_utf8_lossy(std::string_view bytes, bool final, std::string& out);

// Appends the UTF-8 encoding of `cp` (which must be a scalar value).
void append_utf8(char32_t cp, std::string& out);

// Python 3 str.isspace() for one code point (Unicode bidi classes WS/B/S and Zs).
bool python_isspace(char32_t cp);

}  // namespace k2::tok
