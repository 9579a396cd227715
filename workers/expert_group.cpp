#include "workers/expert_group.h"

#include <string>

#include <spdlog/spdlog.h>

#include "enginecore/protocol/dp_lb_mode.h"
#include "workers/cross_node_group.h"

namespace k2 {

namespace {
// After the control plane's P (requests), P + 1 (outputs) and P + 2 (coordinator).
constexpr int64_t kExpertStorePortOffset = 3;
}  // namespace

bool expert_group_over_gloo(const EngineConfig& cfg) {
  // Each API server of hybrid or external ranks has a run directory (and run id) of its own,
  // even on one node.
  const Result<DpLayout> layout = dp_layout(cfg);
  return cfg.headless || (layout.ok() && layout->api_server_per_node()) ||
         cfg.data_parallel_size_local.value_or(cfg.data_parallel_size) != cfg.data_parallel_size;
}

Result<std::string> expert_store_address(const EngineConfig& cfg) {
  const int64_t port = cfg.data_parallel_rpc_port + kExpertStorePortOffset;
  if (cfg.data_parallel_rpc_port <= 0 || port > 65535) {
    return invalid_argument("--data-parallel-rpc-port " + std::to_string(cfg.data_parallel_rpc_port) +
                            ": the expert-parallel group across nodes needs ports P..P+3 in [1, 65535]");
  }
  return "tcp://" + cfg.data_parallel_address + ":" + std::to_string(port);
}

Result<Shard> worker_shard(const EngineConfig& cfg, int tp_rank, int tp_size, int dp_rank) {
  Shard shard{tp_rank, tp_size, cfg.enable_expert_parallel};
  if (cfg.enable_expert_parallel && cfg.data_parallel_size > 1) {
    shard.dp_rank = dp_rank;
    shard.dp_size = static_cast<int>(cfg.data_parallel_size);
  }
  K2_RETURN_IF_ERROR(shard.validate());
  return shard;
}

Result<std::unique_ptr<Communicator>> join_expert_group(const EngineConfig& cfg, std::string_view run_id,
                                                        const Shard& shard, std::chrono::milliseconds wait) {
  if (!shard.experts_across_dp()) return std::unique_ptr<Communicator>();
  const Shard group = shard.experts();
  if (expert_group_over_gloo(cfg)) {
    K2_ASSIGN_OR_RETURN(std::string store, expert_store_address(cfg));
    Result<std::unique_ptr<Communicator>> comm =
        join_cross_node_group({.name = "ep",
                               .label = "expert-parallel",
                               .store_address = store,
                               .route_host = cfg.data_parallel_address,
                               .route_port = cfg.data_parallel_rpc_port},
                              group.rank, group.size);
    if (!comm.ok()) return comm.status().with_context("joining the expert-parallel group as " + shard.describe());
    if (group.rank == 0 && cfg.control_plane_key_file) {
      spdlog::warn("--control-plane-key-file: the control plane uses CURVE, but the expert-parallel group's Gloo "
                   "connections and its rendezvous store ({}) are not authenticated (Debian's Gloo has no TLS): keep "
                   "them on a network only the deployment's nodes reach",
                   store);
    }
    return comm;
  }
  if (group.rank == 0) {
    K2_ASSIGN_OR_RETURN(std::unique_ptr<ShmCommunicator> comm, ShmCommunicator::create(run_id, "ep", group.size));
    return std::unique_ptr<Communicator>(std::move(comm));
  }
  Result<std::unique_ptr<ShmCommunicator>> comm = ShmCommunicator::open_when_created(run_id, "ep", group.rank, wait);
  if (!comm.ok()) return comm.status().with_context("joining the expert-parallel group as " + shard.describe());
  if ((*comm)->size() != group.size) {
    return invalid_argument("the expert-parallel group has " + std::to_string((*comm)->size()) + " ranks, " +
                            shard.describe() + " expects " + std::to_string(group.size));
  }
  return std::unique_ptr<Communicator>(std::move(comm).value());
}

}  // namespace k2
