#include "enginecore/engine_core.h"

#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <thread>
#include <nlohmann/json.hpp>

#include "enginecore/protocol/codec.h"
#include "enginecore/stop_ids.h"

namespace k2::engine {
namespace {

EngineCoreConfig small_config() {
  EngineCoreConfig c;
  c.kv.block_size = 4;
  c.kv.num_blocks = 64;
  c.scheduler.max_model_len = 64;
  c.scheduler.max_num_batched_tokens = 32;
  c.eos_token_ids = {100, 101};
  c.seed = 7;
  // Never ask for the expert load after the first step, so that no expert-load plan appears
  // in these tests however slowly they run (ExpertLoad* tests set their own interval).
  c.expert_load_interval_s = 1e12;
  return c;
}

protocol::AddRequest request(const std::string& id, std::vector<int32_t> prompt, uint32_t max_tokens = 4) {
  protocol::AddRequest r;
  r.request_id = id;
  r.prompt = protocol::inline_tokens(std::move(prompt));
  r.params.max_tokens = max_tokens;
  return r;
}

// A worker that samples `token` for every request that needs a sample.
protocol::StepResult answer(const protocol::StepPlan& plan, int32_t token, bool logprobs = false) {
  protocol::StepResult r;
  r.step_id = plan.step_id;
  for (const auto& s : plan.requests) {
    if (!s.sample) continue;
    protocol::SampledRequest sr;
    sr.slot = s.slot;
    sr.token_ids = {token};
    if (logprobs) sr.logprobs = protocol::TokenLogprobs{1, 2, {token, 3}, {-0.5f, -1.5f}, {1}};
    r.samples.push_back(sr);
  }
  return r;
}

TEST(EngineCore, AssignsSeedsAndMergesStopIds) {
  auto core = EngineCore::create(small_config());
  ASSERT_TRUE(core.ok());
  auto r = request("a", {1, 2, 3});
  r.params.eos_token_ids = {101, 102};
  (*core)->add_request(r);
  auto plan = (*core)->plan_step();
  ASSERT_TRUE(plan);
  ASSERT_EQ(plan->sampling_params.size(), 1u);
  EXPECT_TRUE(plan->sampling_params[0].seed.has_value());
  EXPECT_EQ(plan->sampling_params[0].eos_token_ids, (std::vector<int32_t>{100, 101, 102}));
  ASSERT_EQ(plan->requests.size(), 1u);
  EXPECT_TRUE(plan->requests[0].blocks.replace);
  EXPECT_EQ(plan->requests[0].num_prompt_tokens, 3u);
  EXPECT_TRUE(plan->requests[0].sample);
}

TEST(EngineCore, SecondaryEosStopsWithAStopTokenAndLogprobsRideAlong) {
  auto core = EngineCore::create(small_config());
  ASSERT_TRUE(core.ok());
  (*core)->add_request(request("a", {1, 2, 3}));
  auto plan = (*core)->plan_step();
  ASSERT_TRUE((*core)->finish_step(answer(*plan, 5, true)).ok());
  auto out = (*core)->take_outputs();
  ASSERT_EQ(out.outputs.size(), 1u);
  EXPECT_EQ(out.outputs[0].new_token_ids, std::vector<int32_t>{5});
  // vLLM's engine-core events ride on the first output, in order, no later than its step.
  const auto& events = out.outputs[0].events;
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].type, protocol::RequestEventType::kQueued);
  EXPECT_EQ(events[1].type, protocol::RequestEventType::kScheduled);
  EXPECT_LE(events[0].timestamp, events[1].timestamp);
  EXPECT_LE(events[1].timestamp, out.timestamp);
  ASSERT_TRUE(out.outputs[0].new_logprobs);
  EXPECT_EQ(out.outputs[0].new_logprobs->width, 2u);
  ASSERT_TRUE(out.scheduler_stats);
  EXPECT_EQ(out.scheduler_stats->num_running, 1u);

  plan = (*core)->plan_step();
  ASSERT_TRUE(plan);
  EXPECT_FALSE(plan->requests[0].blocks.replace);
  EXPECT_EQ(plan->requests[0].num_output_tokens, 1u);
  ASSERT_TRUE((*core)->finish_step(answer(*plan, 101)).ok());
  out = (*core)->take_outputs();
  ASSERT_EQ(out.outputs.size(), 1u);
  EXPECT_TRUE(out.outputs[0].events.empty());
  EXPECT_EQ(out.outputs[0].finish_reason, protocol::FinishReason::kStop);
  EXPECT_EQ(out.outputs[0].stop_token, 101);
  EXPECT_EQ(out.finished_requests, std::vector<std::string>{"a"});
  EXPECT_FALSE((*core)->has_unfinished_requests());
}

