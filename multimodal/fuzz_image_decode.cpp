// libFuzzer target: the image decode entry point (every format, both alpha policies) with
// small caps so the fuzzer explores headers and truncation rather than big allocations.
#include <cstddef>
#include <cstdint>
#include <span>

#include "multimodal/image_decode.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  k2::mm::DecodeLimits limits;
  limits.max_pixels = 1 << 20;
  limits.max_side = 4096;
  limits.min_side = 1;
  const std::span<const uint8_t> bytes(data, size);
  (void)k2::mm::probe_image(bytes);
  for (auto alpha : {k2::mm::AlphaPolicy::kDrop, k2::mm::AlphaPolicy::kWhite}) {
    auto img = k2::mm::decode_image(bytes, limits, alpha);
    if (img.ok() && img->pixels.size() != size_t(img->width) * size_t(img->height) * 3) __builtin_trap();
  }
  return 0;
}
