// Tensor parallelism across nodes (vLLM's --nnodes / --node-rank / --master-addr /
// --master-port, without Ray): one engine whose tensor-parallel group spans `nnodes` nodes,
// each node holding tensor_parallel_size / nnodes consecutive ranks. Node 0 runs the API
// server, the engine and ranks 0..L-1; node k runs, with --headless, only the workers of
// ranks k*L..(k+1)*L-1, which join the engine over TCP:
//   master_port      the engine's worker handshake ROUTER (HELLO -> config -> READY); the
//                    config then names the engine's other sockets (tcp://master_addr:*):
//                    the plan fan-out (plan_fanout.h), the results PULL and the heartbeat PULL
//   master_port + 1  the Gloo rendezvous store of the group, served by worker rank 0
// The group talks over Gloo (every rank, those of node 0 too) when it spans nodes; over the
// shm ring and ShmCommunicator when it does not.
//
// Plain value type and stateless functions; thread-safe.
#pragma once

#include <cstdint>
#include <string>

#include "enginecore/protocol/engine_config.h"
#include "shm/status.h"

namespace k2 {

struct TpNodes {
  int64_t nnodes = 1;
  int64_t node_rank = 0;
  int64_t tp = 1;        // the whole group
  int64_t per_node = 1;  // ranks on each node
  std::string master_addr = "127.0.0.1";
  int64_t master_port = 0;

  bool spans_nodes() const { return nnodes > 1; }
  int64_t first_rank() const { return node_rank * per_node; }
  // The node a rank runs on.
  int64_t node_of(int64_t rank) const { return rank / per_node; }
  std::string handshake_address() const;
  std::string store_address() const;
};

// The layout `cfg` asks for (nnodes 1 unless --nnodes > 1 with one engine); an error when the
// ranks do not divide over the nodes or the ports are out of range.
Result<TpNodes> tp_nodes_of(const EngineConfig& cfg);

// The local address this node uses toward `master_addr` (the interface Gloo listens on):
// the source address of a UDP socket connected to it (nothing is sent).
Result<std::string> local_address_toward(const std::string& master_addr, int64_t port);

}  // namespace k2
