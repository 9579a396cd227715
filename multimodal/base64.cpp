#include "multimodal/base64.h"

#include <algorithm>
#include <array>
#include <string>

namespace k2::mm {
namespace {

constexpr int8_t kInvalid = -1;
constexpr int8_t kSpace = -2;
constexpr int8_t kPad = -3;

constexpr std::array<int8_t, 256> make_table() {
  std::array<int8_t, 256> t{};
  for (auto& v : t) v = kInvalid;
  constexpr std::string_view kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (size_t i = 0; i < kAlphabet.size(); ++i) t[static_cast<uint8_t>(kAlphabet[i])] = static_cast<int8_t>(i);
  for (char c : std::string_view(" \t\r\n\f\v")) t[static_cast<uint8_t>(c)] = kSpace;
  t['='] = kPad;
  return t;
}
constexpr std::array<int8_t, 256> kTable = make_table();

}  // namespace

Result<std::vector<uint8_t>> base64_decode(std::string_view text, size_t max_bytes) {
  std::vector<uint8_t> out;
  out.reserve(std::min(base64_decoded_bound(text.size()), max_bytes));
  uint32_t acc = 0;
  int filled = 0;    // sextets in acc
  size_t pads = 0;   // '=' seen; only whitespace and '=' may follow the first one
  for (size_t i = 0; i < text.size(); ++i) {
    int8_t v = kTable[static_cast<uint8_t>(text[i])];
    if (v == kSpace) continue;
    if (v == kInvalid) return invalid_argument("base64: invalid character at offset " + std::to_string(i));
    if (v == kPad) {
      ++pads;
      continue;
    }
    if (pads != 0) return invalid_argument("base64: data after padding");
    acc = (acc << 6) | static_cast<uint32_t>(v);
    if (++filled == 4) {
      if (out.size() + 3 > max_bytes) return out_of_range("base64: decoded data exceeds " + std::to_string(max_bytes) + " bytes");
      out.push_back(static_cast<uint8_t>(acc >> 16));
      out.push_back(static_cast<uint8_t>(acc >> 8));
      out.push_back(static_cast<uint8_t>(acc));
      acc = 0;
      filled = 0;
    }
  }
  if (filled == 1) return invalid_argument("base64: truncated input (one dangling character)");
  if (pads != 0 && (filled == 0 || pads != static_cast<size_t>(4 - filled))) {
    return invalid_argument("base64: wrong padding");
  }
  if (filled > 1) {
    size_t extra = static_cast<size_t>(filled - 1);
    if (out.size() + extra > max_bytes) return out_of_range("base64: decoded data exceeds " + std::to_string(max_bytes) + " bytes");
    acc <<= 6 * (4 - filled);
    out.push_back(static_cast<uint8_t>(acc >> 16));
    if (filled == 3) out.push_back(static_cast<uint8_t>(acc >> 8));
  }
  return out;
}

}  // namespace k2::mm
