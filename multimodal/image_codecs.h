// Internal to k2_mm_preprocess: the per-library decoders behind image_decode.h. They assume
// the caller already checked the byte cap and the header dimensions. Pure functions:
// thread-safe (stb's failure string is thread-local).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "multimodal/image_decode.h"
#include "shm/status.h"

namespace k2::mm::detail {

struct RawPixels {
  int width = 0;
  int height = 0;
  int channels = 0;  // 3 (RGB) or 4 (RGBA)
  std::vector<uint8_t> data;
};

// PNG, GIF, BMP (stb_image; image_decode.cpp reads their dimensions itself).
Result<RawPixels> stb_decode(std::span<const uint8_t> bytes, int channels);

// JPEG (libjpeg-turbo).
Result<ImageInfo> jpeg_probe(std::span<const uint8_t> bytes);
Result<RawPixels> jpeg_decode(std::span<const uint8_t> bytes, int channels);

// WebP (still images; an animation is kUnimplemented).
Result<ImageInfo> webp_probe(std::span<const uint8_t> bytes);
Result<RawPixels> webp_decode(std::span<const uint8_t> bytes, int channels);

}  // namespace k2::mm::detail
