// EngineCore: the enginecore's work without its transport (vLLM V1's EngineCore).
//
// It turns protocol messages from the frontend into scheduler calls, each scheduler step
// into the StepPlan the workers execute, and the workers' StepResult back into scheduler
// updates and the EngineOutputs the frontend receives. The process loop (engine_loop.h)
// moves these messages over ZeroMQ and the shm ring; tests drive the same object with an
// in-process model runner, so both paths run identical engine code.
//
// Expert-load statistics: at most once per expert_load_interval_s a plan asks the workers
// for the tokens their MoE layers routed since their last report (the same plan reaches every
// rank, so expert-parallel ranks sum their counts in step). The engine adds them up and
// publishes the totals in the next EngineOutputs' stats, only when they changed. When the
// engine falls idle with steps not yet reported, plan_step() returns one plan with no
// requests that only collects the load, so /metrics does not miss the last burst. (With data
// parallelism that plan stands in for one dummy step of an idle rank in a running wave; no
// collective spans DP ranks in this build, so nothing waits for it.) The workers leave the
// tokens of dummy forwards (protocol::kDummyStepBit) out of their counts.
//
// Owns the Scheduler and the per-request sampling parameters. Not thread-safe: the engine
// loop's one thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "enginecore/protocol/messages.h"
#include "enginecore/scheduler.h"
#include "enginecore/structured_outputs.h"
#include "shm/status.h"

namespace k2::engine {

struct EngineCoreConfig {
  SchedulerConfig scheduler;
  KvCacheConfig kv;
  // The model's stop ids: eos_token_ids[0] is the EOS proper, the rest (generation_config's,
  // <|im_end|>) are reported as stop tokens (see StopParams). Merged into every request.
  std::vector<int32_t> eos_token_ids;
  uint64_t seed = 0;  // --seed: seeds for requests that bring none are drawn from it
  uint32_t engine_index = 0;
  // Seconds between plans that ask the workers for their expert load (0: every step).
  double expert_load_interval_s = 1.0;
};

class EngineCore {
 public:
  static Result<std::unique_ptr<EngineCore>> create(const EngineCoreConfig& config);

  // Queues a request. A request the scheduler refuses (prompt too long for max_model_len,
  // longer than the whole KV cache, duplicate id) is not an engine error: it gets a final
  // kError output, returned by the next take_outputs()/finish_step().
  void add_request(const protocol::AddRequest& request);
  void abort(const std::vector<std::string>& request_ids);
  // Runs an RPC (reset_prefix_cache, ...); its answer rides in a later take_outputs().
  void utility(const protocol::Utility& call);

  // Schedules one step. nullopt when there is nothing to run (then no step is in flight).
  std::optional<protocol::StepPlan> plan_step();
  // Applies the workers' result for the plan in flight. An error (a result that does not
  // match the plan, a worker-reported failure) is fatal for the engine.
  Status finish_step(const protocol::StepResult& result);

  // Outputs queued since the last call, with the scheduler stats.
  protocol::EngineOutputs take_outputs();
  bool has_outputs() const { return !pending_.empty() || !pending_utility_.empty() || expert_load_changed_; }

  // Enables structured outputs (see StructuredOutputs::set_vocabulary).
  Status set_vocabulary(std::vector<std::string> token_bytes, int64_t vocab_size) {
    return structured_.set_vocabulary(std::move(token_bytes), vocab_size, config_.eos_token_ids);
  }

  bool has_unfinished_requests() const { return scheduler_->has_unfinished_requests(); }
  bool step_in_flight() const { return in_flight_.has_value() || load_plan_in_flight_.has_value(); }
  // Tokens routed per expert since the engine started, as far as the workers have reported.
  const protocol::ExpertLoad& expert_load() const { return expert_load_; }
  const Scheduler& scheduler() const { return *scheduler_; }
  const EngineCoreConfig& config() const { return config_; }

 private:
  struct RequestInfo {
    protocol::SamplingParams params;  // seed always set, eos ids merged
    // Queued/scheduled/preempted times not yet sent: they ride on the request's next output.
    std::vector<protocol::RequestEvent> events;
    // The prompt's media: sent to the workers whenever the request (re)starts on them.
    std::vector<protocol::MediaItem> media;
  };
  void record_event(const std::string& request_id, protocol::RequestEventType type, double now);

  EngineCore(const EngineCoreConfig& config, std::unique_ptr<Scheduler> scheduler);
  void collect_scheduler_outputs();
  // Advances the grammars of the structured requests sampled in `plan`; ends those whose
  // grammar completed or was broken.
  void advance_structured(const SchedulerOutput& plan, const StepResult& step);
  // Whether the plan being built asks for the expert load (the interval has passed).
  // step_pending: the plan runs the model, so if it does not ask, its load waits for a later
  // plan that does.
  bool ask_expert_load(bool step_pending);
  // The plan without requests that collects the load of steps not yet reported, when idle.
  std::optional<protocol::StepPlan> expert_load_plan();
  void add_expert_load(const protocol::ExpertLoad& delta);

  EngineCoreConfig config_;
  std::unique_ptr<Scheduler> scheduler_;
  std::unordered_map<std::string, RequestInfo> requests_;
  std::optional<SchedulerOutput> in_flight_;
  // Logprobs the workers returned for a request in the step in flight, by request id:
  // of the sampled tokens, and (once, after the last prompt chunk) of the prompt.
  std::unordered_map<std::string, protocol::TokenLogprobs> step_logprobs_;
  std::unordered_map<std::string, protocol::TokenLogprobs> step_prompt_logprobs_;
  std::vector<protocol::RequestOutput> pending_;
  std::vector<protocol::UtilityOutput> pending_utility_;
  StructuredOutputs structured_;
  std::mt19937_64 seed_rng_;
  uint64_t steps_ = 0;
  uint64_t mm_cache_queries_ = 0;  // the workers' encoder cache, as the last result said
  uint64_t mm_cache_hits_ = 0;
  std::chrono::steady_clock::time_point last_load_ask_{};  // the epoch: the first step asks
  bool load_unreported_ = false;  // steps ran since the last plan that asked for the load
  std::optional<uint64_t> load_plan_in_flight_;  // the step id of an expert_load_plan()
  uint64_t next_load_plan_ = 0;
  protocol::ExpertLoad expert_load_;  // totals since start
  bool expert_load_changed_ = false;  // not yet in a take_outputs()
};

// A request's media items must lie inside its prompt, in order, without overlapping.
Status check_media_spans(const std::vector<protocol::MediaItem>& media, size_t prompt_tokens);

// The scheduler's view of a request's stop rules from the wire's sampling parameters.
StopParams stop_params_of(const protocol::SamplingParams& params);

}  // namespace k2::engine
