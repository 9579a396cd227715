// libFuzzer target: video bytes through the container probe, frame counting, sampling,
// decoding and RGB conversion (video_decode.h) and the chunk preprocessing, as MediaLoader
// runs them, with small
// limits so that a hostile header cannot make one input slow.
#include <cstddef>
#include <cstdint>
#include <span>

#include "multimodal/image_preprocess.h"
#include "multimodal/video_decode.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  k2::mm::MediaProcConfig cfg;
  cfg.patch_size = 14;
  cfg.merge_kernel_size = 2;
  cfg.temporal_merge_kernel_size = 4;
  cfg.in_patch_limit = 128;
  cfg.patch_limit_on_one_side = 32;
  cfg.in_patch_limit_each_frame = 12;
  cfg.sample_fps = 2.0;
  cfg.timestamp_mode = "hh:mm:ss.fff";
  cfg.image_mean = {0.5, 0.5, 0.5};
  cfg.image_std = {0.5, 0.5, 0.5};
  k2::mm::VideoLimits limits;
  limits.max_bytes = 1 << 20;
  limits.max_frame_pixels = 256 * 256;
  limits.max_side = 1024;
  limits.max_source_frames = 2000;
  limits.max_sampled_frames = 32;
  // The server's path: chunks streamed out of the decoder into the preprocessing.
  size_t chunks = 0;
  auto plan = k2::mm::decode_video_chunks(
      std::span<const uint8_t>(data, size), cfg, limits,
      [&](size_t index, const k2::mm::VideoChunkPlan& chunk, std::span<const k2::mm::RgbImage> frames) -> k2::Status {
        if (index != chunks++ || frames.size() != chunk.frame_indices.size()) __builtin_trap();
        return k2::mm::preprocess_video_chunk(frames, cfg).status();
      });
  if (plan.ok() && chunks != plan->chunks.size()) __builtin_trap();
  return 0;
}
