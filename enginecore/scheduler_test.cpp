#include "enginecore/scheduler.h"

#include <gtest/gtest.h>

#include <map>
#include <numeric>

#include "enginecore/fake_executor.h"

namespace k2::engine {
namespace {

using testing::FakeExecutor;
using testing::SampleFn;

constexpr TokenId kEos = 2;
constexpr TokenId kImEnd = 3;
constexpr TokenId kStopId = 4;

TokenId default_sample(const std::string&, std::span<const TokenId> context) {
  return testing::hash_next_token(context, 100, 900);  // never a special id
}

std::vector<TokenId> iota_tokens(int32_t n, TokenId first) {
  std::vector<TokenId> v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), first);
  return v;
}

StopParams max_tokens(int32_t n) {
  StopParams s;
  s.max_tokens = n;
  s.eos_token_ids = {kEos, kImEnd};
  return s;
}

// What the frontend would have seen of one request.
struct Record {
  std::vector<TokenId> tokens;
  FinishReason finish = FinishReason::kNone;
  std::optional<TokenId> stop_token;
  int32_t num_cached_tokens = 0;
  int num_events_after_finish = 0;
};

class Harness {
 public:
  Harness(SchedulerConfig config, KvCacheConfig kv, SampleFn sample = default_sample)
      : config_(config), kv_(kv), sample_(sample), executor_(kv, sample) {
    Result<std::unique_ptr<Scheduler>> s = Scheduler::create(config, kv);
    EXPECT_TRUE(s.ok()) << s.status().to_string();
    scheduler = std::move(s).value();
  }

  Status add(const std::string& id, std::vector<TokenId> prompt, StopParams stop, int32_t priority = 0) {
    prompts[id] = prompt;
    stops[id] = stop;
    RequestParams p{id, std::move(prompt), std::move(stop), priority, false, {}, {}, {}};
    return scheduler->add_request(std::move(p));
  }

  // One of the n siblings of a prompt (group), or a salted request (salt).
  Status add_in(const std::string& id, std::vector<TokenId> prompt, StopParams stop, std::string group,
                std::string salt = "") {
    prompts[id] = prompt;
    stops[id] = stop;
    RequestParams p{id, std::move(prompt), std::move(stop), 0, false, std::move(salt), std::move(group), {}};
    return scheduler->add_request(std::move(p));
  }

  // One engine-loop iteration: schedule, execute, update, collect outputs.
  SchedulerOutput step() {
    SchedulerOutput plan = scheduler->schedule();
    EXPECT_LE(plan.num_scheduled_tokens, config_.max_num_batched_tokens);
    int32_t sum = 0;
    for (const ScheduledRequest& s : plan.requests) sum += static_cast<int32_t>(s.token_ids.size());
    EXPECT_EQ(sum, plan.num_scheduled_tokens);
    if (!plan.empty()) {
      const StepResult result = executor_.execute(plan);
      const Status st = scheduler->update_from_output(plan, result);
      EXPECT_TRUE(st.ok()) << st.to_string();
    }
    collect();
    const Status inv = scheduler->check_invariants();
    EXPECT_TRUE(inv.ok()) << inv.to_string();
    return plan;
  }

  void collect() {
    for (RequestOutput& o : scheduler->take_outputs()) {
      Record& r = records[o.request_id];
      if (r.finish != FinishReason::kNone) ++r.num_events_after_finish;
      r.tokens.insert(r.tokens.end(), o.new_token_ids.begin(), o.new_token_ids.end());
      r.finish = o.finish_reason;
      r.stop_token = o.stop_token;
      r.num_cached_tokens = o.num_cached_tokens;
    }
  }

  int run_to_completion(int max_steps = 10000) {
    int steps = 0;
    // Stops at the first failure: a broken scheduler must not flood the log for 10000 steps.
    while (scheduler->has_unfinished_requests() && steps < max_steps && !::testing::Test::HasFailure()) {
      step();
      ++steps;
    }
    EXPECT_FALSE(scheduler->has_unfinished_requests()) << "did not finish in " << max_steps << " steps";
    return steps;
  }

  std::vector<TokenId> expected(const std::string& id) const {
    return testing::reference_outputs(id, prompts.at(id), stops.at(id), config_.max_model_len, sample_);
  }

  std::unique_ptr<Scheduler> scheduler;
  std::map<std::string, Record> records;
  std::map<std::string, std::vector<TokenId>> prompts;
  std::map<std::string, StopParams> stops;

