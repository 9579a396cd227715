#include "frontend/tokenizer/encode_cuts.h"

#include <algorithm>

#include "frontend/tokenizer/utf8.h"

namespace k2::tok {

std::vector<std::string_view> encode_cuts(std::string_view text, size_t max_chunk_chars,
                                          size_t max_run_chars) {
  std::vector<std::string_view> cuts;
  if (text.empty()) return cuts;
  // A text with no more bytes than either limit has no more characters either.
  if (text.size() <= std::min(max_chunk_chars, max_run_chars)) {
    cuts.push_back(text);
    return cuts;
  }
  size_t slice_start = 0;
  size_t chunk_chars = 0;
  size_t run_len = 0;
  bool run_space = false;
  size_t b = 0;
  while (b < text.size()) {
    size_t len = 1;
    bool space = false;
    const auto c = static_cast<unsigned char>(text[b]);
    if (c < 0x80) {
      space = python_isspace(c);
    } else {
      char32_t cp = 0;
      len = utf8_char_length(text.substr(b), &cp);
      if (len == 0) {
        len = 1;
      } else {
        space = python_isspace(cp);
      }
    }
    if (chunk_chars == max_chunk_chars) {  // a new 400k chunk starts here
      cuts.push_back(text.substr(slice_start, b - slice_start));
      slice_start = b;
      chunk_chars = 0;
    }
    if (chunk_chars == 0) {
      run_space = space;
      run_len = 0;
    }
    if (run_space != space) {
      run_space = space;
      run_len = 1;
    } else if (++run_len > max_run_chars) {
      cuts.push_back(text.substr(slice_start, b - slice_start));
      slice_start = b;
      run_len = 1;
    }
    ++chunk_chars;
    b += len;
  }
  cuts.push_back(text.substr(slice_start));
  return cuts;
}

}  // namespace k2::tok
