#include "frontend/engine/engine_wire.h"

#include <gtest/gtest.h>

namespace k2::frontend {
namespace {

TEST(EngineWire, SamplingParamsTheEngineCannotTakeAreRefused) {
  openai::SamplingParams s;
  s.n = 2;
  EXPECT_EQ(to_protocol_params(s).status().code(), Code::kInvalidArgument);
  s.n = 1;
  s.allowed_token_ids = std::vector<int32_t>{1};
  EXPECT_EQ(to_protocol_params(s).status().code(), Code::kUnimplemented);
  s.allowed_token_ids.reset();
  s.logprobs = -1;
  EXPECT_FALSE(to_protocol_params(s).ok());
  s.logprobs = 3;
  s.logit_bias[7] = -2.5;
  s.max_tokens = 9;
  auto p = to_protocol_params(s);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->logprobs, 3u);
  EXPECT_EQ(p->max_tokens, 9u);
  ASSERT_EQ(p->logit_bias.size(), 1u);
  EXPECT_EQ(p->logit_bias[0].token_id, 7);
  EXPECT_FLOAT_EQ(p->logit_bias[0].bias, -2.5f);
}

TEST(EngineWire, AddRequestCarriesEverythingButPromptAndMedia) {
  openai::GenerateRequest r;
  r.request_id = "r1";
  EXPECT_EQ(to_add_request(r).status().code(), Code::kInvalidArgument) << "empty prompt";
  r.prompt_ids = {1, 2, 3};
  r.priority = 4;
  r.cache_salt = "salt";
  r.structured = openai::StructuredOutputRequest{"{}", false, 9};
  auto add = to_add_request(r);
  ASSERT_TRUE(add.ok());
  EXPECT_EQ(add->request_id, "r1");
  EXPECT_EQ(add->priority, 4);
  EXPECT_EQ(add->cache_salt, "salt");
  ASSERT_TRUE(add->structured);
  EXPECT_EQ(add->structured->reasoning_end_token_id, 9);
  EXPECT_TRUE(add->prompt.ids.empty()) << "the prompt is placed once the rank is known";
  EXPECT_GT(add->arrival_time, 0);
}

TEST(EngineWire, OutputsKeepLogprobsEventsAndFinish) {
  protocol::RequestOutput o;
  o.request_id = "r";
  o.new_token_ids = {5, 6};
  o.new_logprobs = protocol::TokenLogprobs{2, 2, {5, 9, 6, 8}, {-0.1f, -1.f, -0.2f, -2.f}, {1, 3}};
  o.finish_reason = protocol::FinishReason::kStop;
  o.stop_token = 6;
  o.events = {{protocol::RequestEventType::kQueued, 1.0}, {protocol::RequestEventType::kScheduled, 2.0},
              {protocol::RequestEventType::kScheduled, 3.0}};
  const openai::EngineOutput out = to_engine_output(o, 4.0);
  EXPECT_EQ(out.new_token_ids, (std::vector<int32_t>{5, 6}));
  ASSERT_EQ(out.logprobs.size(), 2u);
  EXPECT_EQ(out.logprobs[1].chosen.token_id, 6);
  EXPECT_EQ(out.logprobs[1].chosen.rank, 3);
  ASSERT_EQ(out.logprobs[1].top.size(), 1u);
  EXPECT_EQ(out.logprobs[1].top[0].token_id, 8);
  EXPECT_EQ(out.finish_reason, openai::FinishReason::kStop);
  EXPECT_EQ(out.stop_token_id, 6);
  EXPECT_DOUBLE_EQ(out.queued_time, 1.0);
  EXPECT_DOUBLE_EQ(out.scheduled_time, 2.0) << "a preempted request keeps its first schedule time";
  EXPECT_DOUBLE_EQ(out.engine_time, 4.0);
  o.finish_reason = protocol::FinishReason::kError;
  EXPECT_FALSE(to_engine_output(o).error.empty());
}

TEST(EngineWire, ReadyMessagesFoldIntoTheDeploymentsCapacities) {
  EngineCapacities c = fresh_capacities();
  protocol::ReadyMsg r0;
  r0.max_model_len = 4096;
  r0.num_kv_blocks = 100;
  r0.block_size = 16;
  r0.config_json = R"({"worker_pids": [11, 12], "eos_token_ids": [2], "dp_waves": true})";
  protocol::ReadyMsg r1 = r0;
  r1.max_model_len = 2048;
  r1.config_json = R"({"eos_token_ids": [99]})";
  const ReadyFacts f0 = add_ready(r0, 0, c);
  const ReadyFacts f1 = add_ready(r1, 1, c);
  EXPECT_EQ(c.max_model_len, 2048u);
  EXPECT_EQ(c.num_kv_blocks, 200u);
  EXPECT_EQ(c.eos_token_ids, (std::vector<int32_t>{2})) << "rank 0's stop ids only";
  EXPECT_EQ(f0.worker_pids, (std::vector<pid_t>{11, 12}));
  EXPECT_TRUE(f0.dp_waves);
  EXPECT_FALSE(f1.dp_waves);
  protocol::ReadyMsg bad = r0;
  bad.config_json = "not json";
  EXPECT_TRUE(add_ready(bad, 0, c).worker_pids.empty());
}

TEST(EngineWire, StatsSumOverRanksWithTheMeanCacheUsage) {
  openai::EngineStats a, b;
  a.num_running = 2;
  a.kv_cache_usage = 0.5;
  a.prefix_cache_hits = 3;
  b.num_running = 1;
  b.num_waiting = 4;
  b.kv_cache_usage = 0.25;
  const openai::EngineStats sum = sum_stats({a, b});
  EXPECT_EQ(sum.num_running, 3);
  EXPECT_EQ(sum.num_waiting, 4);
  EXPECT_DOUBLE_EQ(sum.kv_cache_usage, 0.375);
  EXPECT_EQ(sum.prefix_cache_hits, 3u);
  EXPECT_DOUBLE_EQ(sum_stats({a}).kv_cache_usage, 0.5);
}

}  // namespace
}  // namespace k2::frontend