// Runs `id` to its end, answering every sample with `token` (and prompt logprobs with the
// last prompt chunk's sample when `prompt_lp`); returns every output of the request.
std::vector<protocol::RequestOutput> run_to_end(EngineCore& core, const std::string& id, int32_t token,
                                                bool prompt_lp = false,
                                                std::vector<protocol::ScheduledRequest>* scheduled = nullptr) {
  std::vector<protocol::RequestOutput> outs;
  for (int step = 0; step < 100 && core.has_unfinished_requests(); ++step) {
    auto plan = core.plan_step();
    if (!plan) break;
    auto result = answer(*plan, token);
    for (auto& s : result.samples) {
      const auto& r = plan->requests[s.slot];
      if (prompt_lp && r.num_output_tokens == 0)
        s.prompt_logprobs = protocol::TokenLogprobs{1, 3, {7, 7, 8}, {-0.25f, -0.25f, -2.f}, {1}};
    }
    for (const auto& r : plan->requests)
      if (scheduled && r.request_id == id) scheduled->push_back(r);
    EXPECT_TRUE(core.finish_step(result).ok());
    for (auto& o : core.take_outputs().outputs)
      if (o.request_id == id) outs.push_back(std::move(o));
  }
  return outs;
}

TEST(EngineCore, PromptLogprobsSkipThePrefixCacheAndRideWithTheFirstTokenOnce) {
  auto core = EngineCore::create(small_config());
  ASSERT_TRUE(core.ok());
  std::vector<int32_t> prompt(40);
  for (size_t i = 0; i < prompt.size(); ++i) prompt[i] = static_cast<int32_t>(i + 1);
  (*core)->add_request(request("warm", prompt, 2));
  run_to_end(**core, "warm", 5);
  // Control: the same prompt without prompt_logprobs hits the prefix cache.
  (*core)->add_request(request("hit", prompt, 2));
  std::vector<protocol::ScheduledRequest> hit_plans;
  run_to_end(**core, "hit", 5, false, &hit_plans);
  ASSERT_FALSE(hit_plans.empty());
  EXPECT_GT(hit_plans[0].start_position, 0u);

  auto r = request("plp", prompt, 3);
  r.params.prompt_logprobs = 2;
  (*core)->add_request(r);
  std::vector<protocol::ScheduledRequest> plans;
  auto outs = run_to_end(**core, "plp", 5, true, &plans);
  ASSERT_GE(plans.size(), 2u) << "40 prompt tokens with a budget of 32 take two chunks";
  EXPECT_EQ(plans[0].start_position, 0u);
  EXPECT_TRUE(plans[0].cached_token_ids.empty());
  EXPECT_EQ(plans[0].num_tokens, 32u);
  ASSERT_EQ(outs.size(), 3u);
  ASSERT_TRUE(outs[0].new_prompt_logprobs.has_value());
  EXPECT_EQ(outs[0].new_prompt_logprobs->width, 3u);
  EXPECT_EQ(outs[0].new_token_ids, std::vector<int32_t>{5});
  EXPECT_FALSE(outs[1].new_prompt_logprobs.has_value());
  EXPECT_FALSE(outs[2].new_prompt_logprobs.has_value());
  EXPECT_EQ(outs[0].num_cached_tokens, 0u);
}

TEST(EngineCore, RefusedRequestsEndWithAnError) {
  auto core = EngineCore::create(small_config());
  ASSERT_TRUE(core.ok());
  (*core)->add_request(request("long", std::vector<int32_t>(80, 1)));
  (*core)->add_request(request("ok", {1}));
  (*core)->add_request(request("ok", {1}));
  auto out = (*core)->take_outputs();
  ASSERT_EQ(out.outputs.size(), 2u);
  EXPECT_EQ(out.outputs[0].request_id, "long");
  EXPECT_EQ(out.outputs[0].finish_reason, protocol::FinishReason::kError);
  EXPECT_EQ(out.outputs[1].finish_reason, protocol::FinishReason::kError);
  EXPECT_TRUE((*core)->has_unfinished_requests());
}

protocol::MediaItem media_item(uint64_t content, uint32_t offset, uint32_t num_tokens) {
  protocol::MediaItem m;
  m.arena = "/k2serve-test-media";
  m.pixels = ShmHandle{1, 0, 64, 1};
  m.grid_t = m.grid_h = m.grid_w = 1;
  m.hash_low = content;
  m.hash_high = ~content;
  m.offset = offset;
  m.num_tokens = num_tokens;
  return m;
}

