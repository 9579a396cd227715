// The tensor-parallel group of a worker when the group spans nodes (tp_nodes.h): a
// GlooCommunicator over TCP whose ranks meet at the rendezvous store on node 0 (master_port
// + 1), which worker rank 0 serves until every rank has joined.
//
// Gloo's connections listen on the address this node uses toward --master-addr. Neither
// they nor the store are authenticated (Debian's Gloo has no TLS), which the engine logs
// when a control-plane key file is given.
//
// Stateless function; the communicator it returns owns its connections.
#pragma once

#include <memory>
#include <string>

#include "enginecore/protocol/engine_config.h"
#include "shm/status.h"
#include "workers/parallel/communicator.h"

namespace k2 {

Result<std::unique_ptr<Communicator>> join_cross_node_group(const EngineConfig& cfg, const std::string& store_address,
                                                            int rank, int size);

}  // namespace k2