 private:
  SchedulerConfig config_;
  KvCacheConfig kv_;
  SampleFn sample_;
  FakeExecutor executor_;
};

SchedulerConfig config(int32_t max_batched, int32_t max_seqs = 16, int32_t max_model_len = 256) {
  SchedulerConfig c;
  c.max_num_batched_tokens = max_batched;
  c.max_num_seqs = max_seqs;
  c.max_model_len = max_model_len;
  return c;
}

KvCacheConfig kv_config(int32_t num_blocks, int32_t block_size = 4, bool prefix_caching = true) {
  return KvCacheConfig{block_size, num_blocks, prefix_caching, 0};
}

TEST(Scheduler, RejectsInconsistentConfig) {
  SchedulerConfig c = config(8, 4, 16);
  EXPECT_FALSE(Scheduler::create(c, kv_config(10, 3)).ok());
  c.enable_chunked_prefill = false;
  EXPECT_FALSE(Scheduler::create(c, kv_config(10)).ok());  // 8 tokens/step < max_model_len 16
  c.max_num_batched_tokens = 16;
  EXPECT_TRUE(Scheduler::create(c, kv_config(10)).ok());
  c.long_prefill_token_threshold = 4;
  EXPECT_FALSE(Scheduler::create(c, kv_config(10)).ok());
  EXPECT_FALSE(Scheduler::create(config(0), kv_config(10)).ok());
  EXPECT_FALSE(Scheduler::create(config(8, 0), kv_config(10)).ok());
}

TEST(Scheduler, ChunkedPrefillSplitsAPromptAcrossSteps) {
  Harness h(config(8), kv_config(64));
  const std::vector<TokenId> prompt = iota_tokens(20, 10);
  ASSERT_TRUE(h.add("a", prompt, max_tokens(6)).ok());

  const int32_t expected_starts[] = {0, 8, 16};
  const int32_t expected_counts[] = {8, 8, 4};
  const size_t expected_new_blocks[] = {2, 2, 1};
  for (int k = 0; k < 3; ++k) {
    const SchedulerOutput plan = h.step();
    ASSERT_EQ(plan.requests.size(), 1u);
    const ScheduledRequest& s = plan.requests[0];
    EXPECT_EQ(s.is_new, k == 0);
    EXPECT_EQ(s.start_position, expected_starts[k]);
    EXPECT_EQ(s.token_ids.size(), static_cast<size_t>(expected_counts[k]));
    EXPECT_EQ(s.token_ids, std::vector<TokenId>(prompt.begin() + expected_starts[k],
                                                prompt.begin() + expected_starts[k] + expected_counts[k]));
    EXPECT_EQ(s.new_block_ids.size(), expected_new_blocks[k]);
    EXPECT_EQ(s.needs_sample, k == 2);  // no logits for a non-final chunk
    EXPECT_EQ(s.num_prompt_tokens, 20);
  }
  EXPECT_EQ(h.records["a"].tokens.size(), 1u);
  // Decode: one token per step, the last sampled one, a new block every 4 positions.
  const SchedulerOutput decode = h.step();
  ASSERT_EQ(decode.requests.size(), 1u);
  EXPECT_EQ(decode.requests[0].start_position, 20);
  EXPECT_EQ(decode.requests[0].token_ids, std::vector<TokenId>{h.records["a"].tokens[0]});
  EXPECT_EQ(decode.requests[0].new_block_ids.size(), 1u);
  EXPECT_TRUE(decode.requests[0].needs_sample);
  h.run_to_completion();
  EXPECT_EQ(h.records["a"].tokens, h.expected("a"));
  EXPECT_EQ(h.records["a"].finish, FinishReason::kLength);
}

TEST(Scheduler, RunningRequestsComeFirstAndWaitingOnesShareTheRest) {
  Harness h(config(10), kv_config(64));
  ASSERT_TRUE(h.add("a", iota_tokens(6, 10), max_tokens(20)).ok());
  h.step();
  ASSERT_TRUE(h.add("b", iota_tokens(20, 300), max_tokens(5)).ok());
  const int32_t b_counts[] = {9, 9, 2};
  for (int k = 0; k < 3; ++k) {
    const SchedulerOutput plan = h.step();
    ASSERT_EQ(plan.requests.size(), 2u);
    EXPECT_EQ(plan.requests[0].request_id, "a");
    EXPECT_EQ(plan.requests[0].token_ids.size(), 1u);
    EXPECT_EQ(plan.requests[1].request_id, "b");
    EXPECT_EQ(plan.requests[1].token_ids.size(), static_cast<size_t>(b_counts[k]));
    EXPECT_EQ(plan.num_scheduled_tokens, 1 + b_counts[k]);
  }
  h.run_to_completion();
  EXPECT_EQ(h.records["a"].tokens, h.expected("a"));
  EXPECT_EQ(h.records["b"].tokens, h.expected("b"));
}

