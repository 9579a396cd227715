// MediaLoader: from the URL of an image_url content part to preprocessed pixel_values and
// the content hash the workers' encoder cache is keyed by. data: URLs are decoded, file://
// URLs read under --allowed-local-media-path only, http(s) URLs are checked against the
// fetch policy (fetching them is not implemented yet: a checked URL is refused with a
// message saying so). Every failure is kInvalidArgument or kOutOfRange (an HTTP 400 for that
// request alone), never a crash.
//
// Immutable after create(); load_* may run on any number of threads at once (the frontend's
// media pool does exactly that).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string_view>

#include "multimodal/fetch_policy.h"
#include "multimodal/image_decode.h"
#include "multimodal/image_preprocess.h"
#include "multimodal/local_media.h"
#include "multimodal/media_proc_config.h"
#include "shm/status.h"

namespace k2::mm {

struct MediaLoaderOptions {
  MediaFetchPolicy fetch;  // max_bytes is the cap of every source, not only remote ones
  std::optional<std::filesystem::path> allowed_local_media_path;
  DecodeLimits decode{.max_bytes = 20u << 20, .max_pixels = 89478485, .max_side = 1 << 15, .min_side = 1};
  // Moonshot's processor (and the goldens' prompts) drop alpha; vLLM's server composites on
  // white. The serving path follows the reference processor.
  AlphaPolicy alpha = AlphaPolicy::kDrop;
};

struct ContentHash {
  uint64_t low = 0, high = 0;
  bool operator==(const ContentHash&) const = default;
};

// XXH3-128 of the float32 pixel_values followed by grid_thw (three little-endian int64s):
// two items share a hash only when the encoder would see the same input.
ContentHash media_content_hash(const PreprocessedMedia& media);

struct LoadedMedia {
  PreprocessedMedia media;
  ContentHash hash;
};

class MediaLoader {
 public:
  static Result<std::shared_ptr<const MediaLoader>> create(MediaProcConfig config, MediaLoaderOptions options);

  const MediaProcConfig& config() const { return config_; }

  // The encoded bytes an image URL names (data:, file://); `declared_type` receives the media
  // type the source declared ("" for a file).
  Result<std::vector<uint8_t>> read_image_bytes(std::string_view url, std::string* declared_type) const;
  // read_image_bytes, content-type check, decode, preprocess, hash.
  Result<LoadedMedia> load_image(std::string_view url) const;

 private:
  MediaLoader(MediaProcConfig config, MediaLoaderOptions options, std::optional<LocalMediaDir> local)
      : config_(std::move(config)), options_(std::move(options)), local_(std::move(local)) {}

  MediaProcConfig config_;
  MediaLoaderOptions options_;
  std::optional<LocalMediaDir> local_;
};

}  // namespace k2::mm
