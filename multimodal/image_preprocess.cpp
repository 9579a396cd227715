#include "multimodal/image_preprocess.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "multimodal/pil_resize.h"

namespace k2::mm {
namespace {

// float32(p / 255.0) (division in double), then (x - mean) / std in float32: for mean = std =
// 0.5 this is exactly vLLM's fused table float32((float32(p) / 255f - 0.5f) * 2f).
std::array<std::array<float, 256>, 3> normalisation_tables(const MediaProcConfig& cfg) {
  std::array<std::array<float, 256>, 3> t{};
  for (int c = 0; c < 3; ++c) {
    const float mean = static_cast<float>(cfg.image_mean[c]);
    const float std = static_cast<float>(cfg.image_std[c]);
    for (int p = 0; p < 256; ++p) {
      const float x = static_cast<float>(p / 255.0);
      t[c][p] = (x - mean) / std;
    }
  }
  return t;
}

// Writes one padded frame's patches at `out` (grid_h * grid_w patches).
void patchify_frame(const RgbImage& img, const TargetSize& size, int patch,
                    const std::array<std::array<float, 256>, 3>& lut, float* out) {
  const size_t patch_area = size_t(patch) * size_t(patch);
  for (int64_t gy = 0; gy < size.grid_h; ++gy) {
    for (int64_t gx = 0; gx < size.grid_w; ++gx) {
      float* dst = out + size_t(gy * size.grid_w + gx) * 3 * patch_area;
      for (int c = 0; c < 3; ++c) {
        for (int py = 0; py < patch; ++py) {
          const int64_t y = gy * patch + py;
          for (int px = 0; px < patch; ++px) {
            const int64_t x = gx * patch + px;
            // Padding is pixel value 0 (normalises to -1 for the default mean/std).
            const uint8_t v = (y < img.height && x < img.width) ? img.row(int(y))[size_t(x) * 3 + size_t(c)] : 0;
            dst[size_t(c) * patch_area + size_t(py) * size_t(patch) + size_t(px)] = lut[c][v];
          }
        }
      }
    }
  }
}

Result<PreprocessedMedia> preprocess_frames(std::span<const RgbImage> frames, int64_t patch_limit,
                                            const MediaProcConfig& cfg) {
  if (frames.empty()) return invalid_argument("no frames to preprocess");
  const RgbImage& first = frames[0];
  for (const RgbImage& f : frames) {
    if (f.width <= 0 || f.height <= 0 || f.pixels.size() != size_t(f.width) * size_t(f.height) * 3) {
      return invalid_argument("preprocess: empty or malformed image");
    }
    if (f.width != first.width || f.height != first.height) {
      return invalid_argument("video frames of one chunk differ in size");
    }
  }
  PreprocessedMedia out;
  K2_ASSIGN_OR_RETURN(out.size, compute_target_size(first.width, first.height, patch_limit, cfg));
  const int64_t t = static_cast<int64_t>(frames.size());
  out.grid_thw = {t, out.size.grid_h, out.size.grid_w};
  out.num_tokens = out.size.num_tokens;
  const int patch = cfg.patch_size;
  const size_t per_frame = size_t(out.size.grid_h * out.size.grid_w) * 3 * size_t(patch) * size_t(patch);
  out.pixel_values.resize(per_frame * size_t(t));
  const auto lut = normalisation_tables(cfg);
  for (size_t i = 0; i < frames.size(); ++i) {
    if (out.size.new_width == first.width && out.size.new_height == first.height) {
      patchify_frame(frames[i], out.size, patch, lut, out.pixel_values.data() + i * per_frame);
    } else {
      K2_ASSIGN_OR_RETURN(RgbImage resized, resize_bicubic_pil(frames[i], out.size.new_width, out.size.new_height));
      patchify_frame(resized, out.size, patch, lut, out.pixel_values.data() + i * per_frame);
    }
  }
  return out;
}

}  // namespace

int64_t image_patch_limit(const MediaProcConfig& cfg) { return cfg.in_patch_limit; }

int64_t video_patch_limit(const MediaProcConfig& cfg, int frames) {
  int64_t limit = cfg.in_patch_limit_each_frame.value_or(cfg.in_patch_limit);
  if (cfg.in_patch_limit_video && frames > 0) {
    // Python's round(): half to even, which nearbyint does in the default rounding mode.
    const auto per_frame = static_cast<int64_t>(std::nearbyint(double(*cfg.in_patch_limit_video) / frames));
    limit = std::min(per_frame, limit);
  }
  return limit;
}

Result<TargetSize> compute_target_size(int width, int height, int64_t patch_limit, const MediaProcConfig& cfg) {
  if (width <= 0 || height <= 0) return invalid_argument("image has no pixels");
  if (patch_limit <= 0) return invalid_argument("patch limit must be positive");
  if (cfg.fixed_output_tokens) return unimplemented("media_proc_cfg.fixed_output_tokens is not supported");
  const int patch = cfg.patch_size;
  const double side_limit = double(cfg.patch_limit_on_one_side * patch);
  const double w = width, h = height;
  const double s1 = std::sqrt(double(patch_limit) / (std::max(1.0, double(width / patch)) *
                                                     std::max(1.0, double(height / patch))));
  const double s2 = side_limit / w;
  const double s3 = side_limit / h;
  TargetSize t;
  t.scale = std::min({1.0, s1, s2, s3});
  const int64_t max_side = cfg.patch_limit_on_one_side * patch;
  t.new_width = static_cast<int>(std::min<int64_t>(std::max<int64_t>(1, static_cast<int64_t>(w * t.scale)), max_side));
  t.new_height = static_cast<int>(std::min<int64_t>(std::max<int64_t>(1, static_cast<int64_t>(h * t.scale)), max_side));
  const int factor = cfg.pad_factor();
  t.pad_width = (factor - t.new_width % factor) % factor;
  t.pad_height = (factor - t.new_height % factor) % factor;
  t.grid_w = (t.new_width + t.pad_width) / patch;
  t.grid_h = (t.new_height + t.pad_height) / patch;
  const int64_t tokens_w = (t.new_width + t.pad_width) / factor;
  const int64_t tokens_h = (t.new_height + t.pad_height) / factor;
  // Moonshot's processor asserts this; with s <= s2, s3 it holds unless the config is odd.
  if (tokens_w * cfg.merge_kernel_size > cfg.patch_limit_on_one_side ||
      tokens_h * cfg.merge_kernel_size > cfg.patch_limit_on_one_side) {
    return invalid_argument("image of " + std::to_string(width) + "x" + std::to_string(height) +
                            " exceeds patch_limit_on_one_side after padding");
  }
  t.num_tokens = tokens_w * tokens_h;
  return t;
}

Result<PreprocessedMedia> preprocess_image(const RgbImage& image, const MediaProcConfig& cfg) {
  return preprocess_frames(std::span<const RgbImage>(&image, 1), image_patch_limit(cfg), cfg);
}

Result<PreprocessedMedia> preprocess_video_chunk(std::span<const RgbImage> frames, const MediaProcConfig& cfg) {
  if (frames.size() > size_t(cfg.temporal_merge_kernel_size)) {
    return invalid_argument("a video chunk holds at most temporal_merge_kernel_size frames");
  }
  return preprocess_frames(frames, video_patch_limit(cfg, static_cast<int>(frames.size())), cfg);
}

}  // namespace k2::mm