TEST(Scheduler, MaxNumSeqsCapsTheRunningSet) {
  Harness h(config(64, /*max_seqs=*/2), kv_config(64));
  ASSERT_TRUE(h.add("a", iota_tokens(4, 10), max_tokens(3)).ok());
  ASSERT_TRUE(h.add("b", iota_tokens(4, 20), max_tokens(5)).ok());
  ASSERT_TRUE(h.add("c", iota_tokens(4, 30), max_tokens(3)).ok());
  SchedulerOutput plan = h.step();
  EXPECT_EQ(plan.requests.size(), 2u);
  EXPECT_EQ(h.scheduler->num_waiting(), 1);
  bool c_seen = false;
  while (h.scheduler->has_unfinished_requests() && !HasFailure()) {
    plan = h.step();
    EXPECT_LE(plan.requests.size(), 2u);
    EXPECT_LE(h.scheduler->num_running(), 2);
    for (const ScheduledRequest& s : plan.requests) {
      if (s.request_id == "c") {
        c_seen = true;
        EXPECT_EQ(h.records["a"].finish, FinishReason::kLength);  // only after a left
      }
    }
  }
  EXPECT_TRUE(c_seen);
  for (const char* id : {"a", "b", "c"}) {
    EXPECT_EQ(h.records[id].tokens, h.expected(id));
  }
}

TEST(Scheduler, WithoutChunkedPrefillAPromptWaitsUntilItFitsWhole) {
  SchedulerConfig c = config(16, 16, 16);
  c.enable_chunked_prefill = false;
  Harness h(c, kv_config(64));
  ASSERT_TRUE(h.add("a", iota_tokens(10, 10), max_tokens(4)).ok());
  ASSERT_TRUE(h.add("b", iota_tokens(10, 40), max_tokens(4)).ok());
  SchedulerOutput plan = h.step();
  ASSERT_EQ(plan.requests.size(), 1u);  // b would need 10 of the 6 tokens left
  EXPECT_EQ(plan.requests[0].token_ids.size(), 10u);
  plan = h.step();
  ASSERT_EQ(plan.requests.size(), 2u);
  EXPECT_EQ(plan.requests[1].request_id, "b");
  EXPECT_EQ(plan.requests[1].token_ids.size(), 10u);
  h.run_to_completion();
  EXPECT_EQ(h.records["b"].tokens, h.expected("b"));
}

TEST(Scheduler, LongPrefillThresholdCapsTokensPerRequest) {
  SchedulerConfig c = config(16);
  c.long_prefill_token_threshold = 3;
  Harness h(c, kv_config(64));
  ASSERT_TRUE(h.add("a", iota_tokens(7, 10), max_tokens(2)).ok());
  ASSERT_TRUE(h.add("b", iota_tokens(2, 50), max_tokens(2)).ok());
  const SchedulerOutput plan = h.step();
  ASSERT_EQ(plan.requests.size(), 2u);
  EXPECT_EQ(plan.requests[0].token_ids.size(), 3u);
  EXPECT_EQ(plan.requests[1].token_ids.size(), 2u);
  h.run_to_completion();
  EXPECT_EQ(h.records["a"].tokens, h.expected("a"));
}

