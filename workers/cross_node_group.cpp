#include "workers/cross_node_group.h"

#include <spdlog/spdlog.h>

#include "enginecore/protocol/tp_nodes.h"
#include "workers/parallel/gloo_communicator.h"
#include "workers/parallel/zmq_store.h"

namespace k2 {

namespace {
// Every rank of the group starts within this of the others (the nodes' workers are
// launched independently) and a collective waits this long for a busy peer.
constexpr std::chrono::milliseconds kGroupTimeout{std::chrono::minutes(5)};
}  // namespace

Result<std::unique_ptr<Communicator>> join_cross_node_group(const CrossNodeGroup& group, int rank, int size) {
  GlooCommOptions options;
  options.timeout = kGroupTimeout;
  K2_ASSIGN_OR_RETURN(options.hostname, local_address_toward(group.route_host, group.route_port));
  K2_ASSIGN_OR_RETURN(std::unique_ptr<ZmqStore> store,
                      ZmqStore::create({.endpoint = group.store_address, .serve = rank == 0, .timeout = kGroupTimeout}));
  K2_ASSIGN_OR_RETURN(std::unique_ptr<GlooCommunicator> comm,
                      GlooCommunicator::create(*store, group.name, rank, size, options));
  // Past the barrier every rank has left create(), so rank 0 may stop serving the store.
  K2_RETURN_IF_ERROR(comm->barrier().with_context("first barrier of the " + group.label + " group"));
  spdlog::info("worker {}: {} group of {} over Gloo (this node: {}, rendezvous {})", rank, group.label, size,
               options.hostname, group.store_address);
  return std::unique_ptr<Communicator>(std::move(comm));
}

}  // namespace k2
