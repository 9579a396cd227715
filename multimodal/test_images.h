// Test-only helpers: small images encoded in memory in every supported format. Pure
// functions: thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "multimodal/image.h"

namespace k2::mm::testing {

// A deterministic pattern, w x h, RGB.
RgbImage pattern_image(int w, int h, uint32_t seed = 1);

// The same image with each channel reduced to its top 2 bits (64 colours): GIF-safe.
RgbImage quantized(const RgbImage& img);

std::vector<uint8_t> encode_png(const RgbImage& img);
// RGBA PNG: alpha from `alpha` (w*h bytes).
std::vector<uint8_t> encode_png_rgba(const RgbImage& img, const std::vector<uint8_t>& alpha);
std::vector<uint8_t> encode_bmp(const RgbImage& img);
std::vector<uint8_t> encode_jpeg(const RgbImage& img, int quality = 95);
// Lossless WebP; empty when this build has no libwebp.
std::vector<uint8_t> encode_webp_lossless(const RgbImage& img);
// A GIF whose palette holds every colour of `img` (at most 256); colour i of the palette is
// index i. Uncompressed LZW (a clear code before every pixel).
std::vector<uint8_t> encode_gif(const RgbImage& img);

std::vector<uint8_t> read_file(const std::string& path);

// Standard base64 with padding, for building data: URLs.
std::string base64_encode(const std::vector<uint8_t>& bytes);

}  // namespace k2::mm::testing
