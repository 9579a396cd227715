// The worker's place in the parallel groups of a deployment: its Shard, and, when the routed
// experts span data-parallel ranks (--enable-expert-parallel with --data-parallel-size > 1,
// vLLM's EP = TP x DP), the expert-parallel group of every local DP rank's workers.
//
// That group has TP x DP ranks, worker tp of DP rank dp being rank dp * TP + tp. When every
// DP rank runs on this node it is one ShmCommunicator: its rank 0 (DP rank 0's first worker)
// creates `/k2serve-<pid>-<run id>-ep` (the run id is the API server's, shared by all its
// engines); the others, which cannot know that worker's pid, find it by run id and name,
// waiting for it to appear. When the DP ranks span nodes (--headless nodes joining a master
// with --data-parallel-size-local < --data-parallel-size), or sit behind API servers of their
// own (hybrid load balancing: `serve --data-parallel-start-rank S` per node; external: one
// `serve --data-parallel-rank R` per rank; each with its own run id, on one node or several),
// every rank talks over Gloo (cross_node_group.h), meeting at the store that rank 0 serves on
// --data-parallel-address, port --data-parallel-rpc-port + 3 (P..P+2 are the control
// plane's, dp_transport.h).
//
// Free functions; the caller owns the communicator (it must outlive the model using it).
#pragma once

#include <chrono>
#include <memory>
#include <string_view>

#include "enginecore/protocol/engine_config.h"
#include "shm/status.h"
#include "workers/parallel/shard.h"
#include "workers/parallel/shm_communicator.h"

namespace k2 {

// Worker `tp_rank` of `tp_size` of the engine of data-parallel rank `dp_rank` (with
// --data-parallel-rank, that rank: the engine passes it).
Result<Shard> worker_shard(const EngineConfig& cfg, int tp_rank, int tp_size, int dp_rank);

// Whether the expert group of `cfg`'s data-parallel ranks is Gloo's: ranks on more than one
// node, or behind several API servers (no shared run id to find a shm group by).
bool expert_group_over_gloo(const EngineConfig& cfg);

// The rendezvous store of the group across nodes: tcp://<--data-parallel-address>:<P + 3>.
Result<std::string> expert_store_address(const EngineConfig& cfg);

// The expert-parallel group across DP ranks for `shard` (null when its experts do not span
// DP ranks). On one node the others wait at most `wait` for rank 0.
Result<std::unique_ptr<Communicator>> join_expert_group(const EngineConfig& cfg, std::string_view run_id,
                                                        const Shard& shard,
                                                        std::chrono::milliseconds wait = std::chrono::minutes(2));

}  // namespace k2
