#include "multimodal/test_images.h"

#include <algorithm>
#include <fstream>
#include <iterator>
#include <map>
#include <stdexcept>

#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STBI_WRITE_NO_STDIO
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wsign-compare"
#endif
#include <stb/stb_image_write.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

#ifdef K2_HAVE_WEBP
#include <webp/encode.h>
#endif

namespace k2::mm::testing {
namespace {

void append(void* ctx, void* data, int size) {
  auto* out = static_cast<std::vector<uint8_t>*>(ctx);
  auto* p = static_cast<uint8_t*>(data);
  out->insert(out->end(), p, p + size);
}

}  // namespace

RgbImage pattern_image(int w, int h, uint32_t seed) {
  RgbImage img(w, h);
  uint32_t s = seed * 2654435761u + 12345u;
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      s = s * 1664525u + 1013904223u;
      uint8_t* p = img.row(y) + size_t(x) * 3;
      // Smooth gradients plus a little noise: JPEG-friendly, not constant.
      p[0] = static_cast<uint8_t>((x * 255) / std::max(1, w - 1));
      p[1] = static_cast<uint8_t>((y * 255) / std::max(1, h - 1));
      p[2] = static_cast<uint8_t>(128 + int((s >> 24) & 15) - 8);
    }
  }
  return img;
}

RgbImage quantized(const RgbImage& img) {
  RgbImage out = img;
  for (uint8_t& v : out.pixels) v &= 0xc0;
  return out;
}

std::vector<uint8_t> encode_png(const RgbImage& img) {
  std::vector<uint8_t> out;
  stbi_write_png_to_func(append, &out, img.width, img.height, 3, img.pixels.data(), img.width * 3);
  return out;
}

std::vector<uint8_t> encode_png_rgba(const RgbImage& img, const std::vector<uint8_t>& alpha) {
  std::vector<uint8_t> rgba(size_t(img.width) * size_t(img.height) * 4);
  for (size_t i = 0; i < size_t(img.width) * size_t(img.height); ++i) {
    for (int c = 0; c < 3; ++c) rgba[i * 4 + size_t(c)] = img.pixels[i * 3 + size_t(c)];
    rgba[i * 4 + 3] = alpha[i];
  }
  std::vector<uint8_t> out;
  stbi_write_png_to_func(append, &out, img.width, img.height, 4, rgba.data(), img.width * 4);
  return out;
}

std::vector<uint8_t> encode_bmp(const RgbImage& img) {
  std::vector<uint8_t> out;
  stbi_write_bmp_to_func(append, &out, img.width, img.height, 3, img.pixels.data());
  return out;
}

std::vector<uint8_t> encode_jpeg(const RgbImage& img, int quality) {
  std::vector<uint8_t> out;
  stbi_write_jpg_to_func(append, &out, img.width, img.height, 3, img.pixels.data(), quality);
  return out;
}

std::vector<uint8_t> encode_webp_lossless(const RgbImage& img) {
#ifdef K2_HAVE_WEBP
  uint8_t* data = nullptr;
  size_t size = WebPEncodeLosslessRGB(img.pixels.data(), img.width, img.height, img.width * 3, &data);
  std::vector<uint8_t> out(data, data + size);
  WebPFree(data);
  return out;
#else
  (void)img;
  return {};
#endif
}

std::vector<uint8_t> encode_gif(const RgbImage& img) {
  std::map<uint32_t, uint8_t> index;
  std::vector<uint32_t> palette;
  for (size_t i = 0; i < img.pixels.size(); i += 3) {
    uint32_t c = (uint32_t{img.pixels[i]} << 16) | (uint32_t{img.pixels[i + 1]} << 8) | img.pixels[i + 2];
    if (index.emplace(c, static_cast<uint8_t>(palette.size())).second) palette.push_back(c);
  }
  if (palette.size() > 256) throw std::runtime_error("encode_gif: more than 256 colours");
  const int bits = 8;  // a full 256-entry table keeps the code size simple
  std::vector<uint8_t> out = {'G', 'I', 'F', '8', '9', 'a'};
  auto u16 = [&](int v) {
    out.push_back(static_cast<uint8_t>(v & 255));
    out.push_back(static_cast<uint8_t>(v >> 8));
  };
  u16(img.width);
  u16(img.height);
  out.push_back(0xf0 | (bits - 1));  // global colour table, 2^bits entries
  out.push_back(0);
  out.push_back(0);
  for (int i = 0; i < (1 << bits); ++i) {
    uint32_t c = i < int(palette.size()) ? palette[size_t(i)] : 0;
    out.push_back(static_cast<uint8_t>(c >> 16));
    out.push_back(static_cast<uint8_t>(c >> 8));
    out.push_back(static_cast<uint8_t>(c));
  }
  out.push_back(0x2c);
  u16(0);
  u16(0);
  u16(img.width);
  u16(img.height);
  out.push_back(0);
  out.push_back(bits);  // LZW minimum code size
  // Codes are bits+1 wide; a clear code before each pixel keeps the width fixed.
  const uint32_t clear = 1u << bits, end = clear + 1, width = bits + 1;
  std::vector<uint8_t> stream;
  uint32_t acc = 0, nacc = 0;
  auto emit = [&](uint32_t code) {
    acc |= code << nacc;
    nacc += width;
    while (nacc >= 8) {
      stream.push_back(static_cast<uint8_t>(acc & 255));
      acc >>= 8;
      nacc -= 8;
    }
  };
  for (size_t i = 0; i < img.pixels.size(); i += 3) {
    uint32_t c = (uint32_t{img.pixels[i]} << 16) | (uint32_t{img.pixels[i + 1]} << 8) | img.pixels[i + 2];
    emit(clear);
    emit(index[c]);
  }
  emit(end);
  if (nacc > 0) stream.push_back(static_cast<uint8_t>(acc & 255));
  for (size_t i = 0; i < stream.size(); i += 255) {
    size_t n = std::min<size_t>(255, stream.size() - i);
    out.push_back(static_cast<uint8_t>(n));
    out.insert(out.end(), stream.begin() + long(i), stream.begin() + long(i + n));
  }
  out.push_back(0);
  out.push_back(0x3b);
  return out;
}

std::vector<uint8_t> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::string base64_encode(const std::vector<uint8_t>& in) {
  static const char* k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (size_t i = 0; i < in.size(); i += 3) {
    uint32_t v = uint32_t{in[i]} << 16;
    if (i + 1 < in.size()) v |= uint32_t{in[i + 1]} << 8;
    if (i + 2 < in.size()) v |= in[i + 2];
    out += k[(v >> 18) & 63];
    out += k[(v >> 12) & 63];
    out += i + 1 < in.size() ? k[(v >> 6) & 63] : '=';
    out += i + 2 < in.size() ? k[v & 63] : '=';
  }
  return out;
}

}  // namespace k2::mm::testing
