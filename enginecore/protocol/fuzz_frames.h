// The byte layout the frame-decoder fuzz target reads, shared with the test that writes its
// seed corpus: [frame count][u16 little-endian length, bytes] per frame except the last, which
// takes the rest. Stateless; thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace k2::protocol {

inline std::vector<std::string_view> split_fuzz_input(const uint8_t* data, size_t size) {
  std::vector<std::string_view> frames;
  if (size == 0) return frames;
  size_t count = data[0] % 9;
  size_t pos = 1;
  for (size_t i = 0; i < count; ++i) {
    size_t len = size - pos;
    if (i + 1 < count) {
      if (size - pos < 2) break;
      len = data[pos] | (size_t{data[pos + 1]} << 8);
      pos += 2;
      if (len > size - pos) len = size - pos;
    }
    frames.emplace_back(reinterpret_cast<const char*>(data + pos), len);
    pos += len;
  }
  return frames;
}

inline std::string join_fuzz_input(const std::vector<std::string>& frames) {
  std::string out(1, static_cast<char>(frames.size()));
  for (size_t i = 0; i < frames.size(); ++i) {
    if (i + 1 < frames.size()) {
      out.push_back(static_cast<char>(frames[i].size() & 0xff));
      out.push_back(static_cast<char>((frames[i].size() >> 8) & 0xff));
    }
    out += frames[i];
  }
  return out;
}

}  // namespace k2::protocol
