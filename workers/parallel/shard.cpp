#include "workers/parallel/shard.h"

namespace k2 {

Status Shard::validate() const {
  if (size < 1) return invalid_argument("the tensor-parallel size must be at least 1, got " + std::to_string(size));
  if (rank < 0 || rank >= size) {
    return invalid_argument("rank " + std::to_string(rank) + " is outside a group of " + std::to_string(size));
  }
  return Status::ok_status();
}

std::string Shard::describe() const {
  return std::string(expert_parallel ? "expert" : "tensor") + "-parallel size " + std::to_string(size) + ", rank " +
         std::to_string(rank);
}

}  // namespace k2
