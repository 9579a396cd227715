// Shard: which part of a model one rank of a tensor- / expert-parallel group holds.
//
// With size N, a rank keeps 1/N of the attention heads and of every MLP width (tensor
// parallelism). With expert_parallel the routed experts are split whole instead of a slice of
// each, over the expert-parallel group (vLLM: EP size = TP size x DP size):
//   - dp_size 1: the N ranks of this engine's tensor-parallel group (EP = N);
//   - dp_size D > 1: the N x D workers of all D data-parallel engines, this worker being
//     expert rank dp_rank * N + rank. Attention, dense MLPs and the shared expert stay
//     per data-parallel rank (tensor-sharded over its N ranks); only the routed experts span
//     the data-parallel ranks, whose batches differ (moe_dispatch.h moves the rows).
// experts() is the split the routed experts follow. A plain value type; thread-compatible.
#pragma once

#include <cstdint>
#include <string>

#include "shm/status.h"

namespace k2 {

struct Shard {
  int rank = 0;  // in the tensor-parallel group
  int size = 1;  // of the tensor-parallel group
  bool expert_parallel = false;
  int dp_rank = 0;  // this engine's data-parallel rank (only with expert_parallel)
  int dp_size = 1;  // data-parallel ranks sharing the routed experts (only with expert_parallel)

  bool sharded() const { return size > 1; }
  // The routed experts are spread over the workers of several data-parallel ranks.
  bool experts_across_dp() const { return expert_parallel && dp_size > 1; }
  // How the routed experts split: with expert_parallel, whole experts over the expert-parallel
  // group (rank dp_rank * size + rank of dp_size * size, itself unsharded across DP); else
  // this shard (a tensor-parallel slice of every expert).
  Shard experts() const;
  // rank in [0, size), size >= 1, dp_rank in [0, dp_size), dp_size > 1 only with expert_parallel.
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
