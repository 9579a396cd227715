// The data-parallel coordinator (vLLM's DPCoordinator, v1/engine/coordinator.py), for MoE
// models whose ranks must step together: it owns the global wave number, turns one rank's
// "a request reached me while we were idle" into START_DP_WAVE for all the others, and
// carries the all-reduce of "has unfinished requests" that ends a wave.
//
// WaveCoordinator is the protocol as a pure state machine (messages in, messages out) so
// it is tested without sockets; not thread-safe. DpCoordinator runs one on a thread that
// owns a ROUTER bound at the coordinator address; engines connect DEALERs with their rank
// identity (protocol::rank_identity). The thread is the only user of its socket; start()
// and the destructor belong to one owner thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <zmq.hpp>

#include "enginecore/protocol/dp_transport.h"
#include "enginecore/protocol/messages.h"
#include "shm/status.h"

namespace k2::engine {

class WaveCoordinator {
 public:
  explicit WaveCoordinator(uint32_t num_ranks) : num_ranks_(num_ranks) {}

  using Outbox = std::vector<std::pair<uint32_t, protocol::DpControl>>;  // (to rank, message)
  // Handles one message from `rank`; returns what to send to whom.
  Outbox on_message(uint32_t rank, const protocol::DpControl& message);

  uint64_t wave() const { return wave_; }
  bool running() const { return running_; }
  uint64_t waves_completed() const { return waves_completed_; }

 private:
  void broadcast(Outbox& out, const protocol::DpControl& message, int32_t exclude) const;
  void start_wave(Outbox& out, int32_t starter);

  uint32_t num_ranks_;
  std::set<uint32_t> joined_;
  uint64_t wave_ = 0;
  bool running_ = false;
  uint64_t waves_completed_ = 0;
  struct Round {
    std::set<uint32_t> ranks;
    bool unfinished = false;
  };
  std::map<std::pair<uint64_t, uint64_t>, Round> rounds_;  // (wave, round)
};

class DpCoordinator {
 public:
  // Binds `address` (ipc:// or tcp://; a CURVE server when `security` has keys, with its
  // authenticator in `context`) and starts the thread.
  static Result<std::unique_ptr<DpCoordinator>> start(zmq::context_t& context, const std::string& address,
                                                      uint32_t num_ranks, protocol::ControlPlaneSecurity& security);
  ~DpCoordinator();
  DpCoordinator(const DpCoordinator&) = delete;
  DpCoordinator& operator=(const DpCoordinator&) = delete;

 private:
  DpCoordinator(zmq::socket_t socket, uint32_t num_ranks) : socket_(std::move(socket)), state_(num_ranks) {}
  void run();

  zmq::socket_t socket_;
  WaveCoordinator state_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace k2::engine
