// Checkpoint: the safetensors shards of one model directory, mmapped read-only.
// Owns the mappings; views it hands out stay valid while the Checkpoint lives.
// Thread-safe for concurrent reads after open() (every method is const and reads only).
//
// Errors name the file (shard, index or directory) and the tensor. Conversions to float32
// (tensor_f32 / linear_f32) allocate a new TensorF32 each call; nothing is cached here.
//
// Loading with progress (the worker): the shards are mapped lazily, so the first pass over
// the weights is where the disk is read. Either pre-fault everything once with progress,
//   ProgressReporter progress("loading " + dir.string(), ckpt.total_bytes());
//   K2_RETURN_IF_ERROR(ckpt.prefault(progress.callback()));
//   progress.finish();
// or report while converting: `progress.advance(ckpt.view(name)->bytes)` after each tensor
// (linear_bytes(module) gives the bytes a linear_f32 call reads).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "shm/status.h"
#include "workers/loader/convert.h"
#include "workers/loader/model_config.h"
#include "workers/loader/safetensors.h"

namespace k2 {

// Progress of a load: bytes done/total and seconds since start; called from the loading thread.
using LoadProgress = std::function<void(uint64_t bytes_done, uint64_t bytes_total, double seconds)>;

class Checkpoint {
 public:
  // Opens <dir>/model.safetensors.index.json (weight_map) or <dir>/model.safetensors.
  // Every shard is mmapped and its header validated once; every weight_map entry must be in
  // the shard it names. FP8 blocks default to 128x128 and INT4 groups to 32.
  static Result<Checkpoint> open(const std::filesystem::path& dir, std::string tensor_prefix = "");
  // Same, with the tensor prefix, FP8 block size and INT4 group size of `config`.
  static Result<Checkpoint> open(const std::filesystem::path& dir, const ModelConfig& config);

  // `name` is without the tensor prefix (e.g. "model.norm.weight").
  bool has(const std::string& name) const;
  Result<TensorView> view(const std::string& name) const;
  // The shard holding `name` (for messages); empty when there is no such tensor.
  std::filesystem::path file_of(const std::string& name) const;
  // Every tensor name that carries the prefix, with the prefix removed, sorted.
  std::vector<std::string> tensor_names() const;

  // Any float tensor (BF16/F16/F32/F8_E4M3 without scale) widened to float32.
  Result<TensorF32> tensor_f32(const std::string& name) const;
  // Any integer tensor (I32/I64/U8/I8) widened to int64.
  Result<std::vector<int64_t>> tensor_i64(const std::string& name) const;

  // The float32 [out, in] weight of a Linear module (`module` without ".weight"):
  // plain `.weight`, FP8 block `.weight` + `.weight_scale_inv`, or INT4 pack-quantized
  // `.weight_packed` + `.weight_scale` + `.weight_shape`, decided per tensor by which exist.
  Result<TensorF32> linear_f32(const std::string& module) const;
  // The bytes of the stored tensors that linear_f32(module) reads (0 if it has none).
  uint64_t linear_bytes(const std::string& module) const;

  // Reads every page of every shard once (in file order), calling `on_progress` every few
  // MB and at the end. Makes later tensor reads memory-speed; the pages are the kernel's page
  // cache (shared, reclaimable), not a private copy.
  Status prefault(const LoadProgress& on_progress) const;

  uint64_t total_bytes() const;  // sum of the shard file sizes
  const std::filesystem::path& dir() const;
  const std::string& tensor_prefix() const;
  // The shards, in the order they were opened.
  std::vector<const SafetensorsFile*> shards() const;

  Checkpoint(Checkpoint&&) noexcept;
  Checkpoint& operator=(Checkpoint&&) noexcept;
  ~Checkpoint();

 private:
  struct Impl;
  explicit Checkpoint(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace k2