// The plan tells the workers which items to encode in each step, as the encoder budget
// (max_num_batched_tokens = 32 here) allows; the media reach the workers with the first chunk.
TEST(EngineCore, PlansListTheMediaToEncodePerStep) {
  auto core = EngineCore::create(small_config());
  ASSERT_TRUE(core.ok());
  std::vector<int32_t> ids(40, 9);
  auto r = request("mm", ids);
  r.media = {media_item(1, 2, 20), media_item(2, 24, 13)};  // 20 + 13 > 32: two steps
  (*core)->add_request(r);
  auto first = (*core)->plan_step();
  ASSERT_TRUE(first);
  ASSERT_EQ(first->requests.size(), 1u);
  EXPECT_EQ(first->requests[0].media.size(), 2u);
  EXPECT_EQ(first->requests[0].encode_media, std::vector<uint32_t>{0});
  EXPECT_EQ(first->requests[0].num_tokens, 24u);  // cut before the second image
  ASSERT_TRUE((*core)->finish_step(answer(*first, 5)).ok());
  auto second = (*core)->plan_step();
  ASSERT_TRUE(second);
  EXPECT_TRUE(second->requests[0].media.empty());
  EXPECT_EQ(second->requests[0].encode_media, std::vector<uint32_t>{1});
  EXPECT_EQ(second->requests[0].num_tokens, 16u);
  EXPECT_TRUE(second->requests[0].sample);
}

TEST(EngineCore, AMediaItemLargerThanTheEncoderCacheEndsOnlyItsRequest) {
  EngineCoreConfig c = small_config();
  c.scheduler.encoder.encoder_cache_size = 16;
  auto core = EngineCore::create(c);
  ASSERT_TRUE(core.ok());
  auto big = request("big", std::vector<int32_t>(24, 9));
  big.media = {media_item(1, 2, 17)};
  (*core)->add_request(big);
  (*core)->add_request(request("text", {1, 2, 3}));
  auto out = (*core)->take_outputs();
  ASSERT_EQ(out.outputs.size(), 1u);
  EXPECT_EQ(out.outputs[0].request_id, "big");
  EXPECT_EQ(out.outputs[0].finish_reason, protocol::FinishReason::kError);
  auto plan = (*core)->plan_step();
  ASSERT_TRUE(plan);
  EXPECT_EQ(plan->requests.size(), 1u);
}

TEST(EngineCore, AbortAndUtility) {
  auto core = EngineCore::create(small_config());
  ASSERT_TRUE(core.ok());
  (*core)->add_request(request("a", {1, 2}));
  (*core)->abort({"a", "unknown"});
  (*core)->utility(protocol::Utility{0, 9, "reset_prefix_cache", ""});
  (*core)->utility(protocol::Utility{0, 10, "no_such_method", ""});
  ASSERT_TRUE((*core)->has_outputs());
  auto out = (*core)->take_outputs();
  ASSERT_EQ(out.outputs.size(), 1u);
  EXPECT_EQ(out.outputs[0].finish_reason, protocol::FinishReason::kAbort);
  ASSERT_TRUE(out.utility_output);
  EXPECT_EQ(out.utility_output->call_id, 9u);
  EXPECT_EQ(out.utility_output->result_json, "true");
  out = (*core)->take_outputs();
  ASSERT_TRUE(out.utility_output && out.utility_output->failure_message);
  EXPECT_FALSE((*core)->has_outputs());
  EXPECT_FALSE((*core)->plan_step());
}

TEST(EngineCore, MismatchedResultIsAnError) {
  auto core = EngineCore::create(small_config());
  ASSERT_TRUE(core.ok());
  (*core)->add_request(request("a", {1, 2}));
  auto plan = (*core)->plan_step();
  auto result = answer(*plan, 5);
  result.step_id += 1;
  EXPECT_FALSE((*core)->finish_step(result).ok());
  result = answer(*plan, 5);
  result.error = "boom";
  EXPECT_FALSE((*core)->finish_step(result).ok());
  EXPECT_TRUE((*core)->finish_step(answer(*plan, 5)).ok());
}

protocol::StepResult with_load(protocol::StepResult r, std::vector<uint64_t> tokens) {
  r.expert_load = protocol::ExpertLoad{2, {1, 2}, std::move(tokens)};
  return r;
}

