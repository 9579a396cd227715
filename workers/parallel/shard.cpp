#include "workers/parallel/shard.h"

namespace k2 {

Shard Shard::experts() const {
  if (!expert_parallel) return *this;
  return Shard{dp_rank * size + rank, dp_size * size, true};
}

Status Shard::validate() const {
  if (size < 1) return invalid_argument("the tensor-parallel size must be at least 1, got " + std::to_string(size));
  if (rank < 0 || rank >= size) {
    return invalid_argument("rank " + std::to_string(rank) + " is outside a group of " + std::to_string(size));
  }
  if (dp_size < 1 || dp_rank < 0 || dp_rank >= dp_size) {
    return invalid_argument("data-parallel rank " + std::to_string(dp_rank) + " is outside " +
                            std::to_string(dp_size) + " data-parallel ranks");
  }
  if (dp_size > 1 && !expert_parallel) {
    return invalid_argument("data-parallel ranks share a model's experts only with expert parallelism");
  }
  return Status::ok_status();
}

std::string Shard::describe() const {
  if (experts_across_dp()) {
    const Shard e = experts();
    return "expert-parallel size " + std::to_string(e.size) + ", rank " + std::to_string(e.rank) +
           " (tensor-parallel size " + std::to_string(size) + ", rank " + std::to_string(rank) +
           " of data-parallel rank " + std::to_string(dp_rank) + " of " + std::to_string(dp_size) + ")";
  }
  return std::string(expert_parallel ? "expert" : "tensor") + "-parallel size " + std::to_string(size) + ", rank " +
         std::to_string(rank);
}

}  // namespace k2
