// WeightLoader: reads the float32 weights of a model from a Checkpoint, checks every shape
// against what the config says it must be, and reports progress in checkpoint bytes. Without
// a checkpoint it makes dummy weights (vLLM's --load-format dummy): deterministic random
// values in the shapes the config implies, norms at one and router biases at zero, so a
// model of any size can be run without its files.
//
// Borrows the Checkpoint and the ProgressReporter (both must outlive it). Not thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "shm/status.h"
#include "workers/loader/checkpoint.h"
#include "workers/loader/progress.h"
#include "workers/models/linear.h"

namespace k2 {

class WeightLoader {
 public:
  WeightLoader(const Checkpoint& checkpoint, ProgressReporter* progress)
      : checkpoint_(&checkpoint), progress_(progress) {}
  // Dummy weights, drawn from `seed`.
  explicit WeightLoader(uint64_t seed) : seed_(seed) {}

  // A Linear's weight [out, in] (BF16, FP8 block or INT4 pack-quantized; `module` without
  // ".weight"). Under a kBf16 request an FP8-block matrix is kept as FP8 (WeightLayout::kFp8,
  // its bytes repacked, never widened) when its blocks fit the fp8 kernels' layout
  // (cpu::fp8_packable), else dequantised to float32 as before; shards too when they start on
  // a block boundary.
  Result<TensorF32> linear(const std::string& module, int64_t out, int64_t in);
  // The same, kept in `layout` (packed at once, so only one float copy exists at a time).
  // kInt4 repacks an INT4 pack-quantized tensor as stored, or quantises a float one in
  // groups of int4_group().
  Result<Linear> linear(const std::string& module, int64_t out, int64_t in, WeightLayout layout);
  // Rows [first, first + count) of the weight [out, in] (a tensor-parallel rank's output
  // slice: its heads, its part of an MLP width), kept in `layout`.
  Result<Linear> linear_rows(const std::string& module, int64_t out, int64_t in, int64_t first, int64_t count,
                             WeightLayout layout);
  // Columns [first, first + count) of the weight [out, in] (a rank's input slice: o_proj
  // over its heads, down_proj over its part of the width), kept in `layout`.
  Result<Linear> linear_columns(const std::string& module, int64_t out, int64_t in, int64_t first, int64_t count,
                                WeightLayout layout);
  void set_int4_group(int64_t group) { int4_group_ = group; }
  // The checkpoint's FP8 block size (quantization_config.weight_block_size). Unset, it is
  // read from the checkpoint directory's config.json at the first FP8 matrix.
  void set_fp8_block(int64_t block_out, int64_t block_in) { fp8_block_ = FpBlock{block_out, block_in}; }
  // A plain float tensor of exactly this shape (norm weights, biases, embeddings).
  Result<TensorF32> tensor(const std::string& name, std::initializer_list<int64_t> shape);

 private:
  void account(const std::string& name);
  // A plain BF16/F16/F32 weight packed to bf16 or int8 a few rows at a time, dropping the
  // mapped pages it has consumed as it goes; nullopt when the tensor is stored otherwise
  // (FP8 blocks, INT4), which then takes the whole-tensor path.
  Result<std::optional<Linear>> streamed(const std::string& module, int64_t out, int64_t in, WeightLayout layout);
  Result<Linear> int4_as_stored(const std::string& module, int64_t out, int64_t in, int64_t row0 = 0,
                                int64_t rows = -1, int64_t col0 = 0, int64_t cols = -1);
  Result<Linear> sliced(const std::string& module, int64_t out, int64_t in, int64_t row0, int64_t rows, int64_t col0,
                        int64_t cols, WeightLayout layout);
  // The FP8 matrix `module` (rows [row0, row0 + rows), columns [col0, col0 + cols)) packed as
  // stored; nullopt when it is not FP8 or cannot be packed so (then it is dequantised).
  Result<std::optional<Linear>> fp8_as_stored(const std::string& module, int64_t out, int64_t in, int64_t row0,
                                              int64_t rows, int64_t col0, int64_t cols);
  TensorF32 dummy(const std::string& name, std::vector<int64_t> shape) const;

  const Checkpoint* checkpoint_ = nullptr;
  ProgressReporter* progress_ = nullptr;
  uint64_t seed_ = 0;
  int64_t int4_group_ = 32;
  struct FpBlock {
    int64_t out = 0, in = 0;
  };
  std::optional<FpBlock> fp8_block_;
};

}  // namespace k2
