// TpRollCall: the engine's wait for the workers of a tensor-parallel group that spans nodes
// (tp_nodes.h). The other nodes' workers are started by hand, so one may never come: the
// engine logs every kProgressInterval which nodes and worker ranks it still waits for, and
// once VLLM_ENGINE_READY_TIMEOUT_S has passed fails with an error naming them, instead of
// waiting for them forever (or for the handshake's anonymous "1 of 2 peers" timeout).
//
// Plain bookkeeping over hello'd ranks; the caller passes the time, which keeps it testable.
// Used by one thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "enginecore/protocol/tp_nodes.h"
#include "shm/status.h"

namespace k2::engine {

class TpRollCall {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr std::chrono::seconds kProgressInterval{10};

  TpRollCall(const TpNodes& nodes, std::chrono::seconds timeout, Clock::time_point start);

  // Worker `rank` said hello (ranks out of the group are ignored: the handshake refuses them).
  void joined(uint32_t rank);
  bool complete() const;
  std::chrono::seconds timeout() const { return timeout_; }
  // "node 1 (worker ranks 2, 3)": the nodes with a rank that has not said hello, each with
  // those ranks; "" when none.
  std::string missing() const;
  // The "still waiting" line when kProgressInterval has passed since the last one (or the
  // start); nullopt otherwise or when nobody is missing.
  std::optional<std::string> progress(Clock::time_point now);
  // kUnavailable naming the missing nodes once `timeout` has passed since the start.
  Status check(Clock::time_point now) const;

 private:
  TpNodes nodes_;
  std::chrono::seconds timeout_;
  Clock::time_point start_, last_progress_;
  std::vector<bool> joined_;  // by worker rank
};

}  // namespace k2::engine
