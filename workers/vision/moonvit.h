// MoonVit: the float32 Kimi-K2.5/K2.6 vision encoder. One media item (an image, or a video
// chunk of up to init_pos_emb_time frames) goes through the MoonViT-3D tower (patch
// embedding, interpolated 2D position embedding plus the time embedding for video, 2D RoPE,
// bidirectional attention within the item, LayerNorm/GELU-tanh blocks, final LayerNorm), the
// temporal-pooling 2x2 merge (sd2_tpool) and the patch-merger projector; the result is one
// row of the text model's hidden width per media placeholder token.
//
// Every dimension comes from VisionConfig. The weights are read once from the checkpoint's
// `vision_tower.*` / `mm_projector.*` tensors and upcast to float32; the model owns them and
// nothing else. encode() is const and keeps no state: concurrent calls are safe.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "shm/status.h"
#include "workers/loader/checkpoint.h"
#include "workers/loader/progress.h"
#include "workers/models/weight_loader.h"
#include "workers/vision/vision_config.h"

namespace k2 {

// grid_thw of one media item: frames, patch rows, patch columns.
struct MediaGrid {
  int64_t t = 0, h = 0, w = 0;
  int64_t patches() const { return t * h * w; }
};

// The projected rows of one media item, [tokens, width] row-major (width = text hidden size):
// these replace the embeddings at the item's placeholder positions, in order.
struct MediaEmbedding {
  int64_t tokens = 0;
  int64_t width = 0;
  std::vector<float> data;
  const float* row(int64_t i) const { return data.data() + i * width; }
};

// Intermediate tensors of one encode() (the golden set's names), for checks and debugging.
struct VisionTrace {
  std::vector<float> patch_embed;  // [N, D]   patches · W_patchᵀ + b
  std::vector<float> pos_emb;      // [N, D]   what is added to it (spatial + time)
  std::vector<float> block0;       // [N, D]   residual stream after encoder block 0
  std::vector<float> vt_out;       // [N, D]   after final_layernorm
  std::vector<float> merged;       // [tokens, merge_h·merge_w, D]
  std::vector<float> proj_act;     // [tokens, merge_h·merge_w·D]  GELU output in the projector
};

class MoonVit {
 public:
  // Reads the vision weights from `checkpoint`, which must be opened without a tensor prefix
  // (the vision tensors sit beside `language_model.*`, not under it).
  static Result<std::unique_ptr<MoonVit>> load(const Checkpoint& checkpoint, const VisionConfig& config,
                                               ProgressStyle progress = ProgressStyle::kAuto);
  // The same model with deterministic random weights (--load-format dummy).
  static Result<std::unique_ptr<MoonVit>> load_dummy(const VisionConfig& config, uint64_t seed = 0);

  const VisionConfig& config() const { return config_; }

  // The placeholder tokens an item of this grid becomes; an error if the grid is not one
  // this model can encode (no frames, more frames than init_pos_emb_time, sides not a
  // multiple of the merge kernel, too large).
  Result<int64_t> num_tokens(const MediaGrid& grid) const;

  // Encodes one media item. pixel_values is [grid.patches(), 3, patch, patch] in the
  // preprocessor's order (frame, row, column; inside a patch channel, y, x).
  // Returns [num_tokens(grid), text_hidden_size].
  Result<MediaEmbedding> encode(const MediaGrid& grid, std::span<const float> pixel_values,
                                VisionTrace* trace = nullptr) const;

 private:
  // y = x·Wᵀ + b with W [out, in].
  struct Affine {
    TensorF32 weight, bias;
    int64_t in() const { return weight.shape[1]; }
    int64_t out() const { return weight.shape[0]; }
    void forward(const float* x, int64_t rows, float* y) const;
  };
  struct LayerNorm {
    TensorF32 weight, bias;
    void forward(const float* x, int64_t rows, float eps, float* y) const;
  };
  struct Block {
    LayerNorm norm0, norm1;
    Affine wqkv, wo, fc0, fc1;
  };

  static Result<std::unique_ptr<MoonVit>> build(WeightLoader& weights, const VisionConfig& config);
  static Result<Affine> load_affine(WeightLoader& w, const std::string& module, int64_t out, int64_t in);
  static Result<LayerNorm> load_norm(WeightLoader& w, const std::string& module, int64_t dim);

  MoonVit() = default;
  void embed_patches(const MediaGrid& grid, const float* pixel_values, float* x, VisionTrace* trace) const;
  void run_block(const Block& block, const MediaGrid& grid, float* x) const;
  void merge(const MediaGrid& grid, const float* vt_out, float* merged) const;
  void project(const float* merged, int64_t tokens, float* out, VisionTrace* trace) const;

  VisionConfig config_;
  Affine patch_embed_;       // [D, 3·patch·patch]: the Conv2d with kernel = stride = patch
  TensorF32 pos_emb_;        // [init_pos_emb_height, init_pos_emb_width, D]
  std::vector<Block> blocks_;
  LayerNorm final_norm_;     // [D]
  LayerNorm pre_norm_;       // [D]    projector
  Affine proj0_, proj2_;     // [4D, 4D], [text_hidden, 4D]
  std::vector<float> rope_inv_freq_;  // [head_dim / 4]
};

}  // namespace k2
