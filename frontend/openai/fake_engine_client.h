// FakeEngineClient: an EngineClient with no model, for tests of the HTTP/OpenAI stack.
//
// One engine thread steps every `step_interval`, emitting `tokens_per_step` tokens per
// running request, and applies the engine-side stop checks as the enginecore does
// (max_tokens, max_model_len, min_tokens, EOS unless ignore_eos, stop_token_ids).
//
// What it generates, per request: the `script` callback may return a fixed token list
// (emitted in order, then the first EOS id); otherwise next = f(previous token, seed)
// within [token_min, token_max): deterministic for temperature 0 or a given seed (so a
// seed reproduces), random otherwise. Logprobs are made up but well-formed (the chosen
// token first, rank 1). Prefix caching is imitated: a prompt's cached tokens are its
// longest block-aligned prefix seen before (capped at len - 1).
//
// Failure injection: a script may fail the request after k tokens (kError, as a worker
// death looks to one request), kill() fails everything in flight and makes the client
// unhealthy, and add_request then refuses.
//
// Thread-safe; callbacks run on the engine thread without the lock held.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <list>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "frontend/openai/engine_client.h"

namespace k2::openai {

struct FakeScript {
  std::vector<int32_t> tokens;
  std::optional<size_t> fail_after;  // fail with kError after this many tokens
};

struct FakeEngineOptions {
  std::chrono::microseconds step_interval{2000};
  int tokens_per_step = 1;
  std::vector<int32_t> eos_token_ids;
  int32_t token_min = 0;
  int32_t token_max = 256;
  int64_t max_model_len = 2048;
  int32_t block_size = 16;
  int64_t max_num_seqs = 256;  // only for kv_cache_usage in stats
  std::function<std::optional<FakeScript>(const GenerateRequest&)> script;
};

class FakeEngineClient : public EngineClient {
 public:
  explicit FakeEngineClient(FakeEngineOptions options);
  ~FakeEngineClient() override;

  Status add_request(GenerateRequest request, OutputCallback on_output) override;
  void abort(const std::string& request_id) override;
  bool healthy() const override;
  EngineStats stats() const override;

  // Simulates the engine dying: every in-flight request ends with kError.
  void kill(const std::string& message);
  // Requests added so far (their sampling params are what the frontend sent).
  std::vector<GenerateRequest> received() const;

 private:
  struct Active {
    GenerateRequest request;
    OutputCallback on_output;
    std::optional<FakeScript> script;
    std::vector<int32_t> output;
    std::mt19937_64 rng;
    int32_t num_cached = 0;
    bool first = true;
    bool aborted = false;
  };
  void run();
  // Advances one request by one step; returns the output to deliver (finished or not).
  EngineOutput step(Active& a);
  int32_t next_token(Active& a);
  PositionLogprobs make_logprobs(int32_t token, size_t position, int32_t k) const;
  int32_t cached_prefix(const std::vector<int32_t>& prompt);

  FakeEngineOptions options_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::list<Active> active_;
  std::vector<GenerateRequest> received_;
  std::unordered_set<uint64_t> seen_blocks_;
  EngineStats stats_;
  bool dead_ = false;
  std::string death_message_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace k2::openai
