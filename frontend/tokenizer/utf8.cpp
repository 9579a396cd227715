#include "frontend/tokenizer/utf8.h"

namespace k2::tok {
namespace {

// For a lead byte: the number of continuation bytes and the allowed range of the first
// one (the later ones are always 0x80..0xBF). Encodes RFC 3629 / Unicode Table 3-7.
struct LeadInfo {
  int continuation;
  uint8_t lo;
  uint8_t hi;
};

LeadInfo lead_info(uint8_t b) {
  if (b >= 0xC2 && b <= 0xDF) return {1, 0x80, 0xBF};
  if (b == 0xE0) return {2, 0xA0, 0xBF};
  if ((b >= 0xE1 && b <= 0xEC) || b == 0xEE || b == 0xEF) return {2, 0x80, 0xBF};
  if (b == 0xED) return {2, 0x80, 0x9F};
  if (b == 0xF0) return {3, 0x90, 0xBF};
  if (b >= 0xF1 && b <= 0xF3) return {3, 0x80, 0xBF};
  if (b == 0xF4) return {3, 0x80, 0x8F};
  return {-1, 0, 0};
}

// Number of bytes of the maximal well-formed prefix of a sequence starting at `p`
// (at least 1 even when the lead itself is bad), and whether it is complete.
struct Subpart {
  size_t length;
  bool complete;
  bool truncated;  // ran out of input while still well-formed
};

Subpart scan_subpart(const uint8_t* p, size_t n) {
  const uint8_t b = p[0];
  if (b < 0x80) return {1, true, false};
  const LeadInfo info = lead_info(b);
  if (info.continuation < 0) return {1, false, false};
  size_t i = 1;
  for (int k = 0; k < info.continuation; ++k, ++i) {
    if (i >= n) return {i, false, true};
    const uint8_t lo = k == 0 ? info.lo : 0x80;
    const uint8_t hi = k == 0 ? info.hi : 0xBF;
    if (p[i] < lo || p[i] > hi) return {i, false, false};
  }
  return {i, true, false};
}

}  // namespace

size_t utf8_char_length(std::string_view bytes, char32_t* cp) {
  if (bytes.empty()) return 0;
  const auto* p = reinterpret_cast<const uint8_t*>(bytes.data());
  const Subpart s = scan_subpart(p, bytes.size());
  if (!s.complete) return 0;
  if (cp != nullptr) {
    static constexpr uint8_t kLeadMask[5] = {0, 0x7F, 0x1F, 0x0F, 0x07};
    char32_t v = p[0] & kLeadMask[s.length];
    for (size_t i = 1; i < s.length; ++i) v = (v << 6) | (p[i] & 0x3F);
    *cp = v;
  }
  return s.length;
}

size_t utf8_valid_prefix(std::string_view bytes) {
  const auto* p = reinterpret_cast<const uint8_t*>(bytes.data());
  const size_t n = bytes.size();
  size_t i = 0;
  while (i < n) {
    // ASCII fast path, 8 bytes at a time.
    while (i + 8 <= n) {
      uint64_t w;
      __builtin_memcpy(&w, p + i, 8);
      if (w & 0x8080808080808080ull) break;
      i += 8;
    }
    if (i >= n) break;
    if (p[i] < 0x80) {
      ++i;
      continue;
    }
    const Subpart s = scan_subpart(p + i, n - i);
    if (!s.complete) break;
    i += s.length;
  }
  return i;
}

size_t utf8_invalid_run(std::string_view bytes) {
  size_t i = 0;
  while (i < bytes.size() && utf8_char_length(bytes.substr(i)) == 0) ++i;
  return i;
}

void append_utf8(char32_t cp, std::string& out) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

size_t append_utf8_lossy(std::string_view bytes, bool final, std::string& out) {
  const auto* p = reinterpret_cast<const uint8_t*>(bytes.data());
  const size_t n = bytes.size();
  size_t i = 0;
  while (i < n) {
    const size_t valid = utf8_valid_prefix(bytes.substr(i));
    out.append(bytes.data() + i, valid);
    i += valid;
    if (i >= n) break;
    const Subpart s = scan_subpart(p + i, n - i);
    if (s.truncated && !final) return i;
    append_utf8(kReplacementChar, out);
    i += s.length;
  }
  return n;
}

bool python_isspace(char32_t cp) {
  if (cp <= 0x20) return cp == 0x20 || (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x1F);
  if (cp < 0x85) return false;
  switch (cp) {
    case 0x85: case 0xA0: case 0x1680: case 0x2028: case 0x2029: case 0x202F: case 0x205F:
    case 0x3000:
      return true;
    default:
      return cp >= 0x2000 && cp <= 0x200A;
  }
}

}  // namespace k2::tok
