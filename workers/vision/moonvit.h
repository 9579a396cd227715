// MoonVit: the float32 Kimi-K2.5/K2.6 vision encoder. One media item (an image, or a video
// chunk of up to init_pos_emb_time frames) goes through the MoonViT-3D tower (patch
// embedding, interpolated 2D position embedding plus the time embedding for video, 2D RoPE,
// bidirectional attention within the item, LayerNorm/GELU-tanh blocks, final LayerNorm), the
// temporal-pooling 2x2 merge (sd2_tpool) and the patch-merger projector; the result is one
// row of the text model's hidden width per media placeholder token.
//
// Every dimension comes from VisionConfig. The weights are read once from the checkpoint's
// `vision_tower.*` / `mm_projector.*` tensors, upcast to float32 and packed for the float32
// GEMM (gemm_f32.h); attention runs blocked per head over query blocks; the work of every
// layer is split over the model's own thread pool (K2_CPU_THREADS threads, default one per
// CPU the process may use).
//
// Tensor parallelism (--mm-encoder-tp-mode weights): with a Shard of size N the rank keeps
// 1/N of the attention heads (its q, k, v rows of wqkv and the matching columns of wo) and
// of the MLP width (fc0 rows, fc1 columns); the partial outputs of wo and fc1 are summed
// over the ranks with the Communicator (rank order, so every rank holds the same bits) and
// the bias added after the sum. The projector is replicated (about 3% of the FLOPs). Every
// rank must then call encode() with the same items in the same order.
//
// The model owns its weights and its thread pool. encode() is const and keeps no state
// between calls; concurrent calls on an unsharded model are safe (they take turns on the
// pool). A sharded model is used by its rank's one thread (its Communicator's rule).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "kernels/cpu/thread_pool.h"
#include "shm/status.h"
#include "workers/loader/checkpoint.h"
#include "workers/loader/progress.h"
#include "workers/models/weight_loader.h"
#include "workers/parallel/communicator.h"
#include "workers/parallel/shard.h"
#include "workers/vision/gemm_f32.h"
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
  // (the vision tensors sit beside `language_model.*`, not under it). A sharded `shard`
  // needs `comm` of that rank and size (kept, not owned); the heads and the MLP width must
  // divide by its size.
  static Result<std::unique_ptr<MoonVit>> load(const Checkpoint& checkpoint, const VisionConfig& config,
                                               ProgressStyle progress = ProgressStyle::kAuto, const Shard& shard = {},
                                               Communicator* comm = nullptr);
  // The same model with deterministic random weights (--load-format dummy); every rank of a
  // shard slices the same full tensors.
  static Result<std::unique_ptr<MoonVit>> load_dummy(const VisionConfig& config, uint64_t seed = 0,
                                                     const Shard& shard = {}, Communicator* comm = nullptr);
  // OK when the tower's heads and MLP width split over `shard`.
  static Status check_shard(const VisionConfig& config, const Shard& shard);

  const VisionConfig& config() const { return config_; }
  const Shard& shard() const { return shard_; }
  // Multiply-adds of one encode() of this grid by this rank (for FLOP/s figures).
  int64_t macs(const MediaGrid& grid) const;

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
  // y = x·Wᵀ + b with W [out, in], packed.
  struct Affine {
    vision::PackedMatrix weight;
    std::vector<float> bias;  // [out]
    int64_t in() const { return weight.k(); }
    int64_t out() const { return weight.n(); }
  };
  struct LayerNorm {
    TensorF32 weight, bias;
  };
  // This rank's part of a block: wqkv [3·local_width, D] (q, k, v rows of its heads), wo
  // [D, local_width], fc0 [local_mlp, D], fc1 [D, local_mlp]; wo and fc1 keep the full bias.
  struct Block {
    LayerNorm norm0, norm1;
    Affine wqkv, wo, fc0, fc1;
  };
  struct Scratch;  // one encode()'s buffers, reused across layers

  static Result<std::unique_ptr<MoonVit>> build(WeightLoader& weights, const VisionConfig& config, const Shard& shard,
                                                Communicator* comm);
  static Result<Affine> load_affine(WeightLoader& w, const std::string& module, int64_t out, int64_t in);
  static Result<LayerNorm> load_norm(WeightLoader& w, const std::string& module, int64_t dim);
  static Result<Block> load_block(WeightLoader& w, const std::string& prefix, const VisionConfig& c,
                                  const Shard& shard);

  MoonVit() = default;
  int64_t local_heads() const { return shard_.count(config_.num_heads); }
  void layer_norm(const LayerNorm& norm, const float* x, int64_t rows, float eps, float* y) const;
  void embed_patches(const MediaGrid& grid, const float* pixel_values, float* x, VisionTrace* trace) const;
  Status run_block(const Block& block, const MediaGrid& grid, float* x, Scratch& s) const;
  void attention(const float* qkv, int64_t n, float* o, Scratch& s) const;
  // x += in · layerᵀ + bias, the product summed over the ranks first when sharded.
  Status residual_add(const Affine& layer, const float* in, int64_t rows, float* x, Scratch& s) const;
  void merge(const MediaGrid& grid, const float* vt_out, float* merged) const;
  void project(const float* merged, int64_t tokens, float* out, VisionTrace* trace) const;

  VisionConfig config_;
  Shard shard_;
  Communicator* comm_ = nullptr;  // sharded only
  std::unique_ptr<cpu::ThreadPool> pool_;
  Affine patch_embed_;       // [D, 3·patch·patch]: the Conv2d with kernel = stride = patch
  TensorF32 pos_emb_;        // [init_pos_emb_height, init_pos_emb_width, D]
  std::vector<Block> blocks_;
  LayerNorm final_norm_;     // [D]
  LayerNorm pre_norm_;       // [D]    projector
  Affine proj0_, proj2_;     // [4D, 4D], [text_hidden, 4D]
  std::vector<float> rope_inv_freq_;  // [head_dim / 4]
};

}  // namespace k2
