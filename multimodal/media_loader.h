// MediaLoader: from the URL of an image_url / video_url content part to preprocessed
// pixel_values and the content hash the workers' encoder cache is keyed by. data: URLs are
// decoded, file:// URLs read under --allowed-local-media-path only, http(s) URLs fetched by
// HttpFetcher under the fetch policy (http_fetcher.h). A video becomes one item per chunk of
// sampled frames (video_sampling.h), each carrying the prompt text that stands for it. Every
// failure is kInvalidArgument or kOutOfRange (an HTTP 400 for that request alone), never a
// crash.
//
// Immutable after create(); load_* may run on any number of threads at once (the frontend's
// media pool does exactly that). A fetch blocks its thread for at most the fetch timeout.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "multimodal/data_url.h"
#include "multimodal/fetch_policy.h"
#include "multimodal/http_fetcher.h"
#include "multimodal/image_decode.h"
#include "multimodal/image_preprocess.h"
#include "multimodal/local_media.h"
#include "multimodal/media_hash.h"
#include "multimodal/media_proc_config.h"
#include "multimodal/video_decode.h"
#include "shm/status.h"

namespace k2::mm {

struct MediaLoaderOptions {
  // max_bytes is the cap of every source, not only remote ones; timeout is the image fetch
  // timeout (VLLM_IMAGE_FETCH_TIMEOUT).
  MediaFetchPolicy fetch;
  std::chrono::milliseconds video_fetch_timeout{30000};  // VLLM_VIDEO_FETCH_TIMEOUT
  FetchTestHooks fetch_hooks;                             // tests only
  std::optional<std::filesystem::path> allowed_local_media_path;
  DecodeLimits decode{.max_bytes = 20u << 20, .max_pixels = 89478485, .max_side = 1 << 15, .min_side = 1};
  VideoLimits video;  // max_bytes follows fetch.max_bytes
  // Moonshot's processor (and the goldens' prompts) drop alpha; vLLM's server composites on
  // white. The serving path follows the reference processor.
  AlphaPolicy alpha = AlphaPolicy::kDrop;
  // The text the chat template writes for a video part (config.json "video_placeholder");
  // the video's chunk prompts replace it.
  std::string video_placeholder = "<|kimi_k25_video_placeholder|>";
};

struct LoadedMedia {
  PreprocessedMedia media;
  ContentHash hash;
  // Video chunks only: the prompt text of this chunk (video_chunk_prompt), and whether it is
  // the first chunk of its video. Empty / false for an image.
  std::string video_chunk_prompt;
  bool first_video_chunk = false;
};

class MediaLoader {
 public:
  static Result<std::shared_ptr<const MediaLoader>> create(MediaProcConfig config, MediaLoaderOptions options);

  const MediaProcConfig& config() const { return config_; }
  const std::string& video_placeholder() const { return options_.video_placeholder; }

  // The encoded bytes a URL names (data:, file://, http(s)://); `declared_type` receives the
  // normalised media type the source declared ("" for a file, or for an http(s) response
  // without a specific type such as application/octet-stream).
  Result<std::vector<uint8_t>> read_media_bytes(std::string_view url, MediaKind kind, std::string* declared_type) const;
  Result<std::vector<uint8_t>> read_image_bytes(std::string_view url, std::string* declared_type) const {
    return read_media_bytes(url, MediaKind::kImage, declared_type);
  }
  // read_image_bytes, content-type check, decode, preprocess, hash.
  Result<LoadedMedia> load_image(std::string_view url) const;
  // read_media_bytes, content-type check, decode the sampled frames, one preprocessed and
  // hashed item per chunk, in order.
  Result<std::vector<LoadedMedia>> load_video(std::string_view url) const;

 private:
  MediaLoader(MediaProcConfig config, MediaLoaderOptions options, std::optional<LocalMediaDir> local,
              std::shared_ptr<const HttpFetcher> fetcher)
      : config_(std::move(config)), options_(std::move(options)), local_(std::move(local)), fetcher_(std::move(fetcher)) {}

  MediaProcConfig config_;
  MediaLoaderOptions options_;
  std::optional<LocalMediaDir> local_;
  std::shared_ptr<const HttpFetcher> fetcher_;
};

}  // namespace k2::mm