TEST(Scheduler, PrefixCacheSharesBlocksAcrossRunningRequests) {
  Harness h(config(64), kv_config(64));
  std::vector<TokenId> shared = iota_tokens(10, 10);
  std::vector<TokenId> pa = shared, pb = shared;
  pa.insert(pa.end(), {500, 501});
  pb.insert(pb.end(), {600, 601, 602});
  ASSERT_TRUE(h.add("a", pa, max_tokens(8)).ok());
  const SchedulerOutput first = h.step();
  const std::vector<BlockId> a_blocks = first.requests[0].new_block_ids;
  ASSERT_EQ(a_blocks.size(), 3u);

  ASSERT_TRUE(h.add("b", pb, max_tokens(8)).ok());
  const SchedulerOutput second = h.step();
  ASSERT_EQ(second.requests.size(), 2u);
  const ScheduledRequest& b = second.requests[1];
  EXPECT_TRUE(b.is_new);
  EXPECT_EQ(b.start_position, 8);  // two full shared blocks; the third differs
  EXPECT_EQ(b.cached_token_ids, std::vector<TokenId>(shared.begin(), shared.begin() + 8));
  EXPECT_EQ(b.token_ids, std::vector<TokenId>(pb.begin() + 8, pb.end()));
  ASSERT_GE(b.new_block_ids.size(), 3u);
  EXPECT_EQ(b.new_block_ids[0], a_blocks[0]);
  EXPECT_EQ(b.new_block_ids[1], a_blocks[1]);
  EXPECT_NE(b.new_block_ids[2], a_blocks[2]);
  EXPECT_EQ(h.scheduler->kv_cache().pool().ref_count(a_blocks[0]), 2);
  EXPECT_EQ(h.scheduler->kv_cache().pool().ref_count(a_blocks[2]), 1);

  const SchedulerStats stats = h.scheduler->stats();
  EXPECT_EQ(stats.prefix_cache_queries, 12 + 13);
  EXPECT_EQ(stats.prefix_cache_hits, 8);
  h.run_to_completion();
  EXPECT_EQ(h.records["b"].num_cached_tokens, 8);
  EXPECT_EQ(h.records["a"].num_cached_tokens, 0);
  EXPECT_EQ(h.records["a"].tokens, h.expected("a"));
  EXPECT_EQ(h.records["b"].tokens, h.expected("b"));
  EXPECT_DOUBLE_EQ(h.scheduler->stats().kv_cache_usage, 0.0);
}

TEST(Scheduler, FullPromptHitStillRecomputesTheLastToken) {
  Harness h(config(64), kv_config(64));
  ASSERT_TRUE(h.add("a", iota_tokens(8, 10), max_tokens(3)).ok());
  h.run_to_completion();
  ASSERT_TRUE(h.add("b", iota_tokens(8, 10), max_tokens(3)).ok());
  const SchedulerOutput plan = h.step();
  ASSERT_EQ(plan.requests.size(), 1u);
  EXPECT_EQ(plan.requests[0].start_position, 4);  // capped at 7 tokens: one whole block
  EXPECT_EQ(plan.requests[0].token_ids.size(), 4u);
  EXPECT_TRUE(plan.requests[0].needs_sample);
  h.run_to_completion();
  EXPECT_EQ(h.records["b"].tokens, h.records["a"].tokens);
  EXPECT_EQ(h.records["b"].num_cached_tokens, 4);
}

TEST(Scheduler, DisabledPrefixCachingComputesEverything) {
  Harness h(config(64), kv_config(64, 4, /*prefix_caching=*/false));
  ASSERT_TRUE(h.add("a", iota_tokens(12, 10), max_tokens(2)).ok());
  h.run_to_completion();
  ASSERT_TRUE(h.add("b", iota_tokens(12, 10), max_tokens(2)).ok());
  const SchedulerOutput plan = h.step();
  EXPECT_EQ(plan.requests[0].start_position, 0);
  EXPECT_EQ(h.scheduler->stats().prefix_cache_hits, 0);
}

