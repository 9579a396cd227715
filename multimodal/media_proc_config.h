// media_proc_cfg from a Kimi-K2.5 preprocessor_config.json: the limits and constants of
// Moonshot's image/video processor. A value type; thread-compatible.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "shm/status.h"

namespace k2::mm {

struct MediaProcConfig {
  int patch_size = 0;
  int merge_kernel_size = 0;
  int temporal_merge_kernel_size = 0;
  int64_t in_patch_limit = 0;
  int64_t patch_limit_on_one_side = 0;
  std::optional<int64_t> in_patch_limit_each_frame;
  std::optional<int64_t> in_patch_limit_video;
  std::optional<int64_t> fixed_output_tokens;
  std::optional<int64_t> max_num_frames_each_video;
  double sample_fps = 0;
  std::string timestamp_mode;
  std::array<double, 3> image_mean{};
  std::array<double, 3> image_std{};

  // merge_kernel_size * patch_size: padded sides are multiples of it.
  int pad_factor() const { return merge_kernel_size * patch_size; }
};

// Parses the JSON text of preprocessor_config.json (the object under "media_proc_cfg").
// Missing required keys, wrong types or non-positive sizes are errors.
Result<MediaProcConfig> parse_media_proc_config(std::string_view json_text);
Result<MediaProcConfig> load_media_proc_config(const std::filesystem::path& path);

}  // namespace k2::mm
