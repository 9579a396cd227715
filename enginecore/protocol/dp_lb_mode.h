// vLLM's data-parallel load-balancing modes and the flag rules that pick one
// (reference/vllm-v1.md 2.1-2.2), decided once here for the API server, the enginecores
// (which get the same config) and the workers:
//
//   internal  one API server balances over all N ranks (other nodes join it --headless);
//   hybrid    every node runs its own API server, which balances over its own ranks
//             S..S+L-1 only (--data-parallel-start-rank S, --data-parallel-size-local L);
//   external  one API server per rank (--data-parallel-rank R): hybrid with L = 1.
//
// In hybrid and external mode no API server knows every rank: they meet only where rank 0's
// engine serves the request waves' coordinator (P + 2) and the experts' Gloo store (P + 3).
// Rules: --data-parallel-rank => external; --data-parallel-start-rank (vLLM >= 0.28: even 0)
// or --data-parallel-hybrid-lb on a node with an API server => hybrid, which with L == 1 is
// external with rank S and with L == N is internal; hybrid on a --headless node is an error.
#pragma once

#include <cstdint>
#include <string>

#include "enginecore/protocol/engine_config.h"
#include "shm/status.h"

namespace k2 {

enum class DpLbMode { kNone, kInternal, kHybrid, kExternal };

const char* dp_lb_mode_name(DpLbMode mode);

struct DpLayout {
  DpLbMode mode = DpLbMode::kNone;
  int64_t size = 1;          // data-parallel ranks of the whole deployment
  int64_t first_rank = 0;    // global rank of the first engine behind this API server (or headless node)
  int64_t ranks_behind = 1;  // engines this API server balances over (a headless node: its own)

  // Each node (or rank) has its own API server; the ranks meet only at rank 0's engine.
  bool api_server_per_node() const { return mode == DpLbMode::kHybrid || mode == DpLbMode::kExternal; }
  // The deployment-wide rank of engine `engine_rank` of those behind this API server.
  uint32_t global_rank(uint32_t engine_rank) const { return static_cast<uint32_t>(first_rank) + engine_rank; }
};

// Pure; an error names the flags that contradict each other.
Result<DpLayout> dp_layout(const EngineConfig& cfg);

// "hybrid load balancing: ranks 2..3 of 4 behind this API server": the startup log line.
std::string describe(const DpLayout& layout);

}  // namespace k2
