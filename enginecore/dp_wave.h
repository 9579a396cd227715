// The engine side of request waves (vLLM's DPEngineCoreProc, for MoE models with
// data-parallel ranks): while a wave runs every rank steps, a rank with nothing to schedule
// running a dummy step, so a collective inside the forward (expert-parallel all-to-all)
// always finds every rank; every kSyncInterval steps the ranks all-reduce "has unfinished
// requests" through the coordinator, and when no rank has any the wave ends and every rank
// waits for the next request.
//
// Owns a DEALER (identity = rank) to the coordinator's ROUTER. Not thread-safe: the engine
// loop's thread.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include <zmq.hpp>

#include "enginecore/protocol/dp_transport.h"
#include "enginecore/protocol/messages.h"
#include "shm/status.h"

namespace k2::engine {

class DpWave {
 public:
  static constexpr uint64_t kSyncInterval = 32;  // vLLM's steps between DP all-reduces

  // `watch`: externally launched ranks, whose coordinator lives in rank 0's engine and no
  // frontend watches every rank: once connected, a dropped connection (rank 0 died, or went
  // silent past the heartbeat timeout) is reported by check_coordinator().
  static Result<std::unique_ptr<DpWave>> connect(zmq::context_t& context, const std::string& address, uint32_t rank,
                                                 const protocol::ControlPlaneSecurity& security, bool watch = false);
  // kUnavailable once a watched coordinator's connection dropped (non-blocking).
  Status check_coordinator();

  zmq::socket_t& socket() { return socket_; }
  bool running() const { return running_; }
  uint64_t wave() const { return wave_; }
  bool sync_pending() const { return sync_pending_; }

  // This rank has work while the wave is idle: run, and have the coordinator start the others.
  Status start_if_idle();
  // Handles every coordinator message already here (non-blocking).
  Status drain();
  // Counts one step of the running wave; true when this rank must now all-reduce
  // (begin_sync, then drain until !sync_pending()).
  bool count_step();
  Status begin_sync(bool has_unfinished);
  // Applies one coordinator message (exposed for tests).
  void on_message(const protocol::DpControl& m);

 private:
  DpWave(zmq::socket_t socket, std::string address, uint32_t rank)
      : socket_(std::move(socket)), address_(std::move(address)), rank_(rank) {}

  zmq::socket_t socket_;
  std::optional<zmq::socket_t> monitor_;  // socket_'s connect/disconnect events, when watched
  bool connected_ = false;
  std::string address_;
  uint32_t rank_;
  uint64_t wave_ = 0;
  bool running_ = false;
  uint64_t steps_ = 0;  // in the running wave
  uint64_t round_ = 0;  // all-reduces done in the running wave
  bool sync_pending_ = false;
};

}  // namespace k2::engine
