#include "multimodal/image_decode.h"

#include <climits>
#include <cstring>
#include <string>

#include "multimodal/image_codecs.h"

namespace k2::mm {
namespace {

uint32_t le16(std::span<const uint8_t> b, size_t at) { return uint32_t{b[at]} | (uint32_t{b[at + 1]} << 8); }
uint32_t le32(std::span<const uint8_t> b, size_t at) { return le16(b, at) | (le16(b, at + 2) << 16); }
uint32_t be32(std::span<const uint8_t> b, size_t at) {
  return (uint32_t{b[at]} << 24) | (uint32_t{b[at + 1]} << 16) | (uint32_t{b[at + 2]} << 8) | uint32_t{b[at + 3]};
}

// stb_image reads past the end of a GIF frame or BMP rows as zeros and "succeeds", and
// libjpeg only warns about a premature end of a JPEG, while PIL refuses such files as
// truncated; these checks refuse them first.

// A JPEG must carry its EOI marker after the first scan of the main image. The segments
// before the scan (APPn may embed a whole thumbnail JPEG) are skipped by their lengths.
Status check_jpeg_complete(std::span<const uint8_t> b) {
  size_t pos = 2;  // after SOI
  while (true) {
    while (pos < b.size() && b[pos] == 0xff) ++pos;  // fill bytes
    if (pos + 2 >= b.size()) return corrupt("truncated JPEG (no scan)");
    const uint8_t marker = b[pos];
    const size_t len = (size_t{b[pos + 1]} << 8) | b[pos + 2];
    if (len < 2) return corrupt("corrupt JPEG segment length");
    pos += 1 + len;
    if (marker == 0xda) break;  // start of scan: entropy-coded data follows its header
  }
  // In entropy-coded data 0xff is always followed by 0x00 or a marker, so the first 0xff 0xd9
  // from here is the end of the image (restart markers are 0xd0..0xd7).
  for (size_t i = pos; i + 1 < b.size(); ++i) {
    if (b[i] == 0xff && b[i + 1] == 0xd9) return {};
  }
  return corrupt("truncated JPEG (no end-of-image marker)");
}

// A PNG's chunks must all fit and end with IEND. An empty first IDAT is refused too:
// stb_image would memcpy zero bytes to a null buffer for it (undefined behaviour; found by
// fuzz_mm_image_decode), and no encoder writes one.
Status check_png_complete(std::span<const uint8_t> b) {
  size_t pos = 8;
  bool seen_idat = false;
  while (pos + 12 <= b.size()) {
    const uint64_t len = be32(b, pos);
    const bool idat = std::memcmp(b.data() + pos + 4, "IDAT", 4) == 0;
    if (len > 0x7fffffffu) return corrupt("corrupt PNG chunk length");
    if (pos + 12 + len > b.size()) return corrupt("truncated PNG (a chunk runs past the end)");
    if (idat && !seen_idat && len == 0) return corrupt("corrupt PNG (empty first IDAT chunk)");
    seen_idat = seen_idat || idat;
    if (std::memcmp(b.data() + pos + 4, "IEND", 4) == 0) return {};
    pos += 12 + static_cast<size_t>(len);
  }
  return corrupt("truncated PNG (no IEND chunk)");
}

// A GIF ends with the trailer byte 0x3b (zero bytes after it are tolerated).
Status check_gif_complete(std::span<const uint8_t> b) {
  size_t end = b.size();
  while (end > 0 && b[end - 1] == 0) --end;
  if (end == 0 || b[end - 1] != 0x3b) return corrupt("truncated GIF (no trailer)");
  return {};
}

// An uncompressed BMP must hold all its rows.
Status check_bmp_complete(std::span<const uint8_t> b, const ImageInfo& info) {
  if (b.size() < 30) return corrupt("truncated BMP header");
  const uint64_t offset = le32(b, 10);
  const uint32_t header = le32(b, 14);
  uint32_t bpp = 0, compression = 0;
  if (header == 12) {
    bpp = le16(b, 24);
  } else if (b.size() >= 34) {
    bpp = le16(b, 28);
    compression = le32(b, 30);
  } else {
    return corrupt("truncated BMP header");
  }
  // 0 = BI_RGB, 3 = BI_BITFIELDS, 6 = BI_ALPHABITFIELDS; stb_image supports no other.
  if (compression != 0 && compression != 3 && compression != 6) return {};
  const uint64_t stride = (uint64_t(bpp) * uint64_t(info.width) + 31) / 32 * 4;
  if (offset + stride * uint64_t(info.height) > b.size()) return corrupt("truncated BMP (pixel rows missing)");
  return {};
}

RgbImage to_rgb(const detail::RawPixels& raw, AlphaPolicy alpha) {
  RgbImage out(raw.width, raw.height);
  const size_t n = size_t(raw.width) * size_t(raw.height);
  const uint8_t* src = raw.data.data();
  uint8_t* dst = out.pixels.data();
  if (raw.channels == 3) {
    out.pixels = raw.data;
    return out;
  }
  for (size_t i = 0; i < n; ++i, src += 4, dst += 3) {
    const uint32_t a = src[3];
    for (int c = 0; c < 3; ++c) {
      if (alpha == AlphaPolicy::kDrop) {
        dst[c] = src[c];
      } else {
        const uint32_t v = uint32_t{src[c]} * a + 255u * (255u - a) + 128u;
        dst[c] = static_cast<uint8_t>((v + (v >> 8)) >> 8);
      }
    }
  }
  return out;
}

Result<detail::RawPixels> decode_pixels(ImageFormat format, std::span<const uint8_t> bytes, int channels) {
  switch (format) {
    case ImageFormat::kWebp: return detail::webp_decode(bytes, channels);
    case ImageFormat::kJpeg: return detail::jpeg_decode(bytes, channels);
    default: return detail::stb_decode(bytes, channels);
  }
}

}  // namespace

Result<ImageInfo> probe_image(std::span<const uint8_t> bytes) {
  // PNG, GIF and BMP dimensions are read here rather than by stb_image, which refuses
  // large headers with a generic failure and so would hide a bomb behind "corrupt".
  ImageInfo info;
  info.format = sniff_image_format(bytes);
  int64_t w = 0, h = 0;
  switch (info.format) {
    case ImageFormat::kUnknown:
      return invalid_argument("not an image in a supported format (PNG, JPEG, GIF, BMP, WebP)");
    case ImageFormat::kWebp:
      return detail::webp_probe(bytes);
    case ImageFormat::kJpeg:
      return detail::jpeg_probe(bytes);
    case ImageFormat::kPng:
      if (bytes.size() < 24 || std::memcmp(bytes.data() + 12, "IHDR", 4) != 0) return corrupt("PNG without an IHDR header");
      w = be32(bytes, 16);
      h = be32(bytes, 20);
      break;
    case ImageFormat::kGif:
      if (bytes.size() < 10) return corrupt("truncated GIF header");
      w = le16(bytes, 6);
      h = le16(bytes, 8);
      break;
    case ImageFormat::kBmp:
      if (bytes.size() < 26) return corrupt("truncated BMP header");
      if (le32(bytes, 14) == 12) {
        w = le16(bytes, 18);
        h = le16(bytes, 20);
      } else {
        w = static_cast<int32_t>(le32(bytes, 18));
        h = static_cast<int32_t>(le32(bytes, 22));
        if (h < 0) h = -h;  // top-down rows
      }
      break;
  }
  if (w <= 0 || h <= 0) return corrupt("image header with no pixels");
  if (w > INT_MAX || h > INT_MAX) return out_of_range("image dimensions too large (decompression bomb?)");
  info.width = static_cast<int>(w);
  info.height = static_cast<int>(h);
  return info;
}

Result<RgbImage> decode_image(std::span<const uint8_t> bytes, const DecodeLimits& limits, AlphaPolicy alpha) {
  if (bytes.size() > limits.max_bytes) {
    return out_of_range("image is " + std::to_string(bytes.size()) + " bytes, more than the limit of " +
                        std::to_string(limits.max_bytes));
  }
  K2_ASSIGN_OR_RETURN(ImageInfo info, probe_image(bytes));
  const std::string dims = std::to_string(info.width) + "x" + std::to_string(info.height);
  if (info.width <= 0 || info.height <= 0) return corrupt("image has no pixels (" + dims + ")");
  if (info.width > limits.max_side || info.height > limits.max_side ||
      int64_t(info.width) * int64_t(info.height) > limits.max_pixels) {
    return out_of_range("image of " + dims + " pixels exceeds the pixel limit (decompression bomb?)");
  }
  if (info.width < limits.min_side || info.height < limits.min_side) {
    return invalid_argument("image of " + dims + " pixels is smaller than the minimum side of " +
                            std::to_string(limits.min_side));
  }
  switch (info.format) {
    case ImageFormat::kPng: K2_RETURN_IF_ERROR(check_png_complete(bytes)); break;
    case ImageFormat::kJpeg: K2_RETURN_IF_ERROR(check_jpeg_complete(bytes)); break;
    case ImageFormat::kGif: K2_RETURN_IF_ERROR(check_gif_complete(bytes)); break;
    case ImageFormat::kBmp: K2_RETURN_IF_ERROR(check_bmp_complete(bytes, info)); break;
    default: break;
  }
  const int channels = alpha == AlphaPolicy::kWhite ? 4 : 3;
  K2_ASSIGN_OR_RETURN(detail::RawPixels raw, decode_pixels(info.format, bytes, channels));
  if (raw.width != info.width || raw.height != info.height) {
    return corrupt("decoded size differs from the header's " + dims);
  }
  return to_rgb(raw, alpha);
}

}  // namespace k2::mm
