// WeightLoader: reads the float32 weights of a model from a Checkpoint, checks every shape
// against what the config says it must be, and reports progress in checkpoint bytes.
//
// Borrows the Checkpoint and the ProgressReporter (both must outlive it). Not thread-safe.
#pragma once

#include <cstdint>
#include <string>

#include "shm/status.h"
#include "workers/loader/checkpoint.h"
#include "workers/loader/progress.h"

namespace k2 {

class WeightLoader {
 public:
  WeightLoader(const Checkpoint& checkpoint, ProgressReporter* progress)
      : checkpoint_(checkpoint), progress_(progress) {}

  // A Linear's weight [out, in] (BF16, FP8 block or INT4 pack-quantized; `module` without
  // ".weight").
  Result<TensorF32> linear(const std::string& module, int64_t out, int64_t in);
  // A plain float tensor of exactly this shape (norm weights, biases, embeddings).
  Result<TensorF32> tensor(const std::string& name, std::initializer_list<int64_t> shape);

 private:
  void account(const std::string& name);

  const Checkpoint& checkpoint_;
  ProgressReporter* progress_;
};

}  // namespace k2
