// Multimodal prompts through the Scheduler and the FakeExecutor, without a model: per-block
// media keys in the prefix cache, and the encoder budget that chunks prompts with images.
#include <gtest/gtest.h>

#include <algorithm>
#include <climits>
#include <map>
#include <numeric>

#include "enginecore/fake_executor.h"
#include "enginecore/scheduler.h"

namespace k2::engine {
namespace {

using testing::FakeExecutor;

constexpr TokenId kEos = 2;
constexpr TokenId kPad = 7;  // the media placeholder id

TokenId sample(const std::string&, std::span<const TokenId> context) {
  return testing::hash_next_token(context, 100, 900);
}

StopParams max_tokens(int32_t n) {
  StopParams s;
  s.max_tokens = n;
  s.eos_token_ids = {kEos};
  return s;
}

MediaSpan image(uint64_t content, int32_t offset, int32_t num_tokens) {
  return MediaSpan{BlockHash{content, ~content}, offset, num_tokens};
}

// Text tokens, with kPad over every media span.
std::vector<TokenId> prompt_with(int32_t length, const std::vector<MediaSpan>& media, TokenId first = 10) {
  std::vector<TokenId> ids(static_cast<size_t>(length));
  std::iota(ids.begin(), ids.end(), first);
  for (const MediaSpan& m : media) std::fill(ids.begin() + m.offset, ids.begin() + m.end(), kPad);
  return ids;
}

struct Outcome {
  std::vector<TokenId> tokens;
  FinishReason finish = FinishReason::kNone;
  int32_t num_cached_tokens = 0;
};

class MediaHarness {
 public:
  MediaHarness(SchedulerConfig config, KvCacheConfig kv) : config_(config), executor_(kv, sample) {
    auto s = Scheduler::create(config, kv);
    EXPECT_TRUE(s.ok()) << s.status().to_string();
    scheduler = std::move(s).value();
  }

  Status add(const std::string& id, std::vector<TokenId> prompt, std::vector<MediaSpan> media, int32_t max_out = 4) {
    prompts[id] = prompt;
    stops[id] = max_tokens(max_out);
    executor_.set_media(id, media);
    RequestParams p;
    p.request_id = id;
    p.prompt_token_ids = std::move(prompt);
    p.stop = stops[id];
    p.media = std::move(media);
    return scheduler->add_request(std::move(p));
  }

  SchedulerOutput step() {
    SchedulerOutput plan = scheduler->schedule();
    if (!plan.empty()) {
      const StepResult result = executor_.execute(plan);
      const Status st = scheduler->update_from_output(plan, result);
      EXPECT_TRUE(st.ok()) << st.to_string();
      // A step's encoder work fits the budget, or is one item larger than all of it.
      const int32_t budget = scheduler->encoder_budget().compute_budget();
      EXPECT_TRUE(executor_.last_step_encoder_tokens() <= budget || executor_.last_step_items_encoded() == 1)
          << "step " << plan.step_id << " encodes " << executor_.last_step_encoder_tokens() << " tokens";
      // What the workers really encode never exceeds what the scheduler charged.
      EXPECT_LE(executor_.last_step_encoder_tokens(), plan.num_encoder_tokens) << "step " << plan.step_id;
      max_step_encoder_tokens = std::max(max_step_encoder_tokens, executor_.last_step_encoder_tokens());
    }
    for (RequestOutput& o : scheduler->take_outputs()) {
      Outcome& out = outcomes[o.request_id];
      out.tokens.insert(out.tokens.end(), o.new_token_ids.begin(), o.new_token_ids.end());
      out.finish = o.finish_reason;
      out.num_cached_tokens = o.num_cached_tokens;
    }
    const Status inv = scheduler->check_invariants();
    EXPECT_TRUE(inv.ok()) << inv.to_string();
    return plan;
  }

  int run_to_completion(int max_steps = 1000) {
    int steps = 0;
    while (scheduler->has_unfinished_requests() && steps < max_steps && !::testing::Test::HasFailure()) {
      step();
      ++steps;
    }
    EXPECT_FALSE(scheduler->has_unfinished_requests()) << "did not finish in " << max_steps << " steps";
    return steps;
  }

  // Every request finished with what it produces alone.
  void expect_all_correct() const {
    for (const auto& [id, prompt] : prompts) {
      const Outcome& out = outcomes.at(id);
      EXPECT_NE(out.finish, FinishReason::kNone) << id;
      EXPECT_EQ(out.tokens, testing::reference_outputs(id, prompt, stops.at(id), config_.max_model_len, sample)) << id;
    }
  }

