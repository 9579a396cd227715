// What `k2serve serve` refuses before starting anything: vLLM's data-parallel flag rules
// (reference/vllm-v1.md 2.1, the load-balancing mode from protocol/dp_lb_mode.h) and what this
// build cannot honour yet: a clear error, never a silent single engine.
#pragma once

#include "enginecore/protocol/engine_config.h"
#include "shm/status.h"

namespace k2 {

Status check_supported(const EngineConfig& cfg);

}  // namespace k2
