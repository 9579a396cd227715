// Where a worker's step plans come from: the engine's shm broadcast ring (workers on the
// engine's node) or its plan fan-out over TCP (workers of a tensor-parallel group on other
// nodes, tp_nodes.h), chosen by the address the engine's config names (a ring segment name,
// or tcp://). A fan-out source also runs the worker's heartbeat thread, which tells the engine
// every kDpHeartbeatInterval that this worker (its node) is alive, during long steps too.
//
// A PlanSource is used by the worker's main thread; the heartbeat thread has its own socket
// in the caller's context, which must outlive the source.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include <zmq.hpp>

#include "enginecore/protocol/dp_transport.h"
#include "enginecore/protocol/media_pixels.h"
#include "enginecore/protocol/messages.h"
#include "shm/status.h"

namespace k2 {

class PlanSource {
 public:
  virtual ~PlanSource() = default;
  // The next plan's bytes (valid until release()), nullopt when none came in `timeout`.
  // kUnavailable with a message ending in "closed" when the engine said no more will come;
  // any other error is fatal (the engine died or is silent, a plan was lost).
  virtual Result<std::optional<std::span<const std::byte>>> acquire(std::chrono::milliseconds timeout) = 0;
  virtual void release() = 0;
  // The pixels shipped with the plan acquired last, moved out (call before release()), for a
  // source on another node than the frontend: its worker reads media only from these.
  // nullopt for a source whose worker reads the frontend's media arena itself.
  virtual std::optional<std::vector<protocol::MediaPixels>> take_media() { return std::nullopt; }
};

bool is_closed(const Status& status);

// msg.input_addresses[0]: the ring's segment name, or the fan-out's tcp:// endpoint (then
// msg.output_addresses[1] is the engine's heartbeat endpoint).
Result<std::unique_ptr<PlanSource>> open_plan_source(zmq::context_t& context,
                                                    const protocol::ControlPlaneSecurity& security,
                                                    const protocol::EngineConfigMsg& msg, uint32_t rank);

}  // namespace k2
