#include "frontend/openai/fake_engine_client.h"

#include <algorithm>
#include <chrono>
#include <string_view>

namespace k2::openai {

namespace {

uint64_t hash_prefix(const std::vector<int32_t>& ids, size_t n) {
  return std::hash<std::string_view>{}(
      std::string_view(reinterpret_cast<const char*>(ids.data()), n * sizeof(int32_t)));
}

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

bool contains(const std::vector<int32_t>& v, int32_t x) { return std::find(v.begin(), v.end(), x) != v.end(); }

}  // namespace

FakeEngineClient::FakeEngineClient(FakeEngineOptions options) : options_(std::move(options)) {
  if (options_.token_max <= options_.token_min) options_.token_max = options_.token_min + 1;
  thread_ = std::thread([this] { run(); });
}

FakeEngineClient::~FakeEngineClient() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

Status FakeEngineClient::add_request(GenerateRequest request, OutputCallback on_output) {
  std::lock_guard lock(mu_);
  if (dead_) return unavailable("engine is dead: " + death_message_);
  for (const auto& a : active_) {
    if (a.request.request_id == request.request_id) return invalid_argument("duplicate request id");
  }
  received_.push_back(request);
  Active a;
  a.script = options_.script ? options_.script(request) : std::nullopt;
  const auto& sp = request.sampling;
  if (sp.seed) {
    a.rng.seed(static_cast<uint64_t>(*sp.seed));
  } else {
    a.rng.seed(std::random_device{}());
  }
  a.num_cached = cached_prefix(request.prompt_ids);
  a.request = std::move(request);
  a.on_output = std::move(on_output);
  active_.push_back(std::move(a));
  cv_.notify_all();
  return Status::ok_status();
}

int32_t FakeEngineClient::cached_prefix(const std::vector<int32_t>& prompt) {
  const size_t bs = static_cast<size_t>(std::max(1, options_.block_size));
  size_t cached = 0;
  for (size_t n = bs; n + 1 <= prompt.size(); n += bs) {
    if (!seen_blocks_.count(hash_prefix(prompt, n))) break;
    cached = n;
  }
  for (size_t n = bs; n <= prompt.size(); n += bs) seen_blocks_.insert(hash_prefix(prompt, n));
  stats_.prefix_cache_queries += prompt.size();
  stats_.prefix_cache_hits += cached;
  return static_cast<int32_t>(cached);
}

void FakeEngineClient::abort(const std::string& request_id) {
  std::lock_guard lock(mu_);
  for (auto& a : active_) {
    if (a.request.request_id == request_id) a.aborted = true;
  }
}

bool FakeEngineClient::healthy() const {
  std::lock_guard lock(mu_);
  return !dead_;
}

EngineStats FakeEngineClient::stats() const {
  std::lock_guard lock(mu_);
  EngineStats s = stats_;
  s.num_running = static_cast<int64_t>(active_.size());
  s.num_waiting = 0;
  s.kv_cache_usage = std::min(1.0, static_cast<double>(active_.size()) / static_cast<double>(options_.max_num_seqs));
  return s;
}

void FakeEngineClient::kill(const std::string& message) {
  // The engine thread delivers the errors, so no request ever gets two callbacks at once.
  std::lock_guard lock(mu_);
  dead_ = true;
  death_message_ = message;
  cv_.notify_all();
}

std::vector<GenerateRequest> FakeEngineClient::received() const {
  std::lock_guard lock(mu_);
  return received_;
}

int32_t FakeEngineClient::next_token(Active& a) {
  const auto& sp = a.request.sampling;
  if (a.script) {
    if (a.output.size() < a.script->tokens.size()) return a.script->tokens[a.output.size()];
    if (!options_.eos_token_ids.empty()) return options_.eos_token_ids.front();
  }
  const uint64_t range = static_cast<uint64_t>(options_.token_max - options_.token_min);
  int32_t prev = a.output.empty() ? (a.request.prompt_ids.empty() ? 0 : a.request.prompt_ids.back()) : a.output.back();
  uint64_t mix = sp.temperature == 0 ? 0 : (sp.seed ? static_cast<uint64_t>(*sp.seed) : a.rng());
  for (uint64_t attempt = 0;; ++attempt) {
    uint64_t h = splitmix64(splitmix64(static_cast<uint64_t>(prev) + 1) ^ splitmix64(mix + 0x9e37) ^
                            splitmix64(a.output.size() * 31 + attempt));
    int32_t t = options_.token_min + static_cast<int32_t>(h % range);
    if (!contains(options_.eos_token_ids, t) || attempt > 8) return t;
  }
}

PositionLogprobs FakeEngineClient::make_logprobs(int32_t token, size_t position, int32_t k) const {
  PositionLogprobs p;
  p.chosen = {token, -0.25f - 0.01f * static_cast<float>(position % 10), 1};
  p.top.push_back(p.chosen);
  const int32_t range = options_.token_max - options_.token_min;
  for (int32_t i = 1; i < k; ++i) {
    int32_t alt = options_.token_min + (token - options_.token_min + i) % range;
    p.top.push_back({alt, -1.0f - static_cast<float>(i), i + 1});
  }
  return p;
}

EngineOutput FakeEngineClient::step(Active& a) {
  EngineOutput out;
  const auto& sp = a.request.sampling;
  out.engine_time = std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
  if (a.first) {
    a.first = false;
    out.num_cached_tokens = a.num_cached;
    out.queued_time = out.engine_time - 0.002;
    out.scheduled_time = out.engine_time - 0.001;
    if (sp.prompt_logprobs) {
      std::vector<PositionLogprobs> pl;
      for (size_t i = 1; i < a.request.prompt_ids.size(); ++i) {
        pl.push_back(make_logprobs(a.request.prompt_ids[i], i, *sp.prompt_logprobs + 1));
        pl.back().chosen.logprob = -1.5f;
        pl.back().chosen.rank = 2;
      }
      out.prompt_logprobs = std::move(pl);
    }
  }
  if (a.aborted) {
    out.finish_reason = FinishReason::kAbort;
    return out;
  }
  for (int i = 0; i < options_.tokens_per_step; ++i) {
    if (a.script && a.script->fail_after && a.output.size() >= *a.script->fail_after) {
      out.finish_reason = FinishReason::kError;
      out.error = "fake engine: scripted failure";
      return out;
    }
    const int32_t t = next_token(a);
    a.output.push_back(t);
    out.new_token_ids.push_back(t);
    if (sp.logprobs) out.logprobs.push_back(make_logprobs(t, a.output.size(), *sp.logprobs));
    const auto n = static_cast<int64_t>(a.output.size());
    const bool may_stop = n >= sp.min_tokens;
    if (may_stop && !sp.ignore_eos && contains(options_.eos_token_ids, t)) {
      out.finish_reason = FinishReason::kStop;
      out.stop_token_id = t;
    } else if (may_stop && contains(sp.stop_token_ids, t)) {
      out.finish_reason = FinishReason::kStop;
      out.stop_token_id = t;
    } else if (n >= sp.max_tokens ||
               static_cast<int64_t>(a.request.prompt_ids.size()) + n >= options_.max_model_len) {
      out.finish_reason = FinishReason::kLength;
    }
    if (out.finished()) return out;
  }
  return out;
}

void FakeEngineClient::run() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    if (active_.empty()) {
      cv_.wait(lock, [&] { return stopping_ || !active_.empty(); });
      continue;
    }
    std::vector<std::pair<OutputCallback, EngineOutput>> deliveries;
    if (dead_) {
      for (auto& a : active_) {
        EngineOutput out;
        out.finish_reason = FinishReason::kError;
        out.error = death_message_;
        deliveries.emplace_back(std::move(a.on_output), std::move(out));
      }
      active_.clear();
    }
    for (auto it = active_.begin(); it != active_.end();) {
      EngineOutput out = step(*it);
      const bool done = out.finished();
      if (!done && out.new_token_ids.empty() && !out.prompt_logprobs) {
        ++it;
        continue;
      }
      deliveries.emplace_back(it->on_output, std::move(out));
      it = done ? active_.erase(it) : std::next(it);
    }
    lock.unlock();
    for (auto& [cb, out] : deliveries) cb(std::move(out));
    lock.lock();
    cv_.wait_for(lock, options_.step_interval, [&] { return stopping_; });
  }
}

}  // namespace k2::openai
