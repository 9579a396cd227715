// Moonshot's Kimi-K2.5 image/video preprocessing (media_utils.py / KimiK25VisionProcessor;
// README of tests/data/models/tiny-k25-vision, section 4): target size under the patch
// limits (never upscaling), PIL bicubic resize, zero padding to the merge factor,
// normalisation and patchify. PreprocessedMedia owns its tensor. Pure functions:
// thread-safe, so a pool can run many at once.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <vector>

#include "multimodal/image.h"
#include "multimodal/media_proc_config.h"
#include "shm/status.h"

namespace k2::mm {

struct TargetSize {
  int new_width = 0, new_height = 0;  // after the resize (equal to the input when s == 1)
  int pad_width = 0, pad_height = 0;  // zero columns on the right, rows at the bottom
  int64_t grid_h = 0, grid_w = 0;     // padded size / patch_size
  int64_t num_tokens = 0;             // (padded_h / factor) * (padded_w / factor)
  double scale = 1.0;                 // min(1, s1, s2, s3)
};

// The patch limit of an image, and of a video chunk of `frames` frames.
int64_t image_patch_limit(const MediaProcConfig& cfg);
int64_t video_patch_limit(const MediaProcConfig& cfg, int frames);

// Section 4.2, in IEEE double in the reference's order of evaluation.
Result<TargetSize> compute_target_size(int width, int height, int64_t patch_limit, const MediaProcConfig& cfg);

struct PreprocessedMedia {
  // [T * grid_h * grid_w, 3, patch, patch] float32: patches by frame, row, column; inside a
  // patch by channel, y, x.
  std::vector<float> pixel_values;
  std::array<int64_t, 3> grid_thw{};  // T, grid_h, grid_w
  int64_t num_tokens = 0;             // <|media_pad|> copies this item expands to
  TargetSize size;

  int64_t num_patches() const { return grid_thw[0] * grid_thw[1] * grid_thw[2]; }
};

// One image (T = 1).
Result<PreprocessedMedia> preprocess_image(const RgbImage& image, const MediaProcConfig& cfg);

// One video chunk: 1..temporal_merge_kernel_size frames, all sized from the first frame
// (the others must have its dimensions).
Result<PreprocessedMedia> preprocess_video_chunk(std::span<const RgbImage> frames, const MediaProcConfig& cfg);

}  // namespace k2::mm