// n = 3 of a 14-token prompt (3 full blocks of 4 reusable, the rest recomputed): one
// sibling computes the prompt, the others wait for its blocks and then compute 2 tokens.
void expect_siblings_share_the_prompt(bool prefix_caching) {
  Harness h(config(64), kv_config(64, 4, prefix_caching));
  const std::vector<TokenId> prompt = iota_tokens(14, 10);
  for (const char* id : {"s0", "s1", "s2"}) ASSERT_TRUE(h.add_in(id, prompt, max_tokens(4), "g").ok());
  ASSERT_TRUE(h.add("other", iota_tokens(5, 300), max_tokens(4)).ok());
  const SchedulerOutput first = h.step();
  ASSERT_EQ(first.requests.size(), 2u);  // the leader, and the unrelated request passes the siblings
  EXPECT_EQ(first.requests[0].request_id, "s0");
  EXPECT_EQ(first.requests[0].token_ids.size(), 14u);
  EXPECT_EQ(first.requests[1].request_id, "other");
  const std::vector<BlockId> leader_blocks = first.requests[0].new_block_ids;

  const SchedulerOutput second = h.step();
  std::map<std::string, ScheduledRequest> by_id;
  for (const ScheduledRequest& s : second.requests) by_id[s.request_id] = s;
  for (const char* id : {"s1", "s2"}) {
    ASSERT_TRUE(by_id.contains(id)) << id;
    const ScheduledRequest& s = by_id[id];
    EXPECT_TRUE(s.is_new);
    EXPECT_EQ(s.start_position, 12);
    EXPECT_EQ(s.token_ids, std::vector<TokenId>(prompt.begin() + 12, prompt.end()));
    for (size_t b = 0; b < 3; ++b) EXPECT_EQ(s.new_block_ids[b], leader_blocks[b]) << id << " block " << b;
    EXPECT_NE(s.new_block_ids[3], leader_blocks[3]);  // the partial block is each sibling's own
  }
  EXPECT_EQ(h.scheduler->kv_cache().pool().ref_count(leader_blocks[0]), 3);
  h.run_to_completion();
  for (const char* id : {"s0", "s1", "s2"}) EXPECT_EQ(h.records[id].tokens, h.expected(id)) << id;
  EXPECT_EQ(h.records["s1"].num_cached_tokens, 12);
}

TEST(SchedulerSiblings, ComputeThePromptOnceWithPrefixCaching) { expect_siblings_share_the_prompt(true); }
TEST(SchedulerSiblings, ComputeThePromptOnceWithoutPrefixCaching) { expect_siblings_share_the_prompt(false); }

TEST(SchedulerSiblings, WithoutPrefixCachingOnlySiblingsSeeTheBlocks) {
  Harness h(config(64), kv_config(64, 4, /*prefix_caching=*/false));
  const std::vector<TokenId> prompt = iota_tokens(14, 10);
  ASSERT_TRUE(h.add_in("s0", prompt, max_tokens(30), "g").ok());
  h.step();
  ASSERT_TRUE(h.add("stranger", prompt, max_tokens(2)).ok());
  ASSERT_TRUE(h.add_in("t0", prompt, max_tokens(2), "another-group").ok());
  const SchedulerOutput plan = h.step();
  for (const ScheduledRequest& s : plan.requests) {
    if (s.is_new) {
      EXPECT_EQ(s.start_position, 0) << s.request_id;
    }
  }
  EXPECT_EQ(h.scheduler->stats().prefix_cache_queries, 0);  // siblings are not prefix-cache traffic
}

TEST(SchedulerSiblings, ALeaderPreemptedOrFinishedNoLongerHoldsTheOthers) {
  Harness h(config(8), kv_config(64));  // 8 tokens a step: the leader needs two steps
  const std::vector<TokenId> prompt = iota_tokens(14, 10);
  ASSERT_TRUE(h.add_in("s0", prompt, max_tokens(1), "g").ok());
  ASSERT_TRUE(h.add_in("s1", prompt, max_tokens(1), "g").ok());
  EXPECT_EQ(h.step().requests.size(), 1u);  // s1 waits: the leader has computed 8 of 14
  ASSERT_TRUE(h.scheduler->abort("s0"));    // applied when the step is back (it is)
  const SchedulerOutput plan = h.step();
  ASSERT_EQ(plan.requests.size(), 1u);
  EXPECT_EQ(plan.requests[0].request_id, "s1");
  EXPECT_EQ(plan.requests[0].start_position, 8);  // the two blocks s0 registered
  h.run_to_completion();
  EXPECT_EQ(h.records["s1"].tokens, h.expected("s1"));
}

TEST(Scheduler, CacheSaltSeparatesPrefixes) {
  Harness h(config(64), kv_config(64));
  const std::vector<TokenId> prompt = iota_tokens(12, 10);
  ASSERT_TRUE(h.add_in("a", prompt, max_tokens(2), "", "tenant-1").ok());
  h.run_to_completion();
  ASSERT_TRUE(h.add_in("b", prompt, max_tokens(2), "", "tenant-2").ok());
  ASSERT_TRUE(h.add("c", prompt, max_tokens(2)).ok());
  ASSERT_TRUE(h.add_in("d", prompt, max_tokens(2), "", "tenant-1").ok());
  std::map<std::string, int32_t> start;
  for (const ScheduledRequest& s : h.step().requests) start[s.request_id] = s.start_position;
  EXPECT_EQ(start["b"], 0);
  EXPECT_EQ(start["c"], 0);
  EXPECT_EQ(start["d"], 8);
}

