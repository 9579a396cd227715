#include "multimodal/media_hash.h"

#include <xxhash.h>

#include "shm/status.h"

namespace k2::mm {

ContentHash media_content_hash(const PreprocessedMedia& media) {
  XXH3_state_t* state = XXH3_createState();
  K2_CHECK(state != nullptr, "XXH3_createState failed");
  XXH3_128bits_reset(state);
  XXH3_128bits_update(state, media.pixel_values.data(), media.pixel_values.size() * sizeof(float));
  XXH3_128bits_update(state, media.grid_thw.data(), sizeof(media.grid_thw));
  const XXH128_hash_t h = XXH3_128bits_digest(state);
  XXH3_freeState(state);
  return ContentHash{h.low64, h.high64};
}

}  // namespace k2::mm
