#include "frontend/parsers/text_scan.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <memory>

namespace k2::parsers {

size_t partial_marker_suffix(std::string_view text, std::string_view marker) {
  size_t longest = std::min(text.size(), marker.size() - 1);
  for (size_t n = longest; n > 0; --n) {
    if (text.substr(text.size() - n) == marker.substr(0, n)) return n;
  }
  return 0;
}

Utf8Char decode_utf8(std::string_view text, size_t pos) {
  const auto byte = [&](size_t i) { return static_cast<unsigned char>(text[i]); };
  unsigned char b0 = byte(pos);
  if (b0 < 0x80) return {b0, 1};
  size_t len = 0;
  int cp = 0;
  int min_cp = 0;
  if ((b0 & 0xE0) == 0xC0) {
    len = 2, cp = b0 & 0x1F, min_cp = 0x80;
  } else if ((b0 & 0xF0) == 0xE0) {
    len = 3, cp = b0 & 0x0F, min_cp = 0x800;
  } else if ((b0 & 0xF8) == 0xF0) {
    len = 4, cp = b0 & 0x07, min_cp = 0x10000;
  } else {
    return {-1, 1};
  }
  if (pos + len > text.size()) return {-1, 1};
  for (size_t i = 1; i < len; ++i) {
    unsigned char b = byte(pos + i);
    if ((b & 0xC0) != 0x80) return {-1, 1};
    cp = (cp << 6) | (b & 0x3F);
  }
  if (cp < min_cp || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return {-1, 1};
  return {cp, len};
}

bool is_regex_space(int cp) {
  if (cp < 0) return false;
  if ((cp >= 0x09 && cp <= 0x0D) || cp == 0x20) return true;
  if (cp < 0x85) return false;
  if (cp == 0x85 || cp == 0xA0 || cp == 0x1680) return true;
  if (cp >= 0x2000 && cp <= 0x200A) return true;
  return cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

namespace {

struct CodeDeleter {
  void operator()(pcre2_code* code) const { pcre2_code_free(code); }
};
struct MatchDataDeleter {
  void operator()(pcre2_match_data* data) const { pcre2_match_data_free(data); }
};

// PCRE2 carries the Unicode tables, so non-ASCII digits are asked of it rather than of a
// table copied here.
const pcre2_code* nd_pattern() {
  static const std::unique_ptr<pcre2_code, CodeDeleter> code = [] {
    static constexpr char kPattern[] = "\\A\\p{Nd}\\z";
    int error = 0;
    PCRE2_SIZE offset = 0;
    return std::unique_ptr<pcre2_code, CodeDeleter>(
        pcre2_compile(reinterpret_cast<PCRE2_SPTR>(kPattern), PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP,
                      &error, &offset, nullptr));
  }();
  return code.get();
}

}  // namespace

bool is_regex_digit(int cp) {
  if (cp < 0) return false;
  if (cp < 0x80) return cp >= '0' && cp <= '9';
  char buf[4];
  size_t len = 0;
  if (cp < 0x800) {
    buf[0] = static_cast<char>(0xC0 | (cp >> 6));
    len = 1;
  } else if (cp < 0x10000) {
    buf[0] = static_cast<char>(0xE0 | (cp >> 12));
    buf[1] = static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    len = 2;
  } else {
    buf[0] = static_cast<char>(0xF0 | (cp >> 18));
    buf[1] = static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    buf[2] = static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    len = 3;
  }
  buf[len++] = static_cast<char>(0x80 | (cp & 0x3F));
  const pcre2_code* code = nd_pattern();
  if (code == nullptr) return false;
  std::unique_ptr<pcre2_match_data, MatchDataDeleter> data(
      pcre2_match_data_create_from_pattern(code, nullptr));
  if (!data) return false;
  return pcre2_match(code, reinterpret_cast<PCRE2_SPTR>(buf), len, 0, 0, data.get(), nullptr) > 0;
}

size_t skip_spaces(std::string_view text, size_t from, size_t to) {
  while (from < to) {
    Utf8Char c = decode_utf8(text, from);
    if (!is_regex_space(c.cp) || from + c.len > to) break;
    from += c.len;
  }
  return from;
}

size_t trailing_spaces_start(std::string_view text, size_t from, size_t to) {
  // Walk forward, as the regex does: with ill-formed bytes, reading backwards could group
  // bytes into characters differently.
  size_t run_start = from;
  size_t pos = from;
  while (pos < to) {
    Utf8Char c = decode_utf8(text, pos);
    bool space = is_regex_space(c.cp) && pos + c.len <= to;
    pos = std::min(pos + c.len, to);
    if (!space) run_start = pos;
  }
  return run_start;
}

}  // namespace k2::parsers