// Built with append: g++ 12 -O3 reports a false -Wrestrict on "literal" + std::string&&.
std::string request_name(int i) {
  std::string id = "r";
  id += std::to_string(i);
  return id;
}

// A cache of 10 usable blocks (40 tokens) for 6 requests that each grow to 30 tokens.
class PreemptionTest : public ::testing::TestWithParam<std::tuple<SchedulingPolicy, bool>> {};

TEST_P(PreemptionTest, TooSmallCachePreemptsByRecomputeAndEveryoneCompletes) {
  SchedulerConfig c = config(64);
  c.policy = std::get<0>(GetParam());
  Harness h(c, kv_config(11, 4, std::get<1>(GetParam())));
  for (int i = 0; i < 6; ++i) {
    const std::string id = request_name(i);
    ASSERT_TRUE(h.add(id, iota_tokens(10, 10 + 100 * i), max_tokens(20), /*priority=*/i % 3).ok());
  }
  int preempted_plans = 0;
  for (int steps = 0; h.scheduler->has_unfinished_requests() && steps < 2000 && !HasFailure(); ++steps) {
    const SchedulerOutput plan = h.step();
    preempted_plans += plan.preempted_request_ids.empty() ? 0 : 1;
    if (!plan.preempted_request_ids.empty()) {
      EXPECT_TRUE(std::none_of(plan.requests.begin(), plan.requests.end(),
                               [](const ScheduledRequest& s) { return s.is_new; }))
          << "no admission in a step that preempted";
    }
  }
  EXPECT_GT(preempted_plans, 0);
  EXPECT_GT(h.scheduler->stats().num_preemptions, 0);
  for (int i = 0; i < 6; ++i) {
    const std::string id = request_name(i);
    EXPECT_EQ(h.records[id].tokens, h.expected(id)) << id;
    EXPECT_EQ(h.records[id].finish, FinishReason::kLength) << id;
    EXPECT_EQ(h.records[id].num_events_after_finish, 0) << id;
  }
  EXPECT_EQ(h.scheduler->kv_cache().num_free_blocks(), 10);
}

INSTANTIATE_TEST_SUITE_P(Policies, PreemptionTest,
                         ::testing::Combine(::testing::Values(SchedulingPolicy::kFcfs, SchedulingPolicy::kPriority),
                                            ::testing::Bool()));

TEST(Scheduler, PriorityPolicyAdmitsLowerValueFirstAndPreemptsHigherValue) {
  SchedulerConfig c = config(64, 1);
  c.policy = SchedulingPolicy::kPriority;
  Harness h(c, kv_config(64));
  ASSERT_TRUE(h.add("late-but-urgent", iota_tokens(4, 10), max_tokens(2), 0).ok());
  ASSERT_TRUE(h.add("early-but-lax", iota_tokens(4, 20), max_tokens(2), 5).ok());
  ASSERT_TRUE(h.add("urgent", iota_tokens(4, 30), max_tokens(2), -1).ok());
  SchedulerOutput plan = h.step();
  ASSERT_EQ(plan.requests.size(), 1u);
  EXPECT_EQ(plan.requests[0].request_id, "urgent");

  // Victim choice: A (priority 3) runs ahead of B (priority 0); FCFS would preempt B, the
  // last admitted, but the priority policy preempts A, even when A is the one asking.
  SchedulerConfig c2 = config(64, 4);
  c2.policy = SchedulingPolicy::kPriority;
  Harness p(c2, kv_config(7));  // 6 usable blocks = 24 tokens for two 20-token requests
  ASSERT_TRUE(p.add("A", iota_tokens(8, 10), max_tokens(12), 3).ok());
  p.step();
  ASSERT_TRUE(p.add("B", iota_tokens(8, 50), max_tokens(12), 0).ok());
  int32_t a_preemptions = 0;
  int32_t b_preemptions = 0;
  while (p.scheduler->has_unfinished_requests() && !HasFailure()) {
    p.step();
    if (const Request* a = p.scheduler->find_request("A")) a_preemptions = a->num_preemptions();
    if (const Request* b = p.scheduler->find_request("B")) b_preemptions = b->num_preemptions();
  }
  EXPECT_GT(a_preemptions, 0);
  EXPECT_EQ(b_preemptions, 0);
  EXPECT_EQ(p.records["A"].tokens, p.expected("A"));
  EXPECT_EQ(p.records["B"].tokens, p.expected("B"));
}

