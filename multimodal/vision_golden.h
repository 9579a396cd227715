// Test-only: the tiny-k25-vision golden set (golden.json, golden.safetensors,
// preprocessor_config.json) and the exact comparison of a preprocessed item with its golden
// grid_thw and pixel_values (README section 10.2: exact). Shared by the image and the video
// tests so both compare the same way. Immutable after open(): thread-safe to read.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "multimodal/image_preprocess.h"
#include "multimodal/media_proc_config.h"
#include "shm/status.h"
#include "workers/loader/safetensors.h"

namespace k2::mm::testing {

class VisionGoldenSet {
 public:
  // `dir` holds golden.json, golden.safetensors and preprocessor_config.json.
  static Result<std::unique_ptr<VisionGoldenSet>> open(const std::string& dir);

  const std::string& dir() const { return dir_; }
  const nlohmann::json& json() const { return json_; }
  const MediaProcConfig& config() const { return config_; }
  const SafetensorsFile& tensors() const { return *tensors_; }
  // The golden.json entry of media item `name`.
  const nlohmann::json* media(const std::string& name) const;

 private:
  std::string dir_;
  nlohmann::json json_;
  MediaProcConfig config_;
  std::unique_ptr<SafetensorsFile> tensors_;
};

// GoogleTest expectations: grid_thw and pixel_values of `pre` equal media.<name>.* bit for bit.
void expect_matches_golden(const VisionGoldenSet& golden, const std::string& name, const PreprocessedMedia& pre);

}  // namespace k2::mm::testing
