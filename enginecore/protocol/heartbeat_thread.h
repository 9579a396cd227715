// HeartbeatThread: a thread that sends one DpControl kHeartbeat every kDpHeartbeatInterval on
// a PUSH socket of its own, connected to `address` (a remote engine to its API server, a
// remote worker to its engine), so that a long step never looks like a dead node. A send
// that cannot go out within a short timeout (the peer is gone and the queue is full) is
// dropped, so stopping never waits on a dead link.
//
// Owns its thread (joined by the destructor) and its socket, made in `context`, which must
// outlive it, as must `security`.
#pragma once

#include <atomic>
#include <string>
#include <thread>

#include <zmq.hpp>

#include "enginecore/protocol/dp_transport.h"
#include "enginecore/protocol/messages.h"

namespace k2::protocol {

class HeartbeatThread {
 public:
  // `label` names the sender in the log line of a socket that cannot be made.
  HeartbeatThread(zmq::context_t& context, const ControlPlaneSecurity& security, std::string address, DpControl beat,
                  std::string label);
  ~HeartbeatThread();
  HeartbeatThread(const HeartbeatThread&) = delete;
  HeartbeatThread& operator=(const HeartbeatThread&) = delete;

 private:
  void run(zmq::context_t& context, const ControlPlaneSecurity& security, const std::string& address,
           const DpControl& beat, const std::string& label);

  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace k2::protocol
