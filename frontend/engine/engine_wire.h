// The frontend <-> enginecore translation shared by every engine client: OpenAI-layer
// requests to protocol messages, protocol outputs and stats back to what the OpenAI layer
// sees, and a ReadyMsg folded into the deployment's capacities.
//
// Pure functions over values: they own nothing and are thread-safe.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "enginecore/protocol/messages.h"
#include "frontend/openai/engine_client.h"
#include "shm/status.h"

namespace k2::frontend {

// What the engines reported in READY (over all ranks: min(max_model_len), the sum of the
// KV blocks as vLLM, rank 0's stop ids).
struct EngineCapacities {
  uint32_t max_model_len = 0;
  uint64_t num_kv_blocks = 0;
  uint32_t block_size = 0;
  uint32_t max_num_seqs = 0;
  uint32_t max_num_batched_tokens = 0;
  std::vector<int32_t> eos_token_ids;  // the stop ids the engine applies to every request
};

// The facts of one rank's READY beyond the capacities.
struct ReadyFacts {
  std::vector<pid_t> worker_pids;
  bool dp_waves = false;  // the rank steps in MoE request waves with the others
};

// The wire's sampling parameters for one engine request. kInvalidArgument / kUnimplemented
// for what the engine cannot do yet (allowed_token_ids, n != 1).
Result<protocol::SamplingParams> to_protocol_params(const openai::SamplingParams& params);
// The AddRequest of `request` but for its prompt and media, which depend on the target
// rank (shm only on this node); kInvalidArgument for an empty prompt or unsupported params.
Result<protocol::AddRequest> to_add_request(const openai::GenerateRequest& request);
// One engine output as the OpenAI layer sees it.
openai::EngineOutput to_engine_output(const protocol::RequestOutput& output, double engine_time = 0);
// A rank's published stats; `previous_load`: its last expert-load totals (sent only when
// they change).
openai::EngineStats to_stats(const protocol::SchedulerStats& stats,
                             std::shared_ptr<const openai::ExpertLoadTotals> previous_load);
// The sum over ranks (kv_cache_usage: the mean).
openai::EngineStats sum_stats(const std::vector<openai::EngineStats>& ranks);
// Folds rank `rank`'s READY into `capacities` (start from fresh_capacities()).
ReadyFacts add_ready(const protocol::ReadyMsg& ready, uint32_t rank, EngineCapacities& capacities);
EngineCapacities fresh_capacities();

}  // namespace k2::frontend
