// Which frames of a video become media items, and the prompt text of each chunk (README of
// the vision goldens, section 4.5; kimi-spec section 7.3). Decoding is not done here: the
// caller decodes the sampled frames and hands them to preprocess_video_chunk. Pure
// functions: thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "multimodal/media_proc_config.h"
#include "shm/status.h"

namespace k2::mm {

// n = max(round(N * min(sample_fps, fps) / fps), 1) indices at linspace(0, N - 1, n),
// rounded half to even as numpy does. When max_num_frames_each_video is set, n is capped
// at it (an assumption: the golden set leaves it null).
Result<std::vector<int64_t>> sample_frame_indices(int64_t num_frames, double fps, const MediaProcConfig& cfg);

struct VideoChunkPlan {
  std::vector<int64_t> frame_indices;  // source frame indices, at most temporal_merge_kernel_size
  double start_seconds = 0;            // source time of the first frame: index / fps
};

// Groups the sampled indices into chunks of temporal_merge_kernel_size (the last may be
// shorter).
Result<std::vector<VideoChunkPlan>> plan_video_chunks(int64_t num_frames, double fps, const MediaProcConfig& cfg);

// "hh:mm:ss.fff" (the only timestamp_mode the reference defines); milliseconds rounded.
std::string format_timestamp(double seconds);

// The prompt text that stands for one chunk:
// "{timestamp}<|media_begin|>video<|media_content|><|media_pad|><|media_end|>". The caller
// expands <|media_pad|> to the chunk's num_tokens.
std::string video_chunk_prompt(const VideoChunkPlan& chunk);

}  // namespace k2::mm
