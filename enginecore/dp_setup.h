// Which data-parallel ranks an engine steps in lockstep with (vLLM's request waves, for MoE
// models), and where their coordinator is.
//
// Behind one API server (internal load balancing) the frontend hands every engine the
// coordinator's address and rank 0's engine binds it. With an API server per node (hybrid
// load balancing: each balances over its own ranks S..S+L-1) or per rank (external: hybrid
// with L = 1, `serve --data-parallel-rank R`), only expert parallelism ties the ranks
// together: every rank's forward then enters the experts' collectives, so an idle rank must
// step dummy batches while another is busy. There no frontend knows all the ranks; DP rank
// 0's engine binds the coordinator at --data-parallel-address, port --data-parallel-rpc-port
// + 2 (dp_transport.h), and every rank's engine, rank 0's included, connects to it over TCP
// (vLLM: the coordinator is co-located with rank 0). See protocol/dp_lb_mode.h.
//
// plan_request_waves is pure (tested without sockets); join_request_waves makes the sockets.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include <zmq.hpp>

#include "enginecore/coordinator.h"
#include "enginecore/dp_wave.h"
#include "enginecore/protocol/dp_lb_mode.h"
#include "enginecore/protocol/dp_transport.h"
#include "enginecore/protocol/engine_config.h"
#include "shm/status.h"

namespace k2::engine {

// vLLM runs DP ranks in lockstep waves only for MoE models (model_config.is_moe); the
// others are independent replicas. Reads <model_dir>/config.json.
bool model_is_moe(const std::string& model_dir);

// This engine's rank among all the deployment's data-parallel ranks: `engine_rank` (its place
// behind its API server) past the first rank behind that API server (hybrid: the node's
// --data-parallel-start-rank; external: --data-parallel-rank).
Result<uint32_t> global_dp_rank(const EngineConfig& cfg, uint32_t engine_rank);

struct WavePlan {
  std::string address;  // the coordinator's ROUTER
  uint32_t rank = 0;    // this engine's identity there (global_dp_rank)
  uint32_t num_ranks = 0;
  bool serve = false;  // this engine binds the coordinator
  bool watch = false;  // hybrid/external ranks: a lost coordinator ends this engine (DpWave::connect)
};

// `frontend_coordinator`: the address the API server sent (empty for a lone engine). No plan
// when the ranks need no waves (one rank, a dense model, external ranks without
// --enable-expert-parallel). `remote`: the engine runs on a --headless node, away from its
// API server.
Result<std::optional<WavePlan>> plan_request_waves(const EngineConfig& cfg, const std::string& frontend_coordinator,
                                                   uint32_t engine_rank, bool moe, bool remote);

struct RequestWaves {
  std::unique_ptr<DpCoordinator> coordinator;  // the serving rank's only
  std::unique_ptr<DpWave> wave;
};

// Starts the coordinator (plan.serve) and joins it. The coordinator's thread uses `context`
// and is stopped before `security`'s authenticator goes.
Result<RequestWaves> join_request_waves(zmq::context_t& context, const WavePlan& plan,
                                        protocol::ControlPlaneSecurity& security);

}  // namespace k2::engine
