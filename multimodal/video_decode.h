// Decoding untrusted video bytes (a data: URL, a file:// file or an http(s) body, always in
// memory) with FFmpeg's libavformat/libavcodec/libswscale into the RGB frames the video
// preprocessing samples (video_sampling.h). The input never reaches a file or a network
// protocol: libavformat reads through a memory AVIOContext, only a list of container
// formats is probed (no playlists or concat lists that open other URLs) and nested opens
// are refused. Malformed, truncated or oversized input is an error value
// (kInvalidArgument / kOutOfRange / kCorrupt), never a crash. Pure functions: thread-safe
// (each call owns its FFmpeg contexts).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "multimodal/image.h"
#include "multimodal/media_proc_config.h"
#include "multimodal/video_sampling.h"
#include "shm/status.h"

namespace k2::mm {

struct VideoLimits {
  size_t max_bytes = 20u << 20;      // encoded size (--max-media-bytes)
  int64_t max_frame_pixels = 1 << 24;  // width*height of one frame, checked before decoding
  int max_side = 1 << 14;
  int64_t max_source_frames = 1 << 17;  // frames in the stream (counted without decoding)
  int64_t max_sampled_frames = 512;     // frames kept after sampling (each is preprocessed)
};

struct VideoInfo {
  int width = 0;
  int height = 0;
  int64_t num_frames = 0;  // counted from the stream's packets
  double fps = 0;          // the stream's average frame rate (else its base rate)
};

// Container and stream facts only; nothing is decoded.
Result<VideoInfo> probe_video(std::span<const uint8_t> bytes, const VideoLimits& limits);

struct SampledVideo {
  VideoInfo info;
  std::vector<VideoChunkPlan> chunks;  // plan_video_chunks(info.num_frames, info.fps, cfg)
  // The frames of every chunk, chunk after chunk (chunks[i].frame_indices.size() each).
  std::vector<RgbImage> frames;
};

// Receives each chunk's RGB frames as soon as the last of them is decoded; the frames are
// released when it returns, so at most one chunk of full-size frames is alive at a time (a
// long high-resolution video never holds all its sampled frames). An error stops decoding
// and is returned.
using VideoChunkSink = std::function<Status(size_t chunk, const VideoChunkPlan& plan, std::span<const RgbImage> frames)>;

// probe_video, plan_video_chunks, then decodes the stream once in presentation order,
// converts exactly the sampled frames to RGB24 and hands them to `sink` chunk by chunk, in
// order. A stream that ends before a sampled frame (truncated, or fewer decodable frames
// than packets) is kCorrupt. Returns the stream facts and the chunk plan.
struct VideoPlan {
  VideoInfo info;
  std::vector<VideoChunkPlan> chunks;
};
Result<VideoPlan> decode_video_chunks(std::span<const uint8_t> bytes, const MediaProcConfig& cfg, const VideoLimits& limits,
                                      const VideoChunkSink& sink);

// decode_video_chunks keeping every sampled frame (tests and tools; the server streams).
Result<SampledVideo> decode_sampled_video(std::span<const uint8_t> bytes, const MediaProcConfig& cfg, const VideoLimits& limits);

}  // namespace k2::mm
