// Decoding untrusted image bytes to RGB8: PNG, JPEG, GIF (first frame) and BMP through
// stb_image, WebP through libwebp. The entry point of every image a request carries, so
// every malformed, truncated, oversized or hostile input is an error value (kInvalidArgument
// / kOutOfRange / kCorrupt / kUnimplemented), never a crash. Pure functions: thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "multimodal/image.h"
#include "multimodal/image_format.h"
#include "shm/status.h"

namespace k2::mm {

// What happens to transparency (README of the vision goldens, section 4.1):
//  kDrop:  PIL Image.convert("RGB"), as Moonshot's processor does: stored RGB kept.
//  kWhite: composited onto white as vLLM's server-side loader does:
//          out = ((v + 128) + ((v + 128) >> 8)) >> 8 with v = c*a + 255*(255 - a).
enum class AlphaPolicy { kDrop, kWhite };

struct DecodeLimits {
  size_t max_bytes = 20u << 20;     // encoded size (--max-media-bytes)
  int64_t max_pixels = 89478485;    // width*height from the header, PIL's MAX_IMAGE_PIXELS
  int max_side = 1 << 15;           // either dimension
  int min_side = 2;                 // 1x1 (or 1xN) images are refused by default
};

struct ImageInfo {
  ImageFormat format = ImageFormat::kUnknown;
  int width = 0;
  int height = 0;
};

// Reads only the header: format and dimensions. Never allocates the raster.
Result<ImageInfo> probe_image(std::span<const uint8_t> bytes);

// Checks the byte cap, probes the header and refuses a decompression bomb (pixel and side
// caps) or a too-small image before decoding anything, refuses truncated files, then decodes.
Result<RgbImage> decode_image(std::span<const uint8_t> bytes, const DecodeLimits& limits, AlphaPolicy alpha);

}  // namespace k2::mm
