// The worker process (`k2serve-worker worker ...`, spawned by its enginecore): handshake,
// model load, KV cache in a worker-owned shared-memory segment, then one StepPlan after
// another from the enginecore's shm broadcast ring, each answered with a StepResult on a
// ZMQ PUSH socket. It exits when the ring closes (0), on SIGTERM (0) or when its parent dies.
//
// Free functions; worker_main owns everything it creates and removes its shm segment on
// every exit it controls (after kill -9 the enginecore or the next start removes it).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "enginecore/protocol/engine_config.h"
#include "shm/status.h"

namespace k2 {

// How many KV blocks the worker allocates (the null block 0 included):
// --kv-cache-memory bytes if given, else --gpu-memory-utilization x available RAM (measured
// after the weights are loaded, so they are already subtracted), never more than /dev/shm
// can hold, and never more than max_num_seqs sequences of max_model_len tokens need.
struct KvSizingInput {
  uint64_t bytes_per_block = 0;
  uint64_t mem_available = 0;  // /proc/meminfo MemAvailable
  uint64_t shm_available = 0;  // free bytes of /dev/shm
  int64_t block_size = 16;
  int64_t max_model_len = 0;
  int64_t max_num_seqs = 1;
  std::optional<int64_t> kv_cache_memory;
  double memory_utilization = 0.9;
};
Result<int64_t> kv_cache_blocks(const KvSizingInput& in);

// /proc/meminfo MemAvailable in bytes (0 when unknown).
uint64_t mem_available_bytes();

// `k2serve-worker worker --handshake ADDR --rank N --parent-pid PID`; returns the exit code.
int worker_main(const std::vector<std::string>& args);

}  // namespace k2
