// Scheduler: continuous batching with vLLM V1 semantics (vllm/v1/core/sched/scheduler.py).
//
// There are no prefill and decode phases: every request has num_computed_tokens and
// num_tokens, and each step hands out one token budget (max_num_batched_tokens) so that
// requests catch up: running requests first, in order, each getting min(remaining, budget)
// tokens (chunked prefill falls out of this), then waiting requests while the budget,
// max_num_seqs and the KV cache allow. When a running request cannot get blocks, the
// lowest-priority running request is preempted by recompute (blocks freed, progress reset,
// put back in front of the waiting queue). Token-level stops are checked here; stop
// strings are the frontend's.
//
// The engine loop drives it:  add_request/abort (between steps) -> schedule() -> workers ->
// update_from_output() -> take_outputs() -> frontend.  Exactly one plan is in flight at a
// time; abort() during a step is applied when that step's result arrives.
//
// n > 1: the frontend sends the n samples of one prompt as sibling requests of one group
// (vLLM's ParentRequest fan-out). The first sibling admitted leads; the others stay queued
// (later requests may pass them) until the leader's full prompt blocks are registered, then
// start from those blocks and compute only the last partial block. So the prompt is
// computed once, with or without prefix caching (without it, only siblings see each other's
// blocks), where vLLM computes it once per sibling that shares a step with the first.
//
// Multimodal prompts: media items key the prefix cache per block (see KvBlockManager) and
// each step's encoder work is bounded by the EncoderBudget, which may cut a prompt chunk
// before an image; every plan lists the items the workers encode in that step.
//
// Owns every Request, the KvBlockManager and the EncoderBudget. Not thread-safe: one
// engine-loop thread. Not yet: speculative-decode tokens, async scheduling (several plans
// in flight).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "enginecore/encoder_budget.h"
#include "enginecore/kv_block_manager.h"
#include "enginecore/policy.h"
#include "enginecore/request_state.h"
#include "enginecore/scheduler_output.h"
#include "shm/status.h"

namespace k2::engine {

struct SchedulerConfig {
  int32_t max_num_batched_tokens = 2048;  // --max-num-batched-tokens: tokens per step
  int32_t max_num_seqs = 256;             // --max-num-seqs: running requests at once
  int32_t max_model_len = 4096;           // prompt + output tokens of one request
  bool enable_chunked_prefill = true;     // off: a waiting request's tokens must fit whole
  int32_t long_prefill_token_threshold = 0;  // > 0: at most this many tokens per request per step
  SchedulingPolicy policy = SchedulingPolicy::kFcfs;
  EncoderBudgetConfig encoder;  // multimodal prompts only
};

class Scheduler {
 public:
  // Fails on an inconsistent configuration (see the checks in scheduler.cpp).
  static Result<std::unique_ptr<Scheduler>> create(const SchedulerConfig& config, const KvCacheConfig& kv_config);

  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Queues a request. Rejects (and keeps nothing of) a duplicate id, invalid limits or media
  // spans, a prompt that leaves no room under max_model_len, a media item larger than the
  // encoder cache, and a request whose longest possible sequence needs more KV blocks than
  // the whole cache has: it could never finish.
  Status add_request(RequestParams params);

  // Ends a waiting or running request (the client went away): frees its blocks and queues a
  // finished(abort) output. False if the id is unknown (e.g. it already finished).
  bool abort(const std::string& request_id);
  // Ends a request as finished(stop) for a reason the scheduler cannot see (its structured
  // output's grammar is complete). False if the id is unknown or its step is in flight.
  bool finish_stopped(const std::string& request_id);

  // Plans one step. Call update_from_output() with its result before the next schedule()
  // unless the plan is empty (then nothing is in flight).
  SchedulerOutput schedule();

  // Applies the workers' result for `plan`: appends sampled tokens, checks stops, registers
  // newly computed full blocks in the prefix cache, frees finished requests and queues their
  // outputs. A result that does not match the plan is refused with an error and changes
  // nothing (the plan stays in flight).
  Status update_from_output(const SchedulerOutput& plan, const StepResult& result);

  // Outputs queued since the last call, in event order.
  std::vector<RequestOutput> take_outputs();

  bool has_unfinished_requests() const { return !requests_.empty(); }
  int32_t num_running() const { return static_cast<int32_t>(running_.size()); }
  int32_t num_waiting() const { return static_cast<int32_t>(waiting_.size()); }
  SchedulerStats stats() const;
  // vLLM's reset_prefix_cache utility: false while any block is in use.
  bool reset_prefix_cache() { return kv_.reset_prefix_cache(); }

  const SchedulerConfig& config() const { return config_; }
  const KvBlockManager& kv_cache() const { return kv_; }
  const EncoderBudget& encoder_budget() const { return encoder_; }
  const Request* find_request(const std::string& request_id) const;

  // Checks block counts against the block tables, request states against the queues and
  // block tables against num_computed_tokens. O(blocks + requests); for tests and debugging.
  Status check_invariants() const;

 private:
  // A request picked for this step and how many tokens it gets.
  struct Pick {
    Request* request;
    int32_t num_tokens;
    bool is_new;
    std::vector<int32_t> encode_media;  // media indices the workers encode for it
    int32_t num_encoder_tokens = 0;     // what they cost the encoder budget
  };

  Scheduler(const SchedulerConfig& config, KvBlockManager kv, EncoderBudget encoder);

  int32_t clamp_new_tokens(int32_t wanted, int32_t budget) const;
  // Both return after exhausting the budget, the queue or the KV cache. schedule_running
  // reports whether it preempted: then no waiting request is admitted in this step.
  bool schedule_running(std::vector<Pick>& picks, int32_t& budget, SchedulerOutput& out);
  void schedule_waiting(std::vector<Pick>& picks, int32_t& budget);
  // A sibling whose group leader is still computing the prompt blocks it could reuse.
  bool waits_for_sibling(const Request& request) const;
  // The group's leader while it runs; nullptr when it has none or it is not running.
  const Request* running_leader(const std::string& group_id) const;
  void preempt(Request* victim, std::vector<Pick>& picks, int32_t& budget, SchedulerOutput& out);
  ScheduledRequest make_scheduled(Pick& pick);

  // Also resolves the plan's request ids, in plan order, into `resolved`.
  Status validate_result(const SchedulerOutput& plan, const StepResult& result,
                         std::vector<Request*>& resolved) const;
  void finish_request(Request* request, FinishReason reason, std::optional<TokenId> stop_token,
                      std::vector<TokenId> new_token_ids);

  SchedulerConfig config_;
  KvBlockManager kv_;
  EncoderBudget encoder_;
  std::unordered_map<std::string, std::unique_ptr<Request>> requests_;
  std::vector<Request*> running_;
  WaitingQueue waiting_;
  std::vector<RequestOutput> outputs_;
  std::vector<std::string> finished_since_plan_;
  std::vector<std::string> pending_aborts_;  // aborted while their step was in flight
  std::unordered_map<std::string, std::string> group_leaders_;  // group id -> leader's request id
  uint64_t next_arrival_seq_ = 0;
  uint64_t step_id_ = 0;
  bool in_flight_ = false;
  int64_t num_preemptions_ = 0;
};

}  // namespace k2::engine
