// VisionConfig: the hyper-parameters of the Kimi-K2.5/K2.6 MoonViT-3D vision tower and its
// patch-merger projector, read from config.json's `vision_config` (the HF `vt_*` keys; the
// unprefixed names vLLM reads are accepted when a `vt_*` key is absent). Nothing is inferred
// from tensor sizes. Plain value type, thread-compatible.
//
// A missing, null, mistyped or out-of-range key is an error naming it with its path
// ("vision_config.vt_hidden_size"); architecture variants the engine does not implement
// (another pos_emb_type, merge_type, projector type or activation) are kUnimplemented.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "shm/status.h"

namespace k2 {

struct VisionConfig {
  int64_t patch_size = 0;         // square patches of patch_size² pixels, 3 channels
  int64_t pos_emb_height = 0;     // init_pos_emb_height: rows of the learned 2D grid
  int64_t pos_emb_width = 0;      // init_pos_emb_width
  int64_t pos_emb_time = 0;       // init_pos_emb_time: most frames one media item may have
  int64_t hidden_size = 0;        // vt_hidden_size (D)
  int64_t intermediate_size = 0;  // vt_intermediate_size
  int64_t num_heads = 0;          // vt_num_attention_heads
  int64_t num_layers = 0;         // vt_num_hidden_layers
  int64_t merge_height = 0;       // merge_kernel_size[0]
  int64_t merge_width = 0;        // merge_kernel_size[1]
  int64_t text_hidden_size = 0;   // projector output width: vision_config.text_hidden_size, else text_config.hidden_size
  double projector_ln_eps = 1e-5;  // optional

  int64_t head_dim() const { return hidden_size / num_heads; }
  int64_t patch_values() const { return 3 * patch_size * patch_size; }  // one row of pixel_values
  int64_t merge_tokens() const { return merge_height * merge_width; }   // patches per output token
  int64_t projector_width() const { return merge_tokens() * hidden_size; }

  // Reads <dir>/config.json.
  static Result<VisionConfig> from_dir(const std::filesystem::path& dir);
  // Parses the whole config.json text (the object holding `vision_config`).
  static Result<VisionConfig> from_json_text(const std::string& text);
};

}  // namespace k2
