// Randomized load through the scheduler and the fake executor: random configurations
// (block size, tiny KV caches, budgets, chunking, prefix caching, policy), random prompts
// sharing random prefixes, random stop rules and random aborts, some while a step is in
// flight, and media items (a small pool of pictures, in shared prefixes and suffixes) under
// random encoder budgets. After every step: the scheduler's invariants, the token and encoder
// budgets, and (inside the fake executor) the KV contents and that every media item a chunk
// reaches was encoded. At the end: every request finished exactly once, and every
// request that was not aborted produced exactly the tokens it produces when served alone.
#include <gtest/gtest.h>

#include <cstdio>
#include <map>
#include <random>

#include "enginecore/fake_executor.h"
#include "enginecore/scheduler.h"

namespace k2::engine {
namespace {

using testing::FakeExecutor;

constexpr TokenId kEos = 2;
constexpr TokenId kImEnd = 3;
constexpr TokenId kPad = 50;  // media placeholder

// A small vocabulary so that stop ids and shared suffixes come up; EOS now and then.
TokenId stress_sample(const std::string&, std::span<const TokenId> context) {
  const TokenId t = testing::hash_next_token(context, 0, 4000);
  if (t % 41 == 0) return kEos;
  if (t % 97 == 0) return kImEnd;
  return 100 + t % 200;
}

struct Outcome {
  std::vector<TokenId> tokens;
  FinishReason finish = FinishReason::kNone;
  int num_finish_events = 0;
  int num_events_after_finish = 0;
};

struct StressRun {
  SchedulerConfig config;
  KvCacheConfig kv;
  std::mt19937 rng;
  std::map<std::string, RequestParams> added;
  std::map<std::string, Outcome> outcomes;
  std::vector<std::vector<TokenId>> prefixes;
  std::vector<std::vector<MediaSpan>> prefix_media;
  int64_t steps = 0;
  int64_t media_encoded = 0;
  int64_t num_rejected = 0;
  int64_t num_preemptions = 0;
  int64_t num_completed = 0;
  int64_t num_aborted = 0;
  int64_t prefix_hits = 0;

  int32_t uniform(int32_t lo, int32_t hi) { return std::uniform_int_distribution<int32_t>(lo, hi)(rng); }
  bool chance(double p) { return std::bernoulli_distribution(p)(rng); }

  explicit StressRun(uint32_t seed) : rng(seed) {
    kv.block_size = 1 << uniform(0, 4);
    kv.enable_prefix_caching = chance(0.75);
    config.max_model_len = uniform(16, 160);
    // Enough for one longest request, rarely much more: preemption is the common case.
    const int32_t min_blocks = (config.max_model_len + kv.block_size - 1) / kv.block_size + 1;
    kv.num_blocks = min_blocks + uniform(0, 2 * min_blocks);
    if (chance(0.25)) kv.num_blocks = uniform(2, min_blocks);  // some requests can never fit
    config.enable_chunked_prefill = chance(0.8);
    config.max_num_batched_tokens =
        config.enable_chunked_prefill ? uniform(1, 96) : config.max_model_len + uniform(0, 64);
    config.max_num_seqs = uniform(1, 24);
    config.long_prefill_token_threshold = config.enable_chunked_prefill && chance(0.3) ? uniform(1, 32) : 0;
    config.policy = chance(0.5) ? SchedulingPolicy::kFcfs : SchedulingPolicy::kPriority;
    if (chance(0.5)) config.encoder.max_num_encoder_input_tokens = uniform(1, 24);
    if (chance(0.3)) config.encoder.encoder_cache_size = uniform(4, 16);  // some items are refused
    config.encoder.shared_cache = chance(0.7);
    for (int i = 0; i < 4; ++i) {
      std::vector<TokenId> prefix;
      std::vector<MediaSpan> media;
      append_text(prefix, uniform(0, 20));
      if (chance(0.5)) append_image(prefix, media);
      append_text(prefix, uniform(0, 12));
      prefixes.push_back(std::move(prefix));
      prefix_media.push_back(std::move(media));
    }
  }

