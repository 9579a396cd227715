// The one translation unit that compiles stb_image, for PNG, GIF and BMP only (JPEG goes to
// libjpeg-turbo: stb's JPEG decoder has known memory-safety bugs in this Debian snapshot,
// e.g. an overflow on a DHT segment with more than 256 codes, which our fuzzer found), from
// memory only, with thread-local failure strings.
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_PNG
#define STBI_ONLY_GIF
#define STBI_ONLY_BMP
#define STBI_NO_STDIO
#define STBI_NO_LINEAR
#define STBI_NO_HDR
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wunused-but-set-variable"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#pragma GCC diagnostic ignored "-Wdouble-promotion"
#endif
#include <stb/stb_image.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

#include <climits>
#include <cstring>
#include <memory>
#include <string>

#include "multimodal/image_codecs.h"

namespace k2::mm::detail {
namespace {

std::string reason() {
  const char* r = stbi_failure_reason();
  return r ? r : "unknown error";
}

}  // namespace

Result<RawPixels> stb_decode(std::span<const uint8_t> bytes, int channels) {
  if (bytes.size() > INT_MAX) return out_of_range("image too large to decode");
  RawPixels out;
  int in_file = 0;
  std::unique_ptr<stbi_uc, void (*)(void*)> data(
      stbi_load_from_memory(bytes.data(), static_cast<int>(bytes.size()), &out.width, &out.height, &in_file, channels),
      stbi_image_free);
  if (!data) {
    return corrupt(std::string("cannot decode the ") + image_format_name(sniff_image_format(bytes)) + " image: " + reason());
  }
  out.channels = channels;
  out.data.assign(data.get(), data.get() + size_t(out.width) * size_t(out.height) * size_t(channels));
  return out;
}

}  // namespace k2::mm::detail