TEST(EngineCore, ExpertLoadIsAskedForAtMostOncePerIntervalAndSentWhenItChanged) {
  EngineCoreConfig c = small_config();
  c.expert_load_interval_s = 0.3;
  auto core = EngineCore::create(c);
  ASSERT_TRUE(core.ok());
  (*core)->add_request(request("a", {1, 2, 3}, 3));
  auto first = (*core)->plan_step();
  ASSERT_TRUE(first);
  EXPECT_TRUE(first->report_expert_load);  // the first step asks
  ASSERT_TRUE((*core)->finish_step(with_load(answer(*first, 5), {3, 0, 1, 2})).ok());
  auto out = (*core)->take_outputs();
  ASSERT_TRUE(out.scheduler_stats->expert_load);
  EXPECT_EQ(out.scheduler_stats->expert_load->tokens, (std::vector<uint64_t>{3, 0, 1, 2}));
  // Within the interval: the steps do not ask, and the stats do not repeat the table.
  int steps = 0;
  while ((*core)->has_unfinished_requests()) {
    auto plan = (*core)->plan_step();
    ASSERT_TRUE(plan);
    EXPECT_FALSE(plan->report_expert_load);
    ASSERT_TRUE((*core)->finish_step(answer(*plan, 5)).ok());
    EXPECT_FALSE((*core)->take_outputs().scheduler_stats->expert_load);
    ++steps;
  }
  EXPECT_EQ(steps, 2);
  EXPECT_FALSE((*core)->plan_step()) << "idle within the interval: nothing to run";
  EXPECT_FALSE((*core)->has_outputs());
  // Idle after the interval with steps not yet reported: one plan without requests collects
  // their load, then nothing more.
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  auto collect = (*core)->plan_step();
  ASSERT_TRUE(collect);
  EXPECT_TRUE(collect->requests.empty());
  EXPECT_TRUE(collect->report_expert_load);
  EXPECT_TRUE((*core)->step_in_flight());
  ASSERT_TRUE(protocol::decode(protocol::encode(*collect)).ok()) << "a valid StepPlan on the wire";
  protocol::StepResult wrong = with_load(protocol::StepResult{}, {1, 1, 1, 1});
  wrong.step_id = collect->step_id + 1;
  EXPECT_FALSE((*core)->finish_step(wrong).ok());
  protocol::StepResult result = with_load(protocol::StepResult{}, {1, 1, 1, 1});
  result.step_id = collect->step_id;
  ASSERT_TRUE((*core)->finish_step(result).ok());
  EXPECT_FALSE((*core)->step_in_flight());
  EXPECT_TRUE((*core)->has_outputs()) << "the new totals must reach the frontend";
  out = (*core)->take_outputs();
  EXPECT_TRUE(out.outputs.empty());
  ASSERT_TRUE(out.scheduler_stats->expert_load);
  EXPECT_EQ(out.scheduler_stats->expert_load->tokens, (std::vector<uint64_t>{4, 1, 2, 3}));
  EXPECT_EQ((*core)->expert_load().layers, (std::vector<uint32_t>{1, 2}));
  EXPECT_FALSE((*core)->has_outputs());
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  EXPECT_FALSE((*core)->plan_step()) << "everything was reported";
}

TEST(EngineCore, ExpertLoadEveryStepWithAZeroInterval) {
  EngineCoreConfig c = small_config();
  c.expert_load_interval_s = 0;
  auto core = EngineCore::create(c);
  ASSERT_TRUE(core.ok());
  (*core)->add_request(request("a", {1, 2, 3}, 2));
  uint64_t steps = 0;
  while ((*core)->has_unfinished_requests()) {
    auto plan = (*core)->plan_step();
    ASSERT_TRUE(plan);
    EXPECT_TRUE(plan->report_expert_load);
    ASSERT_TRUE((*core)->finish_step(with_load(answer(*plan, 5), {1, 0, 0, 1})).ok());
    ++steps;
  }
  EXPECT_EQ(steps, 2u);
  EXPECT_FALSE((*core)->plan_step()) << "every step was reported with itself";
  EXPECT_EQ((*core)->expert_load().tokens, (std::vector<uint64_t>{steps, 0, 0, steps}));
}

TEST(StopIds, TokenizerEosFirstThenConfigGenerationConfigAndImEnd) {
  const std::string dir = std::string(K2_TEST_DATA_DIR) + "/models/demo-trained";
  // The expected ids from an independent file: special_tokens.json names [EOS] and <|im_end|>.
  std::ifstream in(dir + "/special_tokens.json");
  const nlohmann::json special = nlohmann::json::parse(in);
  const int32_t eos = special.at("eos_token_id").get<int32_t>();
  const int32_t im_end = special.at("im_end_token_id").get<int32_t>();
  ASSERT_NE(eos, im_end);
  EXPECT_EQ(model_stop_ids(dir, dir, {im_end}), (std::vector<int32_t>{eos, im_end}));
  // A directory without tokenizer or generation config: just config.json's ids.
  const std::string tiny = std::string(K2_TEST_DATA_DIR) + "/models/tiny-bf16";
  EXPECT_EQ(model_stop_ids(tiny, tiny, {42}), (std::vector<int32_t>{42}));
}

}  // namespace
}  // namespace k2::engine