  void append_text(std::vector<TokenId>& ids, int32_t n) {
    for (int32_t i = 0; i < n; ++i) ids.push_back(uniform(100, 400));
  }

  // One of a few pictures, so that equal and different images meet in the prefix cache.
  void append_image(std::vector<TokenId>& ids, std::vector<MediaSpan>& media) {
    const auto content = static_cast<uint64_t>(uniform(1, 4));
    const MediaSpan m{BlockHash{content, content * 31}, static_cast<int32_t>(ids.size()), uniform(1, 12)};
    ids.insert(ids.end(), static_cast<size_t>(m.num_tokens), kPad);
    media.push_back(m);
  }

  RequestParams random_request(int index) {
    RequestParams p;
    p.request_id = "req-" + std::to_string(index);
    const auto prefix = static_cast<size_t>(uniform(0, 3));
    p.prompt_token_ids = prefixes[prefix];
    p.media = prefix_media[prefix];
    for (int parts = uniform(p.prompt_token_ids.empty() ? 1 : 0, 3); parts > 0; --parts) {
      if (chance(0.3)) {
        append_image(p.prompt_token_ids, p.media);
      } else {
        append_text(p.prompt_token_ids, uniform(1, 12));
      }
    }
    p.stop.max_tokens = uniform(1, 60);
    p.stop.min_tokens = chance(0.2) ? uniform(0, p.stop.max_tokens) : 0;
    p.stop.ignore_eos = chance(0.1);
    p.stop.eos_token_ids = {kEos, kImEnd};
    if (chance(0.3)) p.stop.stop_token_ids = {static_cast<TokenId>(uniform(100, 299))};
    p.priority = uniform(-2, 2);
    p.skip_prefix_cache = chance(0.05);
    return p;
  }

  void collect(Scheduler& s) {
    for (RequestOutput& o : s.take_outputs()) {
      Outcome& out = outcomes[o.request_id];
      if (out.finish != FinishReason::kNone) ++out.num_events_after_finish;
      out.tokens.insert(out.tokens.end(), o.new_token_ids.begin(), o.new_token_ids.end());
      if (o.finished()) {
        out.finish = o.finish_reason;
        ++out.num_finish_events;
      }
    }
  }

  void abort_some(Scheduler& s, double p) {
    for (const auto& [id, params] : added) {
      if (s.find_request(id) != nullptr && chance(p)) {
        EXPECT_TRUE(s.abort(id));
      }
    }
  }

