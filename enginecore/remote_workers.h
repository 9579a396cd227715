// RemoteWorkers: the engine's side of a tensor-parallel group that spans nodes (tp_nodes.h).
// The engine spawns the workers of its own node as always; the others are started by
// `k2serve serve --headless --nnodes N --node-rank K` on their nodes and reach the engine
// over tcp://master_addr:
//   * the handshake ROUTER (the engine's own, which gets a second endpoint on master_port),
//   * the plans: every plan written to the shm ring is also published on a PlanFanout, with
//     the pixels of the media items its step encodes (read from the frontend's media arena
//     here, where the remote workers cannot),
//   * the results PULL (the engine's own, with a second, tcp:// endpoint),
//   * a heartbeat PULL: each remote worker sends a heartbeat (DpControl kHeartbeat, its rank)
//     every kDpHeartbeatInterval from a thread of its own; one silent for kDpPeerTimeout is
//     reported as dead (its node died or was cut off), which ends the engine like a local
//     worker's death does. The fan-out's heartbeats tell remote workers the engine is alive.
// With --control-plane-key-file these sockets are CURVE servers (on their ipc:// endpoints
// too: the engine's workers then all get the key file).
//
// Owns the fan-out and heartbeat sockets, in the engine's context; the ROUTER and PULL stay
// the engine's. Used by the engine's one thread.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <zmq.hpp>

#include "enginecore/protocol/codec.h"
#include "enginecore/protocol/dp_transport.h"
#include "enginecore/protocol/messages.h"
#include "enginecore/protocol/plan_fanout.h"
#include "enginecore/protocol/tp_nodes.h"
#include "shm/opened_arenas.h"
#include "shm/status.h"

namespace k2::engine {

class RemoteWorkers {
 public:
  // Adds the tcp:// endpoints to `router` and `results` (already secured by the caller when
  // security is on) and binds the fan-out and heartbeat sockets.
  static Result<std::unique_ptr<RemoteWorkers>> start(zmq::context_t& context, protocol::ControlPlaneSecurity& security,
                                                      const TpNodes& nodes, zmq::socket_t& router,
                                                      zmq::socket_t& results);

  bool is_remote(uint32_t rank) const { return nodes_.node_of(rank) != 0; }
  uint32_t remote_count() const { return static_cast<uint32_t>(nodes_.tp - nodes_.per_node); }
  // What worker `rank` is told in its config: remote workers get the tcp:// plan, result and
  // heartbeat endpoints; every worker gets the group's rendezvous store.
  void address(uint32_t rank, protocol::EngineConfigMsg& msg) const;
  // After the handshake: waits for every remote worker's plan subscription, then starts
  // watching their heartbeats.
  Status await_subscriptions(std::chrono::milliseconds timeout);
  // `frames` encode `plan`. An item whose pixels cannot be read is not shipped (logged): the
  // remote workers fail that step unless all ranks find it in their encoder caches, as the
  // local workers would on the same stale handle.
  Status publish(const protocol::Frames& frames, const protocol::StepPlan& plan);
  // Sends the fan-out heartbeat when due, reads the workers' and fails (kUnavailable) when
  // one has been silent too long.
  Status tick();
  zmq::socket_t& heartbeat_socket() { return heartbeats_; }
  // Tells the remote workers to exit.
  void close() { fanout_.close(); }

 private:
  RemoteWorkers(const TpNodes& nodes, protocol::PlanFanout fanout, zmq::socket_t heartbeats)
      : nodes_(nodes), fanout_(std::move(fanout)), heartbeats_(std::move(heartbeats)) {}

  // The pixels of the items `plan` encodes, each content once: views of the arena blocks.
  std::vector<protocol::FanoutMedia> media_to_ship(const protocol::StepPlan& plan);
  Result<std::span<const std::byte>> pixels_of(const protocol::MediaItem& item);

  TpNodes nodes_;
  protocol::PlanFanout fanout_;
  zmq::socket_t heartbeats_;
  std::string results_endpoint_, heartbeat_endpoint_;
  bool watching_ = false;
  std::vector<std::chrono::steady_clock::time_point> last_heard_;  // by rank
  OpenedArenas media_arenas_;  // the frontends' media arenas
};

}  // namespace k2::engine