TEST(Scheduler, RejectsRequestsThatCanNeverRun) {
  Harness h(config(64, 16, 64), kv_config(5));  // 4 usable blocks: 16 tokens per request
  const Status too_big = h.add("huge", iota_tokens(10, 10), max_tokens(20));
  EXPECT_EQ(too_big.code(), Code::kOutOfRange) << too_big.to_string();
  EXPECT_FALSE(h.scheduler->has_unfinished_requests());
  EXPECT_TRUE(h.add("fits", iota_tokens(10, 10), max_tokens(7)).ok());  // 17 tokens, 16 computed
  EXPECT_EQ(h.add("fits", iota_tokens(3, 10), max_tokens(1)).code(), Code::kInvalidArgument);
  EXPECT_EQ(h.add("long", iota_tokens(64, 10), max_tokens(1)).code(), Code::kOutOfRange);
  h.run_to_completion();
  EXPECT_EQ(h.records["fits"].tokens.size(), 7u);
}

// Stop conditions, each through the full scheduler path with a scripted "model".
struct StopCase {
  std::vector<TokenId> script;  // outputs by index; then 50s
  StopParams stop;
  int32_t max_model_len = 256;
  size_t num_outputs;
  FinishReason finish;
  std::optional<TokenId> stop_token;
};

Record run_scripted(const StopCase& sc) {
  const SampleFn scripted = [&sc](const std::string&, std::span<const TokenId> ctx) {
    const size_t i = ctx.size() - 5;
    return i < sc.script.size() ? sc.script[i] : TokenId{50};
  };
  Harness h(config(64, 16, sc.max_model_len), kv_config(64), scripted);
  EXPECT_TRUE(h.add("r", iota_tokens(5, 100), sc.stop).ok());
  h.run_to_completion();
  return h.records["r"];
}

TEST(SchedulerStops, EachStopCondition) {
  StopParams base = max_tokens(10);
  base.stop_token_ids = {kStopId};
  StopParams min3 = base;
  min3.min_tokens = 3;
  StopParams ignore = base;
  ignore.ignore_eos = true;
  StopParams long_run = max_tokens(100);
  const std::vector<std::pair<std::string, StopCase>> cases = {
      {"eos", {{60, 61, kEos, 62}, base, 256, 3, FinishReason::kStop, std::nullopt}},
      {"second eos id", {{60, kImEnd}, base, 256, 2, FinishReason::kStop, kImEnd}},
      {"stop_token_ids", {{kStopId}, base, 256, 1, FinishReason::kStop, kStopId}},
      {"max_tokens", {{}, base, 256, 10, FinishReason::kLength, std::nullopt}},
      {"min_tokens", {{kEos, kStopId, 60, kEos}, min3, 256, 4, FinishReason::kStop, std::nullopt}},
      {"ignore_eos", {{kEos, kImEnd, kEos}, ignore, 256, 10, FinishReason::kLength, std::nullopt}},
      {"ignore_eos keeps stop ids", {{kEos, kStopId}, ignore, 256, 2, FinishReason::kStop, kStopId}},
      {"max_model_len", {{}, long_run, 12, 7, FinishReason::kLength, std::nullopt}},
  };
  for (const auto& [name, sc] : cases) {
    const Record r = run_scripted(sc);
    EXPECT_EQ(r.tokens.size(), sc.num_outputs) << name;
    EXPECT_EQ(r.finish, sc.finish) << name;
    EXPECT_EQ(r.stop_token, sc.stop_token) << name;
    EXPECT_EQ(r.num_events_after_finish, 0) << name;
    for (size_t i = 0; i < r.tokens.size() && i < sc.script.size(); ++i) {
      EXPECT_EQ(r.tokens[i], sc.script[i]) << name;
    }
  }
}

