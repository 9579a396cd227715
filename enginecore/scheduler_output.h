// What crosses the Scheduler's boundary each step: the plan for the workers
// (SchedulerOutput), what they return (StepResult), the per-request events for the
// frontend (RequestOutput) and the gauges for /metrics (SchedulerStats).
// Plain values that own their data; thread-compatible.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "enginecore/request_state.h"

namespace k2::engine {

// One request's share of a step. A worker keeps, per request id, a block table and the
// tokens it has seen; `is_new` tells it to (re)start that state.
struct ScheduledRequest {
  std::string request_id;
  // First step since admission or since resuming from preemption: drop any state kept for
  // this id; new_block_ids is then the whole table and cached_token_ids the cached prefix.
  bool is_new = false;
  int32_t num_prompt_tokens = 0;
  int32_t start_position = 0;  // num_computed_tokens before this step: position of token_ids[0]
  std::vector<TokenId> token_ids;  // the tokens computed this step (a prefill chunk or the last sample)
  // is_new only: tokens [0, start_position) whose KV the listed blocks already hold
  // (prefix-cache hit); the worker needs them for penalties, never recomputes them.
  std::vector<TokenId> cached_token_ids;
  std::vector<BlockId> new_block_ids;  // appended to the worker's block table for this id
  // The chunk reaches the request's last token: compute logits and sample one token.
  // False for a non-final prefill chunk.
  bool needs_sample = false;
  // Indices into the request's media the workers encode in this step, before running the
  // chunk. The chunk's other media items are held already since the request (re)started,
  // or have the content of one that is (the workers copy those rows).
  std::vector<int32_t> encode_media;
};

struct SchedulerOutput {
  uint64_t step_id = 0;
  std::vector<ScheduledRequest> requests;  // running requests first, then admitted ones
  int32_t num_scheduled_tokens = 0;        // <= max_num_batched_tokens
  // Encoder tokens the step is charged (items listed in encode_media that neither the
  // request nor, as far as the scheduler knows, the workers' encoder cache holds):
  // <= the encoder budget, or a single item larger than all of it.
  int32_t num_encoder_tokens = 0;
  // Workers drop their state for these before applying `requests`; their blocks may
  // already be reused by requests of this very step.
  std::vector<std::string> preempted_request_ids;  // preempted in this step
  std::vector<std::string> finished_request_ids;   // finished or aborted since the last plan
  bool empty() const { return requests.empty(); }
};

// What the workers return for one SchedulerOutput.
struct StepResult {
  uint64_t step_id = 0;
  // Aligned with SchedulerOutput::requests: one sampled token where needs_sample, else
  // empty. (Speculative decoding will allow several per request.)
  std::vector<std::vector<TokenId>> sampled_token_ids;
};

// One event for the frontend: new tokens and/or the end of a request.
struct RequestOutput {
  std::string request_id;
  std::vector<TokenId> new_token_ids;
  FinishReason finish_reason = FinishReason::kNone;
  // vLLM's stop_reason when it is a token: the stop_token_ids member (or secondary eos id)
  // that ended the request.
  std::optional<TokenId> stop_token;
  int32_t num_cached_tokens = 0;  // usage.prompt_tokens_details.cached_tokens
  bool finished() const { return finish_reason != FinishReason::kNone; }
};

struct SchedulerStats {
  int32_t num_running = 0;
  int32_t num_waiting = 0;
  double kv_cache_usage = 0.0;  // 0..1
  int64_t prefix_cache_queries = 0;  // tokens
  int64_t prefix_cache_hits = 0;     // tokens
  int64_t num_preemptions = 0;       // since start
};

}  // namespace k2::engine
