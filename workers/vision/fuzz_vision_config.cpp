// libFuzzer target: any bytes given as config.json must yield a VisionConfig or an error,
// never a crash, and an accepted config must satisfy the invariants the tower relies on.
#include <cstddef>
#include <cstdint>
#include <string>

#include "workers/vision/vision_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto config = k2::VisionConfig::from_json_text(text);
  if (!config.ok()) return 0;
  const k2::VisionConfig& c = *config;
  K2_CHECK(c.patch_size > 0 && c.hidden_size > 0 && c.num_heads > 0 && c.num_layers > 0, "accepted a zero size");
  K2_CHECK(c.hidden_size % c.num_heads == 0 && c.head_dim() % 4 == 0, "accepted a head size RoPE cannot use");
  K2_CHECK(c.merge_height > 0 && c.merge_width > 0 && c.text_hidden_size > 0, "accepted a zero width");
  K2_CHECK(c.projector_ln_eps > 0.0, "accepted a non-positive eps");
  return 0;
}
