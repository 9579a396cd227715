// libFuzzer target: the data: URL parser (and the base64 decoder under it) on arbitrary
// text, for both media kinds, and the decoded bytes through the content-type check.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "multimodal/data_url.h"
#include "multimodal/image_format.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  for (auto kind : {k2::mm::MediaKind::kImage, k2::mm::MediaKind::kVideo}) {
    auto r = k2::mm::parse_data_url(text, kind, 1 << 16);
    if (r.ok() && kind == k2::mm::MediaKind::kImage) {
      (void)k2::mm::check_image_content_type(r->media_type, r->data);
    }
  }
  return 0;
}
