// Shard: which part of a model one rank of a tensor- / expert-parallel group holds.
//
// With size N, a rank keeps 1/N of the attention heads and of every MLP width (tensor
// parallelism); with expert_parallel it keeps n_routed_experts / N whole routed experts
// instead of a slice of each (vLLM: EP size = TP size x DP size; DP is 1 here, so EP = N).
// A plain value type; thread-compatible.
#pragma once

#include <cstdint>
#include <string>

#include "shm/status.h"

namespace k2 {

struct Shard {
  int rank = 0;
  int size = 1;
  bool expert_parallel = false;

  bool sharded() const { return size > 1; }
  // rank in [0, size) and size >= 1.
  Status validate() const;
  // The rank's contiguous part [first, first + count) of `total` items split evenly; the
  // caller has checked divides(total).
  int64_t count(int64_t total) const { return total / size; }
  int64_t first(int64_t total) const { return count(total) * rank; }
  bool divides(int64_t total) const { return total % size == 0; }
  // "tensor-parallel size 2, rank 1" (for errors and logs).
  std::string describe() const;
};

}  // namespace k2
