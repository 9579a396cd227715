#include "multimodal/video_sampling.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace k2::mm {

Result<std::vector<int64_t>> sample_frame_indices(int64_t num_frames, double fps, const MediaProcConfig& cfg) {
  if (num_frames <= 0) return invalid_argument("video has no frames");
  if (!(fps > 0) || !std::isfinite(fps)) return invalid_argument("video frame rate must be positive");
  const double wanted = std::nearbyint(double(num_frames) * std::min(cfg.sample_fps, fps) / fps);
  int64_t n = std::max<int64_t>(static_cast<int64_t>(wanted), 1);
  if (cfg.max_num_frames_each_video) n = std::min(n, *cfg.max_num_frames_each_video);
  std::vector<int64_t> out(static_cast<size_t>(n));
  if (n == 1) {
    out[0] = 0;
    return out;
  }
  // numpy.linspace: start + i * step with step = (stop - start) / (n - 1), last = stop.
  const double stop = double(num_frames - 1);
  const double step = stop / double(n - 1);
  for (int64_t i = 0; i < n; ++i) {
    const double v = i == n - 1 ? stop : double(i) * step;
    out[size_t(i)] = static_cast<int64_t>(std::nearbyint(v));
  }
  return out;
}

Result<std::vector<VideoChunkPlan>> plan_video_chunks(int64_t num_frames, double fps, const MediaProcConfig& cfg) {
  K2_ASSIGN_OR_RETURN(std::vector<int64_t> indices, sample_frame_indices(num_frames, fps, cfg));
  std::vector<VideoChunkPlan> chunks;
  const size_t k = size_t(cfg.temporal_merge_kernel_size);
  for (size_t i = 0; i < indices.size(); i += k) {
    VideoChunkPlan c;
    c.frame_indices.assign(indices.begin() + long(i), indices.begin() + long(std::min(i + k, indices.size())));
    c.start_seconds = double(c.frame_indices.front()) / fps;
    chunks.push_back(std::move(c));
  }
  return chunks;
}

std::string format_timestamp(double seconds) {
  if (!(seconds > 0) || !std::isfinite(seconds)) seconds = 0;
  const auto ms_total = static_cast<int64_t>(std::llround(seconds * 1000.0));
  const int64_t ms = ms_total % 1000, s = ms_total / 1000 % 60, m = ms_total / 60000 % 60, h = ms_total / 3600000;
  char buf[48];
  std::snprintf(buf, sizeof(buf), "%02lld:%02lld:%02lld.%03lld", static_cast<long long>(h), static_cast<long long>(m),
                static_cast<long long>(s), static_cast<long long>(ms));
  return buf;
}

std::string video_chunk_prompt(const VideoChunkPlan& chunk) {
  return format_timestamp(chunk.start_seconds) + "<|media_begin|>video<|media_content|><|media_pad|><|media_end|>";
}

}  // namespace k2::mm
