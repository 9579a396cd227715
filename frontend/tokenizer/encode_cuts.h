// The cuts Kimi's TikTokenTokenizer.encode makes before handing text to tiktoken: chunks of
// at most 400,000 characters, each further cut so that no run of consecutive whitespace or
// non-whitespace characters (Python str.isspace) is longer than 25,000. Special tokens and
// the pre-tokenizer regex then see each cut separately, exactly as in Kimi's code.
// Pure function; thread-safe.
#pragma once

#include <cstddef>
#include <string_view>
#include <vector>

namespace k2::tok {

inline constexpr size_t kMaxEncodeChars = 400000;
inline constexpr size_t kMaxRunChars = 25000;

// Characters are code points; a byte that does not start a well-formed UTF-8 character
// counts as one non-space character. Returns views into `text` whose concatenation is
// `text`; none when `text` is empty.
std::vector<std::string_view> encode_cuts(std::string_view text,
                                          size_t max_chunk_chars = kMaxEncodeChars,
                                          size_t max_run_chars = kMaxRunChars);

}  // namespace k2::tok
