#include "frontend/chat_template/utf8.h"

#include <algorithm>

namespace k2::jinja {

char32_t next_code_point(std::string_view s, size_t& pos) {
  const auto b0 = static_cast<unsigned char>(s[pos]);
  size_t len = 0;
  char32_t cp = 0;
  if (b0 < 0x80) {
    ++pos;
    return b0;
  } else if ((b0 & 0xE0) == 0xC0) {
    len = 2;
    cp = b0 & 0x1F;
  } else if ((b0 & 0xF0) == 0xE0) {
    len = 3;
    cp = b0 & 0x0F;
  } else if ((b0 & 0xF8) == 0xF0) {
    len = 4;
    cp = b0 & 0x07;
  } else {
    ++pos;
    return b0;
  }
  if (pos + len > s.size()) {
    ++pos;
    return b0;
  }
  for (size_t i = 1; i < len; ++i) {
    const auto b = static_cast<unsigned char>(s[pos + i]);
    if ((b & 0xC0) != 0x80) {
      ++pos;
      return b0;
    }
    cp = (cp << 6) | (b & 0x3F);
  }
  pos += len;
  return cp;
}


std::vector<size_t> code_point_offsets(std::string_view s) {
  std::vector<size_t> offsets;
  offsets.reserve(s.size() + 1);
  size_t pos = 0;
  while (pos < s.size()) {
    offsets.push_back(pos);
    next_code_point(s, pos);
  }
  offsets.push_back(s.size());
  return offsets;
}

size_t code_point_count(std::string_view s) {
  size_t n = 0;
  size_t pos = 0;
  while (pos < s.size()) {
    next_code_point(s, pos);
    ++n;
  }
  return n;
}


namespace {

template <class Pred>
std::string_view strip_if(std::string_view s, bool left, bool right, Pred pred) {
  size_t begin = 0;
  size_t end = s.size();
  if (left) {
    while (begin < end) {
      size_t pos = begin;
      if (!pred(next_code_point(s, pos))) break;
      begin = pos;
    }
  }
  if (right) {
    while (end > begin) {
      // Step back to the start of the last code point.
      size_t start = end - 1;
      while (start > begin && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80 && end - start < 4) --start;
      size_t pos = start;
      char32_t cp = next_code_point(s, pos);
      if (pos != end) {  // not a well-formed sequence: treat the last byte alone
        start = end - 1;
        pos = start;
        cp = next_code_point(s, pos);
      }
      if (!pred(cp)) break;
      end = start;
    }
  }
  return s.substr(begin, end - begin);
}

}  // namespace

std::string_view py_strip(std::string_view s, bool left, bool right) {
  return strip_if(s, left, right, [](char32_t cp) { return tok::python_isspace(cp); });
}

std::string_view py_strip_chars(std::string_view s, std::string_view chars, bool left, bool right) {
  std::vector<char32_t> set;
  size_t pos = 0;
  while (pos < chars.size()) set.push_back(next_code_point(chars, pos));
  return strip_if(s, left, right, [&](char32_t cp) {
    return std::find(set.begin(), set.end(), cp) != set.end();
  });
}

}  // namespace k2::jinja