  void run() {
    SCOPED_TRACE("block_size=" + std::to_string(kv.block_size) + " num_blocks=" + std::to_string(kv.num_blocks) +
                 " max_model_len=" + std::to_string(config.max_model_len) +
                 " budget=" + std::to_string(config.max_num_batched_tokens) +
                 " chunked=" + std::to_string(config.enable_chunked_prefill));
    Result<std::unique_ptr<Scheduler>> created = Scheduler::create(config, kv);
    ASSERT_TRUE(created.ok()) << created.status().to_string();
    Scheduler& s = **created;
    FakeExecutor executor(kv, stress_sample);
    const int num_requests = uniform(20, 80);
    int next = 0;
    while ((next < num_requests || s.has_unfinished_requests()) && steps < 20000) {
      for (int k = uniform(0, 3); k > 0 && next < num_requests; --k) {
        RequestParams p = random_request(next++);
        const std::string id = p.request_id;
        const RequestParams copy = p;
        executor.set_media(id, p.media);
        const Status st = s.add_request(std::move(p));
        if (st.ok()) {
          added[id] = copy;
        } else {
          ++num_rejected;
          EXPECT_EQ(st.code(), Code::kOutOfRange) << st.to_string();  // never fits: rejected
        }
      }
      abort_some(s, 0.001);
      const SchedulerOutput plan = s.schedule();
      ++steps;
      ASSERT_LE(plan.num_scheduled_tokens, config.max_num_batched_tokens);
      ASSERT_LE(plan.requests.size(), static_cast<size_t>(config.max_num_seqs));
      for (const ScheduledRequest& r : plan.requests) {
        ASSERT_FALSE(r.token_ids.empty());
      }
      if (!plan.empty()) {
        const StepResult result = executor.execute(plan);
        if (::testing::Test::HasFatalFailure()) return;
        ASSERT_LE(executor.last_step_encoder_tokens(), plan.num_encoder_tokens) << "step " << steps;
        ASSERT_TRUE(executor.last_step_encoder_tokens() <= s.encoder_budget().compute_budget() ||
                    executor.last_step_items_encoded() == 1)
            << "step " << steps << " encodes " << executor.last_step_encoder_tokens() << " tokens";
        abort_some(s, 0.0005);  // the client goes away while the step runs
        const Status st = s.update_from_output(plan, result);
        ASSERT_TRUE(st.ok()) << st.to_string();
      }
      collect(s);
      const Status inv = s.check_invariants();
      ASSERT_TRUE(inv.ok()) << "step " << steps << ": " << inv.to_string();
    }
    ASSERT_FALSE(s.has_unfinished_requests()) << "requests left after " << steps << " steps";
    EXPECT_EQ(s.kv_cache().num_free_blocks(), s.kv_cache().num_usable_blocks());
    num_preemptions = s.stats().num_preemptions;
    prefix_hits = s.stats().prefix_cache_hits;
    media_encoded = executor.num_media_encoded();
    check_outcomes();
  }

  void check_outcomes() {
    for (const auto& [id, params] : added) {
      const Outcome& out = outcomes[id];
      EXPECT_EQ(out.num_finish_events, 1) << id;
      EXPECT_EQ(out.num_events_after_finish, 0) << id;
      const std::vector<TokenId> expected = testing::reference_outputs(
          id, params.prompt_token_ids, params.stop, config.max_model_len, stress_sample);
      if (out.finish == FinishReason::kAbort) {
        // A prefix of what it would have produced.
        EXPECT_LE(out.tokens.size(), expected.size()) << id;
        EXPECT_TRUE(std::equal(out.tokens.begin(), out.tokens.end(), expected.begin())) << id;
        ++num_aborted;
        continue;
      }
      ++num_completed;
      EXPECT_EQ(out.tokens, expected) << id;
    }
  }
};

TEST(SchedulerStress, RandomLoadsKeepInvariantsAndFinishEveryRequest) {
  int64_t steps = 0, rejected = 0, preemptions = 0, completed = 0, aborted = 0, hits = 0, encoded = 0;
  for (uint32_t seed = 1; seed <= 150; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    StressRun run(seed);
    run.run();
    if (HasFatalFailure()) return;
    steps += run.steps;
    rejected += run.num_rejected;
    preemptions += run.num_preemptions;
    completed += run.num_completed;
    aborted += run.num_aborted;
    hits += run.prefix_hits;
    encoded += run.media_encoded;
  }
  // The load must have exercised what it is meant to exercise.
  EXPECT_GT(preemptions, 100);
  EXPECT_GT(completed, 1000);
  EXPECT_GT(aborted, 10);
  EXPECT_GT(rejected, 10);
  EXPECT_GT(hits, 1000);
  EXPECT_GT(encoded, 1000);
  std::printf("steps %lld, completed %lld, aborted %lld, rejected %lld, preemptions %lld, prefix-hit tokens %lld, "
              "media encoded %lld\n",
              static_cast<long long>(steps), static_cast<long long>(completed), static_cast<long long>(aborted),
              static_cast<long long>(rejected), static_cast<long long>(preemptions), static_cast<long long>(hits),
              static_cast<long long>(encoded));
}

}  // namespace
}  // namespace k2::engine
