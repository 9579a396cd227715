// Expert-load statistics from the model's router counters through the ModelRunner and the
// EngineCore (the enginecore's in-process path: plans and results round-trip the wire codec),
// and the sum over expert-parallel ranks (ranks as threads).
#include <gtest/gtest.h>

#include <filesystem>
#include <iostream>
#include <numeric>
#include <thread>

#include "enginecore/engine_core.h"
#include "enginecore/protocol/codec.h"
#include "workers/model_runner.h"
#include "workers/parallel/thread_group_communicator.h"

namespace k2 {
namespace {

const std::filesystem::path kModels = std::filesystem::path(K2_TEST_DATA_DIR) / "models";
constexpr int64_t kBlocks = 64, kBlockSize = 4;

template <class M>
M round_trip(const M& m) {
  auto back = protocol::decode(protocol::encode(m));
  EXPECT_TRUE(back.ok()) << back.status().to_string();
  return std::get<M>(*back);
}

ModelConfig config_of(const std::string& set) { return ModelConfig::from_dir(kModels / set).value(); }

// The model's cumulative counters as one dense [moe layers x experts] table.
std::vector<uint64_t> dense_load(const std::vector<const DeepSeekV3*>& ranks) {
  const int64_t experts = ranks[0]->config().n_routed_experts;
  std::vector<uint64_t> out;
  const auto first = ranks[0]->expert_load();
  out.assign(first.size() * static_cast<size_t>(experts), 0);
  for (const DeepSeekV3* m : ranks) {
    const auto load = m->expert_load();
    for (size_t i = 0; i < load.size(); ++i)
      for (size_t e = 0; e < load[i].tokens.size(); ++e)
        out[i * static_cast<size_t>(experts) + static_cast<size_t>(load[i].first_expert) + e] = load[i].tokens[e];
  }
  return out;
}

engine::EngineCoreConfig engine_config(const ModelConfig& c, double interval) {
  engine::EngineCoreConfig ec;
  ec.kv.block_size = kBlockSize;
  ec.kv.num_blocks = kBlocks;
  ec.scheduler.max_model_len = 64;
  ec.scheduler.max_num_batched_tokens = 32;
  ec.expert_load_interval_s = interval;
  for (int64_t id : c.eos_token_ids) ec.eos_token_ids.push_back(static_cast<int32_t>(id));
  return ec;
}

void add(engine::EngineCore& core, const std::string& id, std::vector<int32_t> prompt, uint32_t max_tokens) {
  protocol::AddRequest r;
  r.request_id = id;
  r.prompt = protocol::inline_tokens(std::move(prompt));
  r.params.temperature = 0;
  r.params.ignore_eos = true;
  r.params.max_tokens = max_tokens;
  core.add_request(round_trip(r));
}

// Runs plans until the engine has nothing left to plan; returns the tokens the model ran.
uint64_t drain(engine::EngineCore& core, ModelRunner& runner, protocol::ExpertLoad* published) {
  uint64_t rows = 0;
  for (int steps = 0; steps < 1000; ++steps) {
    auto plan = core.plan_step();
    if (!plan) {
      if (!core.has_unfinished_requests()) break;
      continue;
    }
    rows += plan->total_num_tokens;
    auto result = runner.execute(round_trip(*plan));
    EXPECT_TRUE(result.ok()) << result.status().to_string();
    if (!result.ok()) break;
    EXPECT_TRUE(core.finish_step(round_trip(*result)).ok());
    const protocol::EngineOutputs out = round_trip(core.take_outputs());
    if (out.scheduler_stats->expert_load) *published = *out.scheduler_stats->expert_load;
  }
  return rows;
}

TEST(ModelRunnerExpertLoad, EngineTotalsMatchTheRouterCounters) {
  const ModelConfig config = config_of("tiny-bf16");
  auto model = DeepSeekV3::load_dummy(config, 5);
  ASSERT_TRUE(model.ok()) << model.status().to_string();
  LatentKvCache cache =
      LatentKvCache::create(config.num_hidden_layers, kBlocks, kBlockSize, (*model)->cache_row_dim()).value();
  ModelRunner runner(**model, cache);
  // Every step asks: the published totals must equal the model's counters after each drain.
  auto core = engine::EngineCore::create(engine_config(config, 0)).value();
  add(*core, "a", {3, 1, 4, 1, 5, 9, 2, 6}, 4);
  add(*core, "b", {2, 7, 1, 8}, 3);
  protocol::ExpertLoad published;
  const uint64_t rows = drain(*core, runner, &published);
  const auto moe = (*model)->expert_load();
  ASSERT_FALSE(moe.empty());
  EXPECT_EQ(published.num_experts, static_cast<uint32_t>(config.n_routed_experts));
  ASSERT_EQ(published.layers.size(), moe.size());
  for (size_t i = 0; i < moe.size(); ++i) EXPECT_EQ(published.layers[i], static_cast<uint32_t>(moe[i].layer));
  EXPECT_EQ(published.tokens, dense_load({model->get()}));
  // Each token a layer runs goes to num_experts_per_tok experts.
  const uint64_t first_layer = std::accumulate(published.tokens.begin(),
                                               published.tokens.begin() + config.n_routed_experts, uint64_t{0});
  EXPECT_EQ(first_layer, rows * static_cast<uint64_t>(config.num_experts_per_tok));
  EXPECT_EQ(core->expert_load(), published);
}

TEST(ModelRunnerExpertLoad, TheLastBurstIsCollectedOnceIdle) {
  const ModelConfig config = config_of("tiny-bf16");
  auto model = DeepSeekV3::load_dummy(config, 5);
  ASSERT_TRUE(model.ok());
  LatentKvCache cache =
      LatentKvCache::create(config.num_hidden_layers, kBlocks, kBlockSize, (*model)->cache_row_dim()).value();
  ModelRunner runner(**model, cache);
  // A long interval: the first step asks, later ones (a few ms each) normally do not, so their
  // load must come with the plan the idle engine makes once the interval has passed.
  constexpr double kInterval = 1.5;
  auto core = engine::EngineCore::create(engine_config(config, kInterval)).value();
  add(*core, "a", {3, 1, 4, 1, 5}, 6);
  protocol::ExpertLoad published;
  drain(*core, runner, &published);
  const bool all_reported = published.tokens == dense_load({model->get()});  // only on a very slow run
  if (all_reported) std::cout << "the run outlasted the interval; no burst left to collect\n";
  EXPECT_FALSE(core->plan_step()) << "idle within the interval";
  std::this_thread::sleep_for(std::chrono::duration<double>(kInterval + 0.1));
  auto collect = core->plan_step();
  ASSERT_EQ(collect.has_value(), !all_reported);
  if (collect) {
    EXPECT_TRUE(collect->requests.empty());
    auto result = runner.execute(round_trip(*collect));
    ASSERT_TRUE(result.ok()) << result.status().to_string();
    ASSERT_TRUE(core->finish_step(round_trip(*result)).ok());
    ASSERT_TRUE(core->has_outputs());
    const protocol::EngineOutputs out = round_trip(core->take_outputs());
    ASSERT_TRUE(out.scheduler_stats->expert_load);
    published = *out.scheduler_stats->expert_load;
  }
  EXPECT_EQ(published.tokens, dense_load({model->get()}));
  EXPECT_FALSE(core->plan_step()) << "nothing left to report";
}

// An idle data-parallel rank's dummy forward (engine_loop.cpp's plan: one token into the null
// block) routes no request's token: it must not show in the counts.
TEST(ModelRunnerExpertLoad, DummyForwardsAreLeftOut) {
  const ModelConfig config = config_of("tiny-bf16");
  auto model = DeepSeekV3::load_dummy(config, 5);
  ASSERT_TRUE(model.ok());
  LatentKvCache cache =
      LatentKvCache::create(config.num_hidden_layers, kBlocks, kBlockSize, (*model)->cache_row_dim()).value();
  ModelRunner runner(**model, cache);
  for (uint64_t i = 0; i < 3; ++i) {
    protocol::StepPlan dummy;
    dummy.step_id = protocol::kDummyStepBit | i;
    protocol::ScheduledRequest r;
    r.request_id = "dummy";
    r.token_ids = protocol::inline_tokens({0});
    r.num_tokens = 1;
    r.blocks.block_ids = {0};
    r.params_index = 0;
    r.num_prompt_tokens = 1;
    dummy.requests.push_back(r);
    dummy.sampling_params.emplace_back();
    dummy.finished_request_ids = {"dummy"};
    dummy.total_num_tokens = 1;
    ASSERT_TRUE(runner.execute(round_trip(dummy)).ok());
  }
  uint64_t routed = 0;
  for (const auto& layer : (*model)->expert_load())
    routed += std::accumulate(layer.tokens.begin(), layer.tokens.end(), uint64_t{0});
  // The runner marks the forward ForwardBatch::dummy, so the model never counts it (with
  // experts across DP ranks it could not be subtracted afterwards: other ranks' rows count too).
  EXPECT_EQ(routed, 0u) << "the model left the dummy tokens out";
  protocol::StepPlan report;
  report.step_id = protocol::kExpertLoadStepBit;
  report.report_expert_load = true;
  auto result = runner.execute(round_trip(report));
  ASSERT_TRUE(result.ok()) << result.status().to_string();
  ASSERT_TRUE(result->expert_load);
  EXPECT_EQ(result->expert_load->tokens, std::vector<uint64_t>(result->expert_load->tokens.size(), 0));
  // Real requests afterwards are counted exactly.
  auto core = engine::EngineCore::create(engine_config(config, 0)).value();
  add(*core, "a", {3, 1, 4, 1, 5}, 3);
  protocol::ExpertLoad published;
  const uint64_t rows = drain(*core, runner, &published);
  const uint64_t first_layer =
      std::accumulate(published.tokens.begin(), published.tokens.begin() + config.n_routed_experts, uint64_t{0});
  EXPECT_EQ(first_layer, rows * static_cast<uint64_t>(config.num_experts_per_tok));
}

// Two ranks run the same plans. Expert parallel: each holds half the experts and rank 0's
// report is the sum. Tensor parallel: each routes every token to every expert's slice, so
// rank 0's report is its own count, not twice it.
TEST(ModelRunnerExpertLoad, ParallelRanksReportTheWholeDeploymentOnce) {
  const ModelConfig config = config_of("tiny-bf16");
  auto whole = DeepSeekV3::load_dummy(config, 5);
  ASSERT_TRUE(whole.ok());
  for (bool ep : {true, false}) {
    auto comms = ThreadGroupCommunicator::create(2);
    std::vector<std::unique_ptr<DeepSeekV3>> ranks;
    std::vector<LatentKvCache> caches;
    std::vector<std::unique_ptr<ModelRunner>> runners;
    for (int r = 0; r < 2; ++r) {
      auto m = DeepSeekV3::load_dummy(config, 5, {}, Shard{r, 2, ep}, comms[static_cast<size_t>(r)].get());
      ASSERT_TRUE(m.ok()) << m.status().to_string();
      ranks.push_back(std::move(*m));
      caches.push_back(LatentKvCache::create(config.num_hidden_layers, kBlocks, kBlockSize, ranks.back()->cache_row_dim())
                           .value());
    }
    for (int r = 0; r < 2; ++r) {
      runners.push_back(std::make_unique<ModelRunner>(*ranks[static_cast<size_t>(r)], caches[static_cast<size_t>(r)],
                                                      static_cast<uint32_t>(r)));
      runners.back()->set_group(comms[static_cast<size_t>(r)].get());
    }
    auto core = engine::EngineCore::create(engine_config(config, 0)).value();
    add(*core, "a", {3, 1, 4, 1, 5, 9, 2, 6}, 3);
    uint64_t rows = 0;
    protocol::ExpertLoad published;
    while (core->has_unfinished_requests()) {
      auto plan = core->plan_step();
      ASSERT_TRUE(plan);
      rows += plan->total_num_tokens;
      std::vector<Result<protocol::StepResult>> results(2, internal_error("not run"));
      std::vector<std::thread> threads;
      for (size_t r = 0; r < 2; ++r) threads.emplace_back([&, r] { results[r] = runners[r]->execute(*plan); });
      for (auto& t : threads) t.join();
      ASSERT_TRUE(results[0].ok()) << results[0].status().to_string();
      ASSERT_TRUE(results[1].ok()) << results[1].status().to_string();
      EXPECT_FALSE(results[1]->expert_load) << "only rank 0 reports";
      ASSERT_TRUE(core->finish_step(round_trip(*results[0])).ok());
      const protocol::EngineOutputs out = round_trip(core->take_outputs());
      if (out.scheduler_stats->expert_load) published = *out.scheduler_stats->expert_load;
    }
    std::vector<const DeepSeekV3*> holders;
    if (ep) holders = {ranks[0].get(), ranks[1].get()};
    else holders = {ranks[0].get()};
    EXPECT_EQ(published.tokens, dense_load(holders)) << (ep ? "expert" : "tensor") << " parallel";
    const uint64_t first_layer = std::accumulate(published.tokens.begin(),
                                                 published.tokens.begin() + config.n_routed_experts, uint64_t{0});
    EXPECT_EQ(first_layer, rows * static_cast<uint64_t>(config.num_experts_per_tok)) << (ep ? "EP" : "TP");
  }
}

}  // namespace
}  // namespace k2
