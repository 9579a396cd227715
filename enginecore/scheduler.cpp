#include "enginecore/scheduler.h"

#include <algorithm>
#include <utility>

namespace k2::engine {

Result<std::unique_ptr<Scheduler>> Scheduler::create(const SchedulerConfig& config,
                                                     const KvCacheConfig& kv_config) {
  if (config.max_num_batched_tokens < 1) return invalid_argument("max_num_batched_tokens must be at least 1");
  if (config.max_num_seqs < 1) return invalid_argument("max_num_seqs must be at least 1");
  if (config.max_model_len < 2) return invalid_argument("max_model_len must be at least 2");
  if (config.long_prefill_token_threshold < 0) {
    return invalid_argument("long_prefill_token_threshold must not be negative");
  }
  // As vLLM: without chunking a whole sequence (a resumed one included) must fit one step.
  if (!config.enable_chunked_prefill) {
    if (config.max_num_batched_tokens < config.max_model_len) {
      return invalid_argument("max_num_batched_tokens (" + std::to_string(config.max_num_batched_tokens) +
                              ") is smaller than max_model_len (" + std::to_string(config.max_model_len) +
                              ") with chunked prefill disabled");
    }
    if (config.long_prefill_token_threshold > 0) {
      return invalid_argument("long_prefill_token_threshold needs chunked prefill");
    }
  }
  K2_ASSIGN_OR_RETURN(KvBlockManager kv, KvBlockManager::create(kv_config));
  K2_ASSIGN_OR_RETURN(EncoderBudget encoder, EncoderBudget::create(config.encoder, config.max_num_batched_tokens));
  return std::unique_ptr<Scheduler>(new Scheduler(config, std::move(kv), std::move(encoder)));
}

Scheduler::Scheduler(const SchedulerConfig& config, KvBlockManager kv, EncoderBudget encoder)
    : config_(config), kv_(std::move(kv)), encoder_(std::move(encoder)), waiting_(config.policy) {}

Status Scheduler::add_request(RequestParams params) {
  K2_RETURN_IF_ERROR(validate_request_params(params, config_.max_model_len));
  if (requests_.contains(params.request_id)) {
    return invalid_argument("request id " + params.request_id + " is already in use");
  }
  K2_RETURN_IF_ERROR(encoder_.check_media(params.request_id, params.media));
  // The last token of the longest possible sequence is sampled, never computed.
  const int64_t longest = std::min<int64_t>(
      static_cast<int64_t>(params.prompt_token_ids.size()) + params.stop.max_tokens, config_.max_model_len);
  if (kv_.blocks_needed(longest - 1) > kv_.num_usable_blocks()) {
    return out_of_range("request " + params.request_id + " may reach " + std::to_string(longest) +
                        " tokens but the KV cache holds at most " +
                        std::to_string(kv_.max_tokens_per_request()) + " tokens per request");
  }
  std::string id = params.request_id;
  auto request = std::make_unique<Request>(std::move(params), next_arrival_seq_++);
  waiting_.push(request.get());
  requests_.emplace(std::move(id), std::move(request));
  return {};
}

int32_t Scheduler::clamp_new_tokens(int32_t wanted, int32_t budget) const {
  int32_t n = std::min(wanted, budget);
  if (config_.long_prefill_token_threshold > 0) n = std::min(n, config_.long_prefill_token_threshold);
  return n;
}

SchedulerOutput Scheduler::schedule() {
  K2_CHECK(!in_flight_, "schedule() called while the previous plan is in flight");
  SchedulerOutput out;
  out.step_id = ++step_id_;
  int32_t budget = config_.max_num_batched_tokens;
  encoder_.begin_step();
  std::vector<Pick> picks;
  const bool preempted = schedule_running(picks, budget, out);
  if (!preempted) schedule_waiting(picks, budget);

  out.requests.reserve(picks.size());
  for (Pick& pick : picks) {
    out.requests.push_back(make_scheduled(pick));
    out.num_scheduled_tokens += pick.num_tokens;
    out.num_encoder_tokens += pick.num_encoder_tokens;
  }
  K2_CHECK(out.num_scheduled_tokens <= config_.max_num_batched_tokens, "token budget exceeded");
  K2_CHECK(running_.size() <= static_cast<size_t>(config_.max_num_seqs), "max_num_seqs exceeded");

  if (out.requests.empty()) {
    // Nothing runs, so nothing is sent: the ids go out with the next plan that does.
    for (std::string& id : out.preempted_request_ids) finished_since_plan_.push_back(std::move(id));
    out.preempted_request_ids.clear();
  } else {
    out.finished_request_ids = std::move(finished_since_plan_);
    finished_since_plan_.clear();
    in_flight_ = true;
  }
  return out;
}

bool Scheduler::schedule_running(std::vector<Pick>& picks, int32_t& budget, SchedulerOutput& out) {
  bool preempted_any = false;
  size_t i = 0;
  while (i < running_.size() && budget > 0) {
    Request* request = running_[i];
    const EncoderPlan encode = encoder_.plan(
        *request, request->num_computed_tokens(),
        clamp_new_tokens(request->num_tokens() - request->num_computed_tokens(), budget));
    const int32_t num_new = encode.num_new_tokens;
    // Caught up (possible once several plans may be in flight), or its next media item
    // does not fit this step's encoder budget.
    if (num_new <= 0) {
      ++i;
      continue;
    }
    bool self_preempted = false;
    while (!kv_.allocate_slots(*request, num_new)) {
      Request* victim = pick_preemption_victim(running_, config_.policy);
      preempted_any = true;
      const auto victim_index = static_cast<size_t>(std::find(running_.begin(), running_.end(), victim) - running_.begin());
      if (victim_index < i) --i;  // already scheduled in this step (priority policy only)
      preempt(victim, picks, budget, out);
      if (victim == request) {
        self_preempted = true;
        break;
      }
    }
    if (self_preempted) break;
    encoder_.commit(*request, encode);
    picks.push_back({request, num_new, /*is_new=*/false, encode.encode, encode.num_encoder_tokens});
    budget -= num_new;
    ++i;
  }
  return preempted_any;
}

void Scheduler::preempt(Request* victim, std::vector<Pick>& picks, int32_t& budget, SchedulerOutput& out) {
  auto picked = std::find_if(picks.begin(), picks.end(), [victim](const Pick& p) { return p.request == victim; });
  if (picked != picks.end()) {
    budget += picked->num_tokens;
    encoder_.refund(picked->num_encoder_tokens);
    picks.erase(picked);
  }
  std::erase(running_, victim);
  // Its computed full blocks were registered by the last update, so the recompute may
  // find most of them again in the prefix cache.
  kv_.free(*victim);
  victim->set_num_computed_tokens(0);
  encoder_.release(*victim);  // the workers drop its encoder outputs with its state
  victim->set_status(RequestStatus::kPreempted);
  victim->count_preemption();
  ++num_preemptions_;
  waiting_.push_preempted(victim);
  out.preempted_request_ids.push_back(victim->id());
}

const Request* Scheduler::running_leader(const std::string& group_id) const {
  auto leader_id = group_leaders_.find(group_id);
  if (leader_id == group_leaders_.end()) return nullptr;
  const Request* leader = find_request(leader_id->second);
  return leader != nullptr && leader->status() == RequestStatus::kRunning ? leader : nullptr;
}

bool Scheduler::waits_for_sibling(const Request& request) const {
  if (request.group_id().empty() || !kv_.reads_cache(request)) return false;
  const Request* leader = running_leader(request.group_id());
  if (leader == nullptr || leader == &request) return false;
  // Bounded by the leader's own prompt, so that a group whose prompts differ (not one the
  // frontend sends) waits at most for the leader's prefill.
  const int32_t reusable_blocks =
      std::min((request.num_tokens() - 1) / kv_.block_size(), leader->num_prompt_tokens() / kv_.block_size());
  return leader->blocks().num_hashed_blocks < reusable_blocks;
}

void Scheduler::schedule_waiting(std::vector<Pick>& picks, int32_t& budget) {
  std::vector<Request*> deferred;
  while (!waiting_.empty() && budget > 0 && running_.size() < static_cast<size_t>(config_.max_num_seqs)) {
    Request* request = waiting_.front();
    if (waits_for_sibling(*request)) {
      waiting_.pop_front();
      deferred.push_back(request);
      continue;
    }
    const PrefixHit hit = kv_.find_cached_prefix(*request);
    const int32_t remaining = request->num_tokens() - hit.num_tokens;
    if (!config_.enable_chunked_prefill && remaining > budget) break;
    // As vLLM, a request whose chunk the encoder budget cuts to nothing ends admission.
    const EncoderPlan encode = encoder_.plan(*request, hit.num_tokens, clamp_new_tokens(remaining, budget));
    const int32_t num_new = encode.num_new_tokens;
    if (num_new <= 0 || !kv_.allocate_slots(*request, num_new, &hit)) break;

    waiting_.pop_front();
    kv_.record_prefix_query(request->num_tokens(), hit.num_tokens);
    request->set_num_computed_tokens(hit.num_tokens);
    if (request->num_cached_tokens() < 0) request->set_num_cached_tokens(hit.num_tokens);
    request->set_status(RequestStatus::kRunning);
    running_.push_back(request);
    encoder_.commit(*request, encode);
    picks.push_back({request, num_new, /*is_new=*/true, encode.encode, encode.num_encoder_tokens});
    budget -= num_new;
    if (!request->group_id().empty() && running_leader(request->group_id()) == nullptr) {
      group_leaders_[request->group_id()] = request->id();
    }
  }
  // Back in front, in their order (push_preempted puts a request first under FCFS and by its
  // key under priority, so pushing in reverse keeps both orders).
  for (auto it = deferred.rbegin(); it != deferred.rend(); ++it) waiting_.push_preempted(*it);
}

ScheduledRequest Scheduler::make_scheduled(Pick& pick) {
  Request& request = *pick.request;
  const std::span<const TokenId> tokens = request.all_token_ids();
  const int32_t start = request.num_computed_tokens();
  ScheduledRequest s;
  s.request_id = request.id();
  s.is_new = pick.is_new;
  s.num_prompt_tokens = request.num_prompt_tokens();
  s.start_position = start;
  s.token_ids.assign(tokens.begin() + start, tokens.begin() + start + pick.num_tokens);
  s.encode_media = std::move(pick.encode_media);
  if (pick.is_new) s.cached_token_ids.assign(tokens.begin(), tokens.begin() + start);

  RequestBlocks& blocks = request.blocks();
  if (pick.is_new) blocks.num_sent_blocks = 0;
  s.new_block_ids.assign(blocks.block_table.begin() + blocks.num_sent_blocks, blocks.block_table.end());
  blocks.num_sent_blocks = static_cast<int32_t>(blocks.block_table.size());

  // Advanced now, as vLLM does, so that a future async scheduler can plan the next step
  // before this one returns.
  request.set_num_computed_tokens(start + pick.num_tokens);
  s.needs_sample = request.num_computed_tokens() == request.num_tokens();
  return s;
}

Status Scheduler::validate_result(const SchedulerOutput& plan, const StepResult& result,
                                  std::vector<Request*>& resolved) const {
  if (plan.requests.empty()) {
    if (!result.sampled_token_ids.empty()) return invalid_argument("tokens returned for an empty plan");
    return {};
  }
  if (!in_flight_ || plan.step_id != step_id_) {
    return invalid_argument("plan " + std::to_string(plan.step_id) + " is not the one in flight");
  }
  if (result.step_id != plan.step_id) {
    return invalid_argument("result of step " + std::to_string(result.step_id) + " for plan " +
                            std::to_string(plan.step_id));
  }
  if (result.sampled_token_ids.size() != plan.requests.size()) {
    return invalid_argument("result has " + std::to_string(result.sampled_token_ids.size()) +
                            " entries for " + std::to_string(plan.requests.size()) + " scheduled requests");
  }
  for (size_t i = 0; i < plan.requests.size(); ++i) {
    const ScheduledRequest& s = plan.requests[i];
    const std::vector<TokenId>& sampled = result.sampled_token_ids[i];
    auto it = requests_.find(s.request_id);
    if (it == requests_.end()) return invalid_argument("unknown request " + s.request_id);
    resolved.push_back(it->second.get());
    if (s.needs_sample ? sampled.size() != 1 : !sampled.empty()) {
      return invalid_argument("request " + s.request_id + ": got " + std::to_string(sampled.size()) +
                              " sampled tokens, expected " + (s.needs_sample ? "1" : "0"));
    }
    if (s.needs_sample && sampled[0] < 0) return invalid_argument("request " + s.request_id + ": negative token");
  }
  return {};
}

Status Scheduler::update_from_output(const SchedulerOutput& plan, const StepResult& result) {
  std::vector<Request*> resolved;
  resolved.reserve(plan.requests.size());
  K2_RETURN_IF_ERROR(validate_result(plan, result, resolved));
  if (plan.requests.empty()) return {};
  in_flight_ = false;
  for (size_t i = 0; i < plan.requests.size(); ++i) {
    const ScheduledRequest& s = plan.requests[i];
    Request* request = resolved[i];
    kv_.cache_computed_blocks(*request);
    if (!s.needs_sample) continue;
    const TokenId token = result.sampled_token_ids[i][0];
    request->append_output_token(token);
    std::optional<TokenId> stop_token;
    const FinishReason reason = check_stop(*request, config_.max_model_len, &stop_token);
    if (reason != FinishReason::kNone) {
      finish_request(request, reason, stop_token, {token});
    } else {
      outputs_.push_back(RequestOutput{request->id(), {token}, FinishReason::kNone, std::nullopt,
                                       std::max(0, request->num_cached_tokens())});
    }
  }
  std::vector<std::string> aborts = std::move(pending_aborts_);
  pending_aborts_.clear();
  for (const std::string& id : aborts) abort(id);
  return {};
}

bool Scheduler::abort(const std::string& request_id) {
  auto it = requests_.find(request_id);
  if (it == requests_.end()) return false;
  Request* request = it->second.get();
  // Its blocks are being written by the step in flight: free them once the step is back.
  if (in_flight_ && request->status() == RequestStatus::kRunning) {
    if (std::find(pending_aborts_.begin(), pending_aborts_.end(), request_id) == pending_aborts_.end()) {
      pending_aborts_.push_back(request_id);
    }
    return true;
  }
  finish_request(request, FinishReason::kAbort, std::nullopt, {});
  return true;
}

bool Scheduler::finish_stopped(const std::string& request_id) {
  auto it = requests_.find(request_id);
  if (it == requests_.end()) return false;
  Request* request = it->second.get();
  if (in_flight_ && request->status() == RequestStatus::kRunning) return false;
  finish_request(request, FinishReason::kStop, std::nullopt, {});
  return true;
}

void Scheduler::finish_request(Request* request, FinishReason reason, std::optional<TokenId> stop_token,
                               std::vector<TokenId> new_token_ids) {
  const bool on_workers = request->status() == RequestStatus::kRunning;
  if (on_workers) {
    std::erase(running_, request);
  } else {
    waiting_.remove(request);
  }
  kv_.free(*request);
  encoder_.release(*request);
  request->finish(reason, stop_token);
  std::string id = request->id();
  if (auto leader = group_leaders_.find(request->group_id()); leader != group_leaders_.end() && leader->second == id) {
    group_leaders_.erase(leader);
  }
  outputs_.push_back(RequestOutput{id, std::move(new_token_ids), reason, stop_token,
                                   std::max(0, request->num_cached_tokens())});
  requests_.erase(id);
  // Preempted and never-scheduled requests hold no worker state.
  if (on_workers) finished_since_plan_.push_back(std::move(id));
}

std::vector<RequestOutput> Scheduler::take_outputs() {
  std::vector<RequestOutput> out = std::move(outputs_);
  outputs_.clear();
  return out;
}

const Request* Scheduler::find_request(const std::string& request_id) const {
  auto it = requests_.find(request_id);
  return it == requests_.end() ? nullptr : it->second.get();
}

SchedulerStats Scheduler::stats() const {
  SchedulerStats s;
  s.num_running = num_running();
  s.num_waiting = num_waiting();
  s.kv_cache_usage = kv_.usage();
  s.prefix_cache_queries = kv_.prefix_cache_stats().queries;
  s.prefix_cache_hits = kv_.prefix_cache_stats().hits;
  s.num_preemptions = num_preemptions_;
  return s;
}

}  // namespace k2::engine
