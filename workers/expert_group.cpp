#include "workers/expert_group.h"

#include <string>

namespace k2 {

Result<Shard> worker_shard(const EngineConfig& cfg, int tp_rank, int tp_size, int dp_rank) {
  Shard shard{tp_rank, tp_size, cfg.enable_expert_parallel};
  if (cfg.enable_expert_parallel && cfg.data_parallel_size > 1) {
    if (cfg.headless || cfg.data_parallel_rank ||
        cfg.data_parallel_size_local.value_or(cfg.data_parallel_size) != cfg.data_parallel_size) {
      return unimplemented(
          "expert parallelism across data-parallel ranks on several nodes or with external load balancing "
          "(--headless, --data-parallel-rank, --data-parallel-size-local < --data-parallel-size) is not "
          "implemented yet: run every data-parallel rank on one node");
    }
    shard.dp_rank = dp_rank;
    shard.dp_size = static_cast<int>(cfg.data_parallel_size);
  }
  K2_RETURN_IF_ERROR(shard.validate());
  return shard;
}

Result<std::unique_ptr<ShmCommunicator>> join_expert_group(std::string_view run_id, const Shard& shard,
                                                           std::chrono::milliseconds wait) {
  if (!shard.experts_across_dp()) return std::unique_ptr<ShmCommunicator>();
  const Shard group = shard.experts();
  if (group.rank == 0) return ShmCommunicator::create(run_id, "ep", group.size);
  Result<std::unique_ptr<ShmCommunicator>> comm = ShmCommunicator::open_when_created(run_id, "ep", group.rank, wait);
  if (!comm.ok()) return comm.status().with_context("joining the expert-parallel group as " + shard.describe());
  if ((*comm)->size() != group.size) {
    return invalid_argument("the expert-parallel group has " + std::to_string((*comm)->size()) + " ranks, " +
                            shard.describe() + " expects " + std::to_string(group.size));
  }
  return comm;
}

}  // namespace k2
