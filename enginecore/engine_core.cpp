#include "enginecore/engine_core.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>

namespace k2::engine {
namespace {

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

protocol::FinishReason to_protocol(FinishReason r) {
  switch (r) {
    case FinishReason::kNone: return protocol::FinishReason::kNone;
    case FinishReason::kStop: return protocol::FinishReason::kStop;
    case FinishReason::kLength: return protocol::FinishReason::kLength;
    case FinishReason::kAbort: return protocol::FinishReason::kAbort;
  }
  return protocol::FinishReason::kError;
}

protocol::RequestOutput error_output(const std::string& request_id) {
  protocol::RequestOutput out;
  out.request_id = request_id;
  out.finish_reason = protocol::FinishReason::kError;
  return out;
}

void append_unique(std::vector<int32_t>& to, const std::vector<int32_t>& ids) {
  for (int32_t id : ids)
    if (std::find(to.begin(), to.end(), id) == to.end()) to.push_back(id);
}

}  // namespace

Status check_media_spans(const std::vector<protocol::MediaItem>& media, size_t prompt_tokens) {
  uint64_t end = 0;
  for (const auto& m : media) {
    if (m.num_tokens == 0 || m.offset < end || uint64_t{m.offset} + m.num_tokens > prompt_tokens)
      return invalid_argument("media span [" + std::to_string(m.offset) + ", +" + std::to_string(m.num_tokens) +
                              ") is empty, out of order or outside the prompt of " + std::to_string(prompt_tokens) +
                              " tokens");
    if (m.grid_t <= 0 || m.grid_h <= 0 || m.grid_w <= 0 || !m.pixels.valid())
      return invalid_argument("media item without pixels or with an empty grid");
    end = uint64_t{m.offset} + m.num_tokens;
  }
  return Status::ok_status();
}

StopParams stop_params_of(const protocol::SamplingParams& params) {
  StopParams stop;
  stop.max_tokens = static_cast<int32_t>(std::min<uint32_t>(params.max_tokens, INT32_MAX));
  stop.min_tokens = static_cast<int32_t>(std::min<uint32_t>(params.min_tokens, INT32_MAX));
  stop.ignore_eos = params.ignore_eos;
  stop.eos_token_ids = params.eos_token_ids;
  stop.stop_token_ids = params.stop_token_ids;
  return stop;
}

Result<std::unique_ptr<EngineCore>> EngineCore::create(const EngineCoreConfig& config) {
  K2_ASSIGN_OR_RETURN(std::unique_ptr<Scheduler> scheduler, Scheduler::create(config.scheduler, config.kv));
  return std::unique_ptr<EngineCore>(new EngineCore(config, std::move(scheduler)));
}

EngineCore::EngineCore(const EngineCoreConfig& config, std::unique_ptr<Scheduler> scheduler)
    : config_(config), scheduler_(std::move(scheduler)), seed_rng_(config.seed) {}

void EngineCore::add_request(const protocol::AddRequest& request) {
  RequestInfo info{request.params, {}, request.media};
  info.events.push_back({protocol::RequestEventType::kQueued, now_seconds()});
  // The model's stop ids first (eos_token_ids[0] is the EOS proper), then the request's.
  std::vector<int32_t> eos = config_.eos_token_ids;
  append_unique(eos, request.params.eos_token_ids);
  info.params.eos_token_ids = eos;
  // Every request gets a seed so its draws do not depend on what shares its batch.
  if (!info.params.seed) info.params.seed = static_cast<int64_t>(seed_rng_() >> 1);

  RequestParams params;
  params.request_id = request.request_id;
  params.prompt_token_ids = request.prompt.ids;
  params.stop = stop_params_of(info.params);
  params.priority = request.priority;
  params.skip_prefix_cache = info.params.prompt_logprobs.has_value();
  params.cache_salt = request.cache_salt;
  params.group_id = request.group_id;
  for (const protocol::MediaItem& m : request.media) {
    params.media.push_back(MediaSpan{BlockHash{m.hash_low, m.hash_high},
                                     static_cast<int32_t>(std::min<uint32_t>(m.offset, INT32_MAX)),
                                     static_cast<int32_t>(std::min<uint32_t>(m.num_tokens, INT32_MAX))});
  }
  if (request.prompt.location != protocol::DataLocation::kInline || requests_.contains(request.request_id)) {
    pending_.push_back(error_output(request.request_id));
    spdlog::warn("request {}: refused (prompt not inline or duplicate id)", request.request_id);
    return;
  }
  if (Status st = check_media_spans(request.media, request.prompt.ids.size()); !st.ok()) {
    spdlog::warn("request {}: refused: {}", request.request_id, st.to_string());
    pending_.push_back(error_output(request.request_id));
    return;
  }
  if (request.structured) {
    if (Status st = structured_.add(request.request_id, *request.structured); !st.ok()) {
      spdlog::warn("request {}: refused: {}", request.request_id, st.to_string());
      pending_.push_back(error_output(request.request_id));
      return;
    }
  }
  Status s = scheduler_->add_request(std::move(params));
  if (!s.ok()) {
    structured_.remove(request.request_id);
    spdlog::warn("request {}: refused: {}", request.request_id, s.to_string());
    pending_.push_back(error_output(request.request_id));
    return;
  }
  requests_.emplace(request.request_id, std::move(info));
}

void EngineCore::abort(const std::vector<std::string>& request_ids) {
  for (const auto& id : request_ids) scheduler_->abort(id);
  collect_scheduler_outputs();
}

void EngineCore::utility(const protocol::Utility& call) {
  protocol::UtilityOutput out;
  out.call_id = call.call_id;
  if (call.method == "reset_prefix_cache") {
    out.result_json = scheduler_->reset_prefix_cache() ? "true" : "false";
  } else if (call.method == "is_sleeping") {
    out.result_json = "false";
  } else {
    out.failure_message = "unknown utility method '" + call.method + "'";
  }
  pending_utility_.push_back(std::move(out));
}

std::optional<protocol::StepPlan> EngineCore::plan_step() {
  K2_CHECK(!step_in_flight(), "engine core: plan_step() while a step is in flight");
  SchedulerOutput out = scheduler_->schedule();
  if (out.empty()) return expert_load_plan();
  protocol::StepPlan plan;
  plan.step_id = out.step_id;
  plan.report_expert_load = ask_expert_load(true);
  plan.total_num_tokens = static_cast<uint32_t>(out.num_scheduled_tokens);
  plan.finished_request_ids = out.preempted_request_ids;
  plan.finished_request_ids.insert(plan.finished_request_ids.end(), out.finished_request_ids.begin(),
                                   out.finished_request_ids.end());
  const double now = now_seconds();
  for (const std::string& id : out.preempted_request_ids) record_event(id, protocol::RequestEventType::kPreempted, now);
  for (size_t i = 0; i < out.requests.size(); ++i) {
    const ScheduledRequest& s = out.requests[i];
    if (s.is_new) record_event(s.request_id, protocol::RequestEventType::kScheduled, now);
    const Request* request = scheduler_->find_request(s.request_id);
    K2_CHECK(request != nullptr, "engine core: a scheduled request is unknown");
    protocol::ScheduledRequest r;
    r.request_id = s.request_id;
    r.slot = static_cast<uint32_t>(i);
    r.token_ids = protocol::inline_tokens(s.token_ids);
    r.start_position = static_cast<uint32_t>(s.start_position);
    r.num_tokens = static_cast<uint32_t>(s.token_ids.size());
    r.blocks.replace = s.is_new;
    r.blocks.block_ids.assign(s.new_block_ids.begin(), s.new_block_ids.end());
    r.sample = s.needs_sample;
    if (s.needs_sample) r.allowed_token_mask = structured_.next_mask(s.request_id);
    r.num_output_tokens = static_cast<uint32_t>(request->num_output_tokens());
    r.num_prompt_tokens = static_cast<uint32_t>(s.num_prompt_tokens);
    r.encode_media.assign(s.encode_media.begin(), s.encode_media.end());
    if (s.is_new) {
      r.cached_token_ids = s.cached_token_ids;
      r.media = requests_.at(s.request_id).media;
      r.params_index = static_cast<int32_t>(plan.sampling_params.size());
      plan.sampling_params.push_back(requests_.at(s.request_id).params);
    }
    plan.requests.push_back(std::move(r));
  }
  in_flight_ = std::move(out);
  return plan;
}

bool EngineCore::ask_expert_load(bool step_pending) {
  const auto now = std::chrono::steady_clock::now();
  if (now - last_load_ask_ < std::chrono::duration<double>(config_.expert_load_interval_s)) {
    load_unreported_ |= step_pending;
    return false;
  }
  last_load_ask_ = now;
  load_unreported_ = false;
  return true;
}

std::optional<protocol::StepPlan> EngineCore::expert_load_plan() {
  if (!load_unreported_ || scheduler_->has_unfinished_requests() || !ask_expert_load(false)) return std::nullopt;
  protocol::StepPlan plan;
  plan.step_id = protocol::kExpertLoadStepBit | next_load_plan_++;
  plan.report_expert_load = true;
  load_plan_in_flight_ = plan.step_id;
  return plan;
}

void EngineCore::add_expert_load(const protocol::ExpertLoad& delta) {
  if (expert_load_.num_experts != delta.num_experts || expert_load_.layers != delta.layers) {
    if (!expert_load_.layers.empty()) spdlog::warn("engine core: the workers' expert-load table changed shape; restarted");
    expert_load_ = delta;
  } else {
    for (size_t i = 0; i < delta.tokens.size(); ++i) expert_load_.tokens[i] += delta.tokens[i];
  }
  expert_load_changed_ = true;
}

void EngineCore::record_event(const std::string& request_id, protocol::RequestEventType type, double now) {
  if (auto it = requests_.find(request_id); it != requests_.end()) it->second.events.push_back({type, now});
}

Status EngineCore::finish_step(const protocol::StepResult& result) {
  K2_CHECK(step_in_flight(), "engine core: finish_step() with no step in flight");
  if (!result.error.empty()) return internal_error("worker " + std::to_string(result.worker_rank) + ": " + result.error);
  const uint64_t expected = load_plan_in_flight_ ? *load_plan_in_flight_ : in_flight_->step_id;
  if (result.step_id != expected)
    return internal_error("step result for step " + std::to_string(result.step_id) + ", expected " +
                          std::to_string(expected));
  mm_cache_queries_ = result.mm_cache_queries;
  mm_cache_hits_ = result.mm_cache_hits;
  if (result.expert_load) add_expert_load(*result.expert_load);
  if (load_plan_in_flight_) {
    load_plan_in_flight_.reset();
    return Status::ok_status();
  }
  StepResult step;
  step.step_id = result.step_id;
  step.sampled_token_ids.resize(in_flight_->requests.size());
  step_logprobs_.clear();
  step_prompt_logprobs_.clear();
  for (const auto& sample : result.samples) {
    if (sample.slot >= in_flight_->requests.size()) return internal_error("step result names an unknown slot");
    step.sampled_token_ids[sample.slot] = sample.token_ids;
    const std::string& id = in_flight_->requests[sample.slot].request_id;
    if (sample.logprobs) step_logprobs_[id] = *sample.logprobs;
    if (sample.prompt_logprobs) step_prompt_logprobs_[id] = *sample.prompt_logprobs;
  }
  Status s = scheduler_->update_from_output(*in_flight_, step);
  if (!s.ok()) return s;
  const SchedulerOutput done = std::move(*in_flight_);
  in_flight_.reset();
  advance_structured(done, step);
  ++steps_;
  collect_scheduler_outputs();
  step_logprobs_.clear();
  step_prompt_logprobs_.clear();
  return Status::ok_status();
}

void EngineCore::advance_structured(const SchedulerOutput& plan, const StepResult& step) {
  for (size_t i = 0; i < plan.requests.size(); ++i) {
    const std::string& id = plan.requests[i].request_id;
    if (step.sampled_token_ids[i].empty() || !structured_.tracks(id)) continue;
    const int32_t token = step.sampled_token_ids[i][0];
    switch (structured_.accept(id, token)) {
      case StructuredOutputs::Accepted::kContinue:
        break;
      case StructuredOutputs::Accepted::kComplete:
        scheduler_->finish_stopped(id);  // false when the token already finished it (EOS)
        break;
      case StructuredOutputs::Accepted::kRejected:
        spdlog::error("request {}: token {} breaks its structured output grammar; aborted", id, token);
        scheduler_->abort(id);
        break;
    }
  }
}

void EngineCore::collect_scheduler_outputs() {
  for (RequestOutput& o : scheduler_->take_outputs()) {
    protocol::RequestOutput p;
    p.request_id = o.request_id;
    p.new_token_ids = std::move(o.new_token_ids);
    p.finish_reason = to_protocol(o.finish_reason);
    p.stop_token = o.stop_token;
    p.num_cached_tokens = static_cast<uint32_t>(std::max(o.num_cached_tokens, 0));
    if (auto it = step_logprobs_.find(o.request_id); it != step_logprobs_.end() && !p.new_token_ids.empty())
      p.new_logprobs = std::move(it->second);
    // The prompt's scores ride with the first token, as vLLM returns them at prefill's end.
    if (auto it = step_prompt_logprobs_.find(o.request_id); it != step_prompt_logprobs_.end()) {
      p.new_prompt_logprobs = std::move(it->second);
      step_prompt_logprobs_.erase(it);
    }
    if (auto it = requests_.find(o.request_id); it != requests_.end()) {
      p.events = std::move(it->second.events);
      it->second.events.clear();
      if (o.finished()) {
        requests_.erase(it);
        structured_.remove(o.request_id);
      }
    }
    pending_.push_back(std::move(p));
  }
}

protocol::EngineOutputs EngineCore::take_outputs() {
  protocol::EngineOutputs out;
  out.engine_index = config_.engine_index;
  out.outputs = std::move(pending_);
  pending_.clear();
  for (const auto& o : out.outputs)
    if (o.finish_reason != protocol::FinishReason::kNone) out.finished_requests.push_back(o.request_id);
  if (!pending_utility_.empty()) {
    out.utility_output = std::move(pending_utility_.front());
    pending_utility_.erase(pending_utility_.begin());
  }
  const SchedulerStats st = scheduler_->stats();
  out.scheduler_stats = protocol::SchedulerStats{
      .num_running = static_cast<uint32_t>(st.num_running),
      .num_waiting = static_cast<uint32_t>(st.num_waiting),
      .kv_cache_usage = static_cast<float>(st.kv_cache_usage),
      .prefix_cache_queries = static_cast<uint64_t>(st.prefix_cache_queries),
      .prefix_cache_hits = static_cast<uint64_t>(st.prefix_cache_hits),
      .num_preemptions = static_cast<uint64_t>(st.num_preemptions),
      .step = steps_,
      .mm_cache_queries = mm_cache_queries_,
      .mm_cache_hits = mm_cache_hits_,
      .expert_load = std::nullopt};
  if (expert_load_changed_) {
    out.scheduler_stats->expert_load = expert_load_;
    expert_load_changed_ = false;
  }
  out.timestamp = now_seconds();
  return out;
}

}  // namespace k2::engine