TEST(SchedulerAbort, WaitingRequestLeavesWithoutReachingWorkers) {
  Harness h(config(64, 1), kv_config(64));
  ASSERT_TRUE(h.add("a", iota_tokens(4, 10), max_tokens(5)).ok());
  ASSERT_TRUE(h.add("b", iota_tokens(4, 20), max_tokens(5)).ok());
  h.step();
  EXPECT_TRUE(h.scheduler->abort("b"));
  h.collect();
  EXPECT_EQ(h.records["b"].finish, FinishReason::kAbort);
  EXPECT_TRUE(h.records["b"].tokens.empty());
  EXPECT_EQ(h.scheduler->num_waiting(), 0);
  const SchedulerOutput plan = h.step();
  EXPECT_TRUE(plan.finished_request_ids.empty());
  EXPECT_FALSE(h.scheduler->abort("b"));
  EXPECT_FALSE(h.scheduler->abort("never-added"));
}

TEST(SchedulerAbort, RunningRequestFreesItsBlocksAndTellsTheWorkers) {
  Harness h(config(64), kv_config(64));
  ASSERT_TRUE(h.add("a", iota_tokens(9, 10), max_tokens(50)).ok());
  ASSERT_TRUE(h.add("b", iota_tokens(9, 40), max_tokens(50)).ok());
  h.step();
  h.step();
  const int32_t free_before = h.scheduler->kv_cache().num_free_blocks();
  EXPECT_TRUE(h.scheduler->abort("a"));
  EXPECT_GT(h.scheduler->kv_cache().num_free_blocks(), free_before);
  h.collect();
  EXPECT_EQ(h.records["a"].finish, FinishReason::kAbort);
  EXPECT_EQ(h.records["a"].tokens.size(), 2u);
  const SchedulerOutput plan = h.step();
  EXPECT_EQ(plan.finished_request_ids, std::vector<std::string>{"a"});
  ASSERT_EQ(plan.requests.size(), 1u);
  EXPECT_EQ(plan.requests[0].request_id, "b");
}

TEST(SchedulerAbort, AbortDuringAStepIsAppliedWhenTheStepReturns) {
  Harness h(config(64), kv_config(64));
  FakeExecutor executor(kv_config(64), default_sample);
  ASSERT_TRUE(h.add("a", iota_tokens(9, 10), max_tokens(50)).ok());
  const SchedulerOutput plan = h.scheduler->schedule();
  EXPECT_TRUE(h.scheduler->abort("a"));
  EXPECT_NE(h.scheduler->find_request("a"), nullptr);  // its blocks are being written
  ASSERT_TRUE(h.scheduler->update_from_output(plan, executor.execute(plan)).ok());
  EXPECT_EQ(h.scheduler->find_request("a"), nullptr);
  h.collect();
  EXPECT_EQ(h.records["a"].finish, FinishReason::kAbort);
  EXPECT_EQ(h.records["a"].tokens.size(), 1u);
  EXPECT_EQ(h.scheduler->kv_cache().num_free_blocks(), 63);
  EXPECT_TRUE(h.scheduler->check_invariants().ok());
}

TEST(Scheduler, MismatchedResultIsRefusedAndChangesNothing) {
  Harness h(config(64), kv_config(64));
  FakeExecutor executor(kv_config(64), default_sample);
  ASSERT_TRUE(h.add("a", iota_tokens(5, 10), max_tokens(3)).ok());
  const SchedulerOutput plan = h.scheduler->schedule();
  StepResult good = executor.execute(plan);
  StepResult bad = good;
  bad.sampled_token_ids[0].push_back(7);
  EXPECT_FALSE(h.scheduler->update_from_output(plan, bad).ok());
  bad = good;
  bad.sampled_token_ids.clear();
  EXPECT_FALSE(h.scheduler->update_from_output(plan, bad).ok());
  bad = good;
  bad.step_id += 1;
  EXPECT_FALSE(h.scheduler->update_from_output(plan, bad).ok());
  EXPECT_TRUE(h.scheduler->take_outputs().empty());
  ASSERT_TRUE(h.scheduler->update_from_output(plan, good).ok());
  EXPECT_EQ(h.scheduler->take_outputs().size(), 1u);
  EXPECT_FALSE(h.scheduler->update_from_output(plan, good).ok());  // not in flight any more
}

TEST(Scheduler, IdleSchedulerPlansNothing) {
  Harness h(config(64), kv_config(64));
  const SchedulerOutput plan = h.scheduler->schedule();
  EXPECT_TRUE(plan.empty());
  EXPECT_EQ(plan.num_scheduled_tokens, 0);
  EXPECT_TRUE(h.scheduler->schedule().empty());  // nothing in flight: may plan again
}

}  // namespace
}  // namespace k2::engine
