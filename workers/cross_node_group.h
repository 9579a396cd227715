// A parallel group of workers that spans nodes: a GlooCommunicator over TCP whose ranks meet
// at a rendezvous store (zmq_store.h) that the group's rank 0 serves until every rank has
// joined. Two groups use it: the tensor-parallel group of an engine spread over nodes
// (tp_nodes.h: store at --master-port + 1) and the expert-parallel group of data-parallel
// ranks on several nodes (expert_group.h: store at --data-parallel-rpc-port + 3).
//
// Gloo's connections listen on the address this node uses toward the group's rendezvous
// host. Neither they nor the store are authenticated (Debian's Gloo has no TLS), which the
// engine logs when a control-plane key file is given.
//
// Plain value type and a stateless function; the communicator it returns owns its connections.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "shm/status.h"
#include "workers/parallel/communicator.h"

namespace k2 {

struct CrossNodeGroup {
  std::string name;           // "tp", "ep": the Gloo key prefix
  std::string label;          // "tensor-parallel", "expert-parallel": the logs' name
  std::string store_address;  // tcp://host:port of the rendezvous store
  std::string route_host;     // the address whose route picks this node's interface
  int64_t route_port = 0;
};

Result<std::unique_ptr<Communicator>> join_cross_node_group(const CrossNodeGroup& group, int rank, int size);

}  // namespace k2
