// RgbImage: a decoded 8-bit RGB raster. A value type that owns its pixels;
// thread-compatible (concurrent reads are safe, writes need external synchronisation).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace k2::mm {

struct RgbImage {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> pixels;  // row-major, 3 bytes per pixel (R, G, B), no row padding

  RgbImage() = default;
  RgbImage(int w, int h) : width(w), height(h), pixels(size_t(w) * size_t(h) * 3) {}
  uint8_t* row(int y) { return pixels.data() + size_t(y) * size_t(width) * 3; }
  const uint8_t* row(int y) const { return pixels.data() + size_t(y) * size_t(width) * 3; }
};

}  // namespace k2::mm
