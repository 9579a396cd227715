// WebP through libwebp. Built without it (K2_HAVE_WEBP unset), WebP is kUnimplemented.
#include <string>

#include "multimodal/image_codecs.h"

#ifdef K2_HAVE_WEBP
#include <webp/decode.h>
#endif

namespace k2::mm::detail {

#ifdef K2_HAVE_WEBP
namespace {

Result<WebPBitstreamFeatures> features(std::span<const uint8_t> bytes) {
  WebPBitstreamFeatures f;
  const VP8StatusCode rc = WebPGetFeatures(bytes.data(), bytes.size(), &f);
  if (rc == VP8_STATUS_NOT_ENOUGH_DATA) return corrupt("truncated WebP header");
  if (rc != VP8_STATUS_OK) return corrupt("cannot read the WebP header (status " + std::to_string(int(rc)) + ")");
  if (f.has_animation) return unimplemented("animated WebP images are not supported");
  return f;
}

}  // namespace

Result<ImageInfo> webp_probe(std::span<const uint8_t> bytes) {
  K2_ASSIGN_OR_RETURN(WebPBitstreamFeatures f, features(bytes));
  return ImageInfo{ImageFormat::kWebp, f.width, f.height};
}

Result<RawPixels> webp_decode(std::span<const uint8_t> bytes, int channels) {
  K2_ASSIGN_OR_RETURN(WebPBitstreamFeatures f, features(bytes));
  RawPixels out;
  out.width = f.width;
  out.height = f.height;
  out.channels = channels;
  const size_t stride = size_t(f.width) * size_t(channels);
  out.data.resize(stride * size_t(f.height));
  // RGB/RGBA modes give the stored (non-premultiplied) colour, as PIL's WebP plugin does.
  const uint8_t* ok =
      channels == 4
          ? WebPDecodeRGBAInto(bytes.data(), bytes.size(), out.data.data(), out.data.size(), static_cast<int>(stride))
          : WebPDecodeRGBInto(bytes.data(), bytes.size(), out.data.data(), out.data.size(), static_cast<int>(stride));
  if (ok == nullptr) return corrupt("cannot decode the WebP image (corrupt or truncated)");
  return out;
}

#else

Result<ImageInfo> webp_probe(std::span<const uint8_t>) { return unimplemented("this build has no WebP support (libwebp)"); }
Result<RawPixels> webp_decode(std::span<const uint8_t>, int) {
  return unimplemented("this build has no WebP support (libwebp)");
}

#endif

}  // namespace k2::mm::detail
