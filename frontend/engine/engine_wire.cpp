#include "frontend/engine/engine_wire.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>


namespace k2::frontend {
namespace {

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

openai::FinishReason to_openai(protocol::FinishReason r) {
  switch (r) {
    case protocol::FinishReason::kNone: return openai::FinishReason::kNone;
    case protocol::FinishReason::kStop: return openai::FinishReason::kStop;
    case protocol::FinishReason::kLength: return openai::FinishReason::kLength;
    case protocol::FinishReason::kAbort: return openai::FinishReason::kAbort;
    case protocol::FinishReason::kError: return openai::FinishReason::kError;
  }
  return openai::FinishReason::kError;
}

std::vector<openai::PositionLogprobs> to_positions(const protocol::TokenLogprobs& lp) {
  std::vector<openai::PositionLogprobs> out;
  for (uint32_t p = 0; p < lp.num_positions; ++p) {
    const size_t base = size_t{p} * lp.width;
    openai::PositionLogprobs pos;
    if (lp.width > 0) pos.chosen = {lp.token_ids[base], lp.logprobs[base], lp.ranks[p]};
    for (uint32_t k = 1; k < lp.width; ++k)
      pos.top.push_back({lp.token_ids[base + k], lp.logprobs[base + k], static_cast<int32_t>(k)});
    out.push_back(std::move(pos));
  }
  return out;
}

}  // namespace

Result<protocol::SamplingParams> to_protocol_params(const openai::SamplingParams& s) {
  if (s.n != 1) return invalid_argument("the engine takes n = 1 per request (the frontend fans out n > 1)");
  if (s.allowed_token_ids) return unimplemented("allowed_token_ids is not supported by the engine yet");
  if (s.max_tokens < 0 || s.min_tokens < 0) return invalid_argument("max_tokens and min_tokens must be >= 0");
  protocol::SamplingParams p;
  p.temperature = static_cast<float>(s.temperature);
  p.top_p = static_cast<float>(s.top_p);
  p.top_k = s.top_k;
  p.min_p = static_cast<float>(s.min_p);
  p.seed = s.seed;
  p.max_tokens = static_cast<uint32_t>(s.max_tokens);
  p.min_tokens = static_cast<uint32_t>(s.min_tokens);
  p.ignore_eos = s.ignore_eos;
  p.stop_token_ids = s.stop_token_ids;
  if (s.logprobs) {
    if (*s.logprobs < 0) return invalid_argument("logprobs must be >= 0");
    p.logprobs = static_cast<uint32_t>(*s.logprobs);
  }
  if (s.prompt_logprobs) {
    if (*s.prompt_logprobs < 0) return invalid_argument("prompt_logprobs must be >= 0");
    p.prompt_logprobs = static_cast<uint32_t>(*s.prompt_logprobs);
  }
  p.presence_penalty = static_cast<float>(s.presence_penalty);
  p.frequency_penalty = static_cast<float>(s.frequency_penalty);
  p.repetition_penalty = static_cast<float>(s.repetition_penalty);
  for (const auto& [token, bias] : s.logit_bias)
    p.logit_bias.push_back(protocol::LogitBias{token, static_cast<float>(bias)});
  p.n = 1;
  return p;
}

Result<protocol::AddRequest> to_add_request(const openai::GenerateRequest& request) {
  K2_ASSIGN_OR_RETURN(protocol::SamplingParams params, to_protocol_params(request.sampling));
  if (request.prompt_ids.empty()) return invalid_argument("the prompt is empty");
  protocol::AddRequest add;
  add.request_id = request.request_id;
  add.params = std::move(params);
  add.arrival_time = now_seconds();
  add.priority = request.priority;
  add.cache_salt = request.cache_salt.value_or("");
  add.group_id = request.group_id.value_or("");
  if (request.structured) {
    add.structured = protocol::StructuredOutputParams{request.structured->json_schema, request.structured->json_object,
                                                      request.structured->reasoning_end_token_id};
  }
  return add;
}

openai::EngineOutput to_engine_output(const protocol::RequestOutput& o, double engine_time) {
  openai::EngineOutput out;
  out.engine_time = engine_time;
  for (const protocol::RequestEvent& e : o.events) {
    if (e.type == protocol::RequestEventType::kQueued) out.queued_time = e.timestamp;
    // A preempted request is scheduled again; vLLM's scheduled_ts is the first time.
    if (e.type == protocol::RequestEventType::kScheduled && out.scheduled_time == 0) out.scheduled_time = e.timestamp;
  }
  out.new_token_ids = o.new_token_ids;
  if (o.new_logprobs) out.logprobs = to_positions(*o.new_logprobs);
  if (o.new_prompt_logprobs) out.prompt_logprobs = to_positions(*o.new_prompt_logprobs);
  out.finish_reason = to_openai(o.finish_reason);
  if (o.finish_reason == protocol::FinishReason::kStop) out.stop_token_id = o.stop_token;
  out.num_cached_tokens = static_cast<int32_t>(o.num_cached_tokens);
  if (o.finish_reason == protocol::FinishReason::kError)
    out.error = "the engine refused the request (it cannot fit max_model_len or the KV cache)";
  return out;
}

openai::EngineStats to_stats(const protocol::SchedulerStats& st,
                             std::shared_ptr<const openai::ExpertLoadTotals> previous_load) {
  return openai::EngineStats{st.num_running,          st.num_waiting,       st.kv_cache_usage,
                             st.prefix_cache_queries, st.prefix_cache_hits, st.num_preemptions,
                             st.mm_cache_queries,     st.mm_cache_hits,
                             openai::expert_load_after(std::move(previous_load), st.expert_load)};
}

openai::EngineStats sum_stats(const std::vector<openai::EngineStats>& ranks) {
  openai::EngineStats sum;
  const double count = std::max<double>(1, static_cast<double>(ranks.size()));
  for (const openai::EngineStats& r : ranks) {
    sum.num_running += r.num_running;
    sum.num_waiting += r.num_waiting;
    sum.kv_cache_usage += r.kv_cache_usage / count;
    sum.prefix_cache_queries += r.prefix_cache_queries;
    sum.prefix_cache_hits += r.prefix_cache_hits;
    sum.num_preemptions += r.num_preemptions;
    sum.mm_cache_queries += r.mm_cache_queries;
    sum.mm_cache_hits += r.mm_cache_hits;
    sum.expert_load = openai::sum_expert_load(sum.expert_load, r.expert_load);
  }
  return sum;
}

EngineCapacities fresh_capacities() {
  EngineCapacities c;
  c.max_model_len = UINT32_MAX;
  return c;
}

ReadyFacts add_ready(const protocol::ReadyMsg& ready, uint32_t rank, EngineCapacities& capacities) {
  capacities.max_model_len = std::min(capacities.max_model_len, ready.max_model_len);
  capacities.num_kv_blocks += ready.num_kv_blocks;
  capacities.block_size = ready.block_size;
  capacities.max_num_seqs = ready.max_num_seqs;
  capacities.max_num_batched_tokens = ready.max_num_batched_tokens;
  ReadyFacts facts;
  nlohmann::json json = nlohmann::json::parse(ready.config_json, nullptr, false);
  if (!json.is_object()) return facts;
  for (const auto& w : json.value("worker_pids", nlohmann::json::array()))
    if (w.is_number_integer()) facts.worker_pids.push_back(w.get<pid_t>());
  if (rank == 0) {
    for (const auto& e : json.value("eos_token_ids", nlohmann::json::array()))
      if (e.is_number_integer()) capacities.eos_token_ids.push_back(e.get<int32_t>());
  }
  facts.dp_waves = json.value("dp_waves", false);
  return facts;
}

}  // namespace k2::frontend