  const FakeExecutor& executor() const { return executor_; }

  std::unique_ptr<Scheduler> scheduler;
  std::map<std::string, std::vector<TokenId>> prompts;
  std::map<std::string, StopParams> stops;
  std::map<std::string, Outcome> outcomes;
  int32_t max_step_encoder_tokens = 0;

 private:
  SchedulerConfig config_;
  FakeExecutor executor_;
};

SchedulerConfig config(int32_t max_batched, int32_t encoder_budget = 0, int32_t encoder_cache = 0) {
  SchedulerConfig c;
  c.max_num_batched_tokens = max_batched;
  c.max_num_seqs = 8;
  c.max_model_len = 256;
  c.encoder.max_num_encoder_input_tokens = encoder_budget;
  c.encoder.encoder_cache_size = encoder_cache;
  return c;
}

KvCacheConfig kv_config(int32_t num_blocks = 128, bool prefix_caching = true) {
  return KvCacheConfig{4, num_blocks, prefix_caching, 0};
}

// ---------------------------------------------------------------- prefix cache keys

TEST(SchedulerMedia, SameTextDifferentImagesShareOnlyTheBlocksBeforeTheImage) {
  MediaHarness h(config(64), kv_config());
  const std::vector<MediaSpan> a = {image(1, 10, 8)}, b = {image(2, 10, 8)};
  ASSERT_TRUE(h.add("a", prompt_with(24, a), a).ok());
  h.run_to_completion();
  ASSERT_TRUE(h.add("b", prompt_with(24, b), b).ok());
  h.run_to_completion();
  // Blocks [0,4) and [4,8) are text; [8,12) holds the image's first placeholders.
  EXPECT_EQ(h.outcomes["b"].num_cached_tokens, 8);
  h.expect_all_correct();
}

TEST(SchedulerMedia, TheSameImageAgainSharesEveryFullBlock) {
  MediaHarness h(config(64), kv_config());
  const std::vector<MediaSpan> a = {image(1, 10, 8)};
  ASSERT_TRUE(h.add("a", prompt_with(25, a), a).ok());
  h.run_to_completion();
  ASSERT_TRUE(h.add("a-again", prompt_with(25, a), a).ok());
  h.run_to_completion();
  EXPECT_EQ(h.outcomes["a-again"].num_cached_tokens, 24);  // all full blocks short of the last token
  // The image lies wholly inside the cached prefix: not encoded again.
  EXPECT_EQ(h.executor().num_media_encoded(), 1);
  h.expect_all_correct();
}

TEST(SchedulerMedia, AnImageAtAnotherOffsetDoesNotMatch) {
  MediaHarness h(config(64), kv_config());
  // Equal token ids (placeholders over [4, 16)), the same picture, spans starting 4 apart.
  const std::vector<MediaSpan> a = {image(1, 4, 8)}, b = {image(1, 8, 8)};
  const std::vector<TokenId> ids = prompt_with(24, {image(0, 4, 12)});
  ASSERT_TRUE(h.add("a", ids, a).ok());
  h.run_to_completion();
  ASSERT_TRUE(h.add("b", ids, b).ok());
  h.run_to_completion();
  EXPECT_EQ(h.outcomes["b"].num_cached_tokens, 4);
  h.expect_all_correct();
}

TEST(SchedulerMedia, ACachedPrefixEndingInsideAnImageEncodesItAgain) {
  MediaHarness h(config(64), kv_config());
  // a's prompt ends with the image, so its block [12, 16) holds its own outputs: b (same
  // image, longer text) finds [0, 12), which ends inside the image [2, 14).
  const std::vector<MediaSpan> media = {image(1, 2, 12)};
  ASSERT_TRUE(h.add("a", prompt_with(14, media), media).ok());
  h.run_to_completion();
  ASSERT_TRUE(h.add("b", prompt_with(24, media), media).ok());
  h.run_to_completion();
  EXPECT_EQ(h.outcomes["b"].num_cached_tokens, 12);
  EXPECT_EQ(h.executor().num_media_encoded(), 2);
  h.expect_all_correct();
}

// ---------------------------------------------------------------- encoder budget

TEST(SchedulerMedia, ManyImagesAreChunkedAcrossStepsAndAllComplete) {
  MediaHarness h(config(64, /*encoder_budget=*/8), kv_config());
  std::vector<MediaSpan> media;
  for (int32_t i = 0; i < 5; ++i) media.push_back(image(10 + static_cast<uint64_t>(i), 2 + 8 * i, 6));
  ASSERT_TRUE(h.add("many", prompt_with(44, media), media).ok());
  // One image (6 tokens) per step fits a budget of 8, two do not: each step stops just
  // before the next image.
  std::vector<int32_t> ends;
  while (h.scheduler->has_unfinished_requests() && ends.size() < 10) {
    const SchedulerOutput plan = h.step();
    ASSERT_EQ(plan.requests.size(), 1u);
    EXPECT_LE(plan.requests[0].encode_media.size(), 1u);
    ends.push_back(plan.requests[0].start_position + static_cast<int32_t>(plan.requests[0].token_ids.size()));
  }
  EXPECT_EQ(std::vector<int32_t>(ends.begin(), ends.begin() + 5), (std::vector<int32_t>{10, 18, 26, 34, 44}));
  h.run_to_completion();
  EXPECT_EQ(h.executor().num_media_encoded(), 5);
  EXPECT_LE(h.max_step_encoder_tokens, 8);
  h.expect_all_correct();
}

TEST(SchedulerMedia, AnImageLargerThanTheWholeBudgetStillRuns) {
  MediaHarness h(config(64, /*encoder_budget=*/8, /*encoder_cache=*/32), kv_config());
  const std::vector<MediaSpan> big = {image(1, 3, 20)}, small = {image(2, 1, 4)};
  ASSERT_TRUE(h.add("big", prompt_with(30, big), big).ok());
  ASSERT_TRUE(h.add("small", prompt_with(8, small), small).ok());
  const SchedulerOutput first = h.step();
  // The big image alone takes the step's encoder work; the other request's image waits.
  ASSERT_EQ(first.requests.size(), 2u);
  EXPECT_EQ(first.requests[0].encode_media, std::vector<int32_t>{0});
  EXPECT_TRUE(first.requests[1].encode_media.empty());
  EXPECT_EQ(first.requests[1].token_ids.size(), 1u);  // the text before its image
  h.run_to_completion();
  EXPECT_EQ(h.max_step_encoder_tokens, 20);
  h.expect_all_correct();
}

TEST(SchedulerMedia, AdmissionRefusesAnItemLargerThanTheEncoderCache) {
  MediaHarness h(config(64, 8, 16), kv_config());
  EXPECT_EQ(h.scheduler->encoder_budget().cache_size(), 16);
  const std::vector<MediaSpan> huge = {image(1, 2, 17)}, fine = {image(2, 2, 16)};
  const Status refused = h.add("huge", prompt_with(24, huge), huge);
  EXPECT_EQ(refused.code(), Code::kOutOfRange);
  EXPECT_NE(refused.to_string().find("encoder cache"), std::string::npos) << refused.to_string();
  h.prompts.erase("huge");
  ASSERT_TRUE(h.add("fine", prompt_with(24, fine), fine).ok());
  h.run_to_completion();
  h.expect_all_correct();
}

TEST(SchedulerMedia, BudgetsFollowVllmDefaults) {
  auto make = [](int32_t batched, EncoderBudgetConfig e) { return EncoderBudget::create(e, batched).value(); };
  EXPECT_EQ(make(2048, {}).compute_budget(), 2048);
  EXPECT_EQ(make(2048, {}).cache_size(), INT32_MAX);  // nothing to size it by: no admission limit
  EXPECT_EQ(make(2048, {.max_tokens_per_mm_item = 1024}).cache_size(), 2048);
  EXPECT_EQ(make(2048, {.max_tokens_per_mm_item = 4096}).compute_budget(), 4096);
  EXPECT_EQ(make(2048, {.max_tokens_per_mm_item = 4096}).cache_size(), 4096);
  EXPECT_EQ(make(2048, {.max_num_encoder_input_tokens = 512, .encoder_cache_size = 8192}).compute_budget(), 512);
  EXPECT_EQ(make(2048, {.max_num_encoder_input_tokens = 512, .encoder_cache_size = 8192}).cache_size(), 8192);
  EXPECT_FALSE(EncoderBudget::create({.encoder_cache_size = -1}, 64).ok());
}

TEST(SchedulerMedia, TwoRequestsCompeteForTheBudget) {
  MediaHarness h(config(64, /*encoder_budget=*/10), kv_config());
  const std::vector<MediaSpan> a = {image(1, 2, 8)}, b = {image(2, 2, 8)};
  ASSERT_TRUE(h.add("a", prompt_with(14, a), a).ok());
  ASSERT_TRUE(h.add("b", prompt_with(14, b, 50), b).ok());
  const SchedulerOutput first = h.step();
  ASSERT_EQ(first.requests.size(), 2u);
  EXPECT_EQ(first.requests[0].token_ids.size(), 14u);  // a: the whole prompt with its image
  EXPECT_EQ(first.requests[1].token_ids.size(), 2u);   // b: only the text before its image
  const SchedulerOutput second = h.step();
  ASSERT_EQ(second.requests.size(), 2u);
  EXPECT_EQ(second.requests[1].encode_media, std::vector<int32_t>{0});
  h.run_to_completion();
  EXPECT_LE(h.max_step_encoder_tokens, 10);
  EXPECT_EQ(h.executor().num_media_encoded(), 2);
  h.expect_all_correct();
}

TEST(SchedulerMedia, TheSameImageTwiceInOnePromptIsEncodedOnce) {
  MediaHarness h(config(64, /*encoder_budget=*/8), kv_config());
  // Two copies of one picture cost 6 encoder tokens, not 12: both fit one step.
  const std::vector<MediaSpan> media = {image(5, 1, 6), image(5, 9, 6)};
  ASSERT_TRUE(h.add("twice", prompt_with(20, media), media).ok());
  const SchedulerOutput first = h.step();
  EXPECT_EQ(first.requests[0].token_ids.size(), 20u);
  EXPECT_EQ(first.requests[0].encode_media, std::vector<int32_t>{0});
  h.run_to_completion();
  EXPECT_EQ(h.executor().num_media_encoded(), 1);
  h.expect_all_correct();
}

TEST(SchedulerMedia, PreemptedRequestsEncodeTheirImagesAgainWhenResumed) {
  // 10 usable blocks of 4 tokens; each request may reach 8 blocks: they cannot both grow.
  MediaHarness h(config(64, 16), kv_config(11, /*prefix_caching=*/false));
  const std::vector<MediaSpan> a = {image(1, 2, 8)}, b = {image(2, 2, 8)};
  ASSERT_TRUE(h.add("a", prompt_with(12, a), a, 20).ok());
  ASSERT_TRUE(h.add("b", prompt_with(12, b, 40), b, 20).ok());
  h.run_to_completion();
  const int64_t preemptions = h.scheduler->stats().num_preemptions;
  EXPECT_GT(preemptions, 0);
  // Without prefix caching every resume recomputes from position 0, through the image.
  EXPECT_EQ(h.executor().num_media_encoded(), 2 + preemptions);
  h.expect_all_correct();
}

TEST(SchedulerMedia, AnImageLargerThanMaxNumBatchedTokensIsEncodedOnceAcrossChunks) {
  // Default encoder budget (= max_num_batched_tokens = 16): the 40-token image alone takes
  // a step's encoder work, and its placeholders are prefilled over three chunks.
  MediaHarness h(config(16), kv_config());
  const std::vector<MediaSpan> big = {image(1, 3, 40)};
  ASSERT_TRUE(h.add("big", prompt_with(48, big), big).ok());
  const SchedulerOutput first = h.step();
  ASSERT_EQ(first.requests.size(), 1u);
  EXPECT_EQ(first.requests[0].token_ids.size(), 16u);
  EXPECT_EQ(first.requests[0].encode_media, std::vector<int32_t>{0});
  EXPECT_EQ(first.num_encoder_tokens, 40);
  const SchedulerOutput second = h.step();
  EXPECT_TRUE(second.requests[0].encode_media.empty());
  EXPECT_EQ(second.num_encoder_tokens, 0);
  h.run_to_completion();
  EXPECT_EQ(h.executor().num_media_encoded(), 1);
  h.expect_all_correct();
}

TEST(SchedulerMedia, ManyImagesUnderASmallTokenBudgetAreEachEncodedOnce) {
  MediaHarness h(config(/*max_batched=*/12), kv_config());
  std::vector<MediaSpan> media;
  for (int32_t i = 0; i < 12; ++i) media.push_back(image(100 + static_cast<uint64_t>(i), 1 + 7 * i, 5));
  ASSERT_TRUE(h.add("album", prompt_with(90, media), media, 3).ok());
  h.run_to_completion();
  EXPECT_EQ(h.executor().num_media_encoded(), 12);
  EXPECT_EQ(h.executor().num_encoder_cache_hits(), 0);
  EXPECT_LE(h.max_step_encoder_tokens, 12);
  h.expect_all_correct();
}

TEST(SchedulerMedia, ARequestReachingAnImageAnotherRequestHoldsIsNotChargedForIt) {
  // One 8-token image per step. b's copy of a's picture costs nothing once a holds it.
  MediaHarness h(config(64, /*encoder_budget=*/8), kv_config());
  const std::vector<MediaSpan> media = {image(9, 2, 8)};
  ASSERT_TRUE(h.add("a", prompt_with(14, media), media, 8).ok());
  ASSERT_TRUE(h.add("b", prompt_with(14, media, 60), media, 8).ok());
  const SchedulerOutput first = h.step();
  ASSERT_EQ(first.requests.size(), 2u);
  // First held in this step, by a request that might yet be preempted: b still pays, so
  // it stops before the image.
  EXPECT_EQ(first.requests[0].encode_media, std::vector<int32_t>{0});
  EXPECT_EQ(first.requests[1].token_ids.size(), 2u);
  EXPECT_EQ(first.num_encoder_tokens, 8);
  const SchedulerOutput second = h.step();
  ASSERT_EQ(second.requests.size(), 2u);
  EXPECT_EQ(second.requests[1].encode_media, std::vector<int32_t>{0});  // listed: b's state needs the rows
  EXPECT_EQ(second.num_encoder_tokens, 0);
  h.run_to_completion();
  EXPECT_EQ(h.executor().num_media_encoded(), 2);
  EXPECT_EQ(h.executor().num_encoder_cache_hits(), 1);
  h.expect_all_correct();
}

TEST(SchedulerMedia, WithoutASharedEncoderCacheEveryRequestPaysForItsImages) {
  SchedulerConfig c = config(64, /*encoder_budget=*/8);
  c.encoder.shared_cache = false;
  MediaHarness h(c, kv_config());
  const std::vector<MediaSpan> media = {image(9, 2, 8)};
  ASSERT_TRUE(h.add("a", prompt_with(14, media), media, 8).ok());
  h.step();
  ASSERT_TRUE(h.add("b", prompt_with(14, media, 60), media, 8).ok());
  const SchedulerOutput second = h.step();
  ASSERT_EQ(second.requests.size(), 2u);
  EXPECT_EQ(second.num_encoder_tokens, 8);
  h.run_to_completion();
  h.expect_all_correct();
}

TEST(SchedulerMedia, ARequestPreemptedInsideAnImageEncodesItAgainOnResume) {
  // "a" decodes long; "b" prefills a prompt that is mostly one image, 7 tokens a step. The
  // cache cannot hold both: b, the later one, is preempted, and a preemption inside its
  // image must be followed by listing the image again when b resumes.
  MediaHarness h(config(8), kv_config(10, /*prefix_caching=*/false));  // 9 usable blocks of 4
  const std::vector<MediaSpan> media = {image(4, 1, 30)};
  ASSERT_TRUE(h.add("a", prompt_with(12, {}, 200), {}, 24).ok());
  ASSERT_TRUE(h.add("b", prompt_with(32, media), media, 4).ok());
  int32_t preempted_at = -1;
  int64_t listed_before = 0;
  for (int steps = 0; steps < 400 && h.scheduler->has_unfinished_requests(); ++steps) {
    const Request* b = h.scheduler->find_request("b");
    const int32_t computed = b == nullptr ? -1 : b->num_computed_tokens();
    const int64_t listed = h.executor().num_media_encoded();
    const SchedulerOutput plan = h.step();
    const auto& ids = plan.preempted_request_ids;
    if (preempted_at < 0 && std::find(ids.begin(), ids.end(), "b") != ids.end()) {
      preempted_at = computed;
      listed_before = listed;
    }
  }
  EXPECT_FALSE(h.scheduler->has_unfinished_requests());
  ASSERT_GT(preempted_at, 1) << "b was not preempted inside its image";
  EXPECT_LT(preempted_at, 31);
  EXPECT_EQ(listed_before, 1);
  EXPECT_EQ(h.executor().num_media_encoded(), 1 + h.scheduler->stats().num_preemptions);
  h.expect_all_correct();
}

TEST(SchedulerMedia, RejectsBadSpans) {
  MediaHarness h(config(64), kv_config());
  EXPECT_FALSE(h.add("past-end", prompt_with(8, {}), {image(1, 4, 5)}).ok());
  EXPECT_FALSE(h.add("empty", prompt_with(8, {}), {image(1, 4, 0)}).ok());
  EXPECT_FALSE(h.add("overlap", prompt_with(16, {}), {image(1, 2, 4), image(2, 5, 4)}).ok());
  EXPECT_FALSE(h.add("negative", prompt_with(16, {}), {image(1, -1, 4)}).ok());
  EXPECT_EQ(h.scheduler->num_waiting(), 0);
}

}  // namespace
}  // namespace k2::engine
