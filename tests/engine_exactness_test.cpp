// The enginecore's engine and the worker's model runner in one process (no IPC, but every
// plan and result goes through the wire codec): greedy generation of every golden prompt of
// tiny-bf16 and tiny-int4 must give the golden tokens, alone, all in flight together, with a
// KV cache so small that requests are preempted, and with tiny chunked-prefill budgets.
#include <gtest/gtest.h>

#include <map>

#include "enginecore/engine_core.h"
#include "enginecore/protocol/codec.h"
#include "engine_test_util.h"
#include "workers/generate.h"
#include "workers/model_runner.h"

namespace k2 {
namespace {

using engine::EngineCore;
using engine::EngineCoreConfig;
using testing::GoldenPrompt;

template <class T>
T round_trip(const T& message) {
  auto decoded = protocol::decode(protocol::encode(message));
  EXPECT_TRUE(decoded.ok()) << decoded.status().to_string();
  return std::get<T>(*decoded);
}

struct Harness {
  std::unique_ptr<DeepSeekV3> model;
  std::optional<LatentKvCache> cache;
  std::optional<ModelRunner> runner;
  std::unique_ptr<EngineCore> core;
  std::map<std::string, std::vector<int32_t>> tokens;
  std::map<std::string, protocol::FinishReason> finished;

  Harness(const std::string& set, EngineCoreConfig config) {
    auto m = load_model(testing::model_dir(set), ProgressStyle::kQuiet);
    EXPECT_TRUE(m.ok()) << m.status().to_string();
    model = std::move(*m);
    auto c = LatentKvCache::create(model->config().num_hidden_layers, config.kv.num_blocks, config.kv.block_size,
                                   model->cache_row_dim());
    EXPECT_TRUE(c.ok());
    cache.emplace(std::move(*c));
    runner.emplace(*model, *cache);
    if (config.scheduler.max_model_len == 0) config.scheduler.max_model_len = 512;
    for (int64_t id : model->config().eos_token_ids) config.eos_token_ids.push_back(static_cast<int32_t>(id));
    auto e = EngineCore::create(config);
    EXPECT_TRUE(e.ok()) << e.status().to_string();
    core = std::move(*e);
  }

  void add(const std::string& id, const std::vector<int32_t>& prompt, uint32_t max_tokens = 16) {
    protocol::AddRequest add;
    add.request_id = id;
    add.prompt = protocol::inline_tokens(prompt);
    add.params.temperature = 0;
    add.params.max_tokens = max_tokens;
    core->add_request(round_trip(add));
  }

  void collect() {
    protocol::EngineOutputs out = round_trip(core->take_outputs());
    for (const auto& o : out.outputs) {
      auto& t = tokens[o.request_id];
      t.insert(t.end(), o.new_token_ids.begin(), o.new_token_ids.end());
      if (o.finish_reason != protocol::FinishReason::kNone) finished[o.request_id] = o.finish_reason;
    }
  }

  void run_to_completion() {
    collect();
    for (int steps = 0; core->has_unfinished_requests(); ++steps) {
      ASSERT_LT(steps, 100000) << "the engine does not make progress";
      auto plan = core->plan_step();
      if (!plan) continue;
      auto result = runner->execute(round_trip(*plan));
      ASSERT_TRUE(result.ok()) << result.status().to_string();
      Status s = core->finish_step(round_trip(*result));
      ASSERT_TRUE(s.ok()) << s.to_string();
      ASSERT_TRUE(core->scheduler().check_invariants().ok());
      collect();
    }
  }
};

EngineCoreConfig default_config() {
  EngineCoreConfig c;
  c.kv.block_size = 16;
  c.kv.num_blocks = 256;
  c.scheduler.max_num_batched_tokens = 2048;
  c.scheduler.max_num_seqs = 256;
  return c;
}

class EngineExactness : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { prompts_ = testing::golden_prompts(GetParam(), &atol_); }

  // All prompts (repeats times, ids suffixed) in flight at once on one engine.
  void run_together(Harness& h, int repeats, const std::string& what) {
    for (int r = 0; r < repeats; ++r)
      for (const auto& g : prompts_) h.add(what + ":" + g.id + "#" + std::to_string(r), g.prompt);
    h.run_to_completion();
    size_t compared = 0;
    for (int r = 0; r < repeats; ++r)
      for (const auto& g : prompts_) {
        const std::string id = what + ":" + g.id + "#" + std::to_string(r);
        EXPECT_EQ(h.finished[id], protocol::FinishReason::kLength) << id;
        compared += testing::expect_golden_tokens(g, h.tokens[id], atol_, what);
      }
    EXPECT_GT(compared, prompts_.size() * repeats * 4) << "too few tokens were comparable";
  }

  std::vector<GoldenPrompt> prompts_;
  double atol_ = 1e-3;
};

TEST_P(EngineExactness, EachPromptAlone) {
  for (const auto& g : prompts_) {
    Harness h(GetParam(), default_config());
    h.add(g.id, g.prompt);
    h.run_to_completion();
    testing::expect_golden_tokens(g, h.tokens[g.id], atol_, "alone");
  }
}

TEST_P(EngineExactness, AllTogetherThenAgainFromThePrefixCache) {
  Harness h(GetParam(), default_config());
  run_together(h, 1, "together");
  const auto before = h.core->scheduler().stats().prefix_cache_hits;
  run_together(h, 1, "from the prefix cache");
  EXPECT_GT(h.core->scheduler().stats().prefix_cache_hits, before);
}

TEST_P(EngineExactness, SmallKvCacheForcesPreemption) {
  EngineCoreConfig c = default_config();
  c.kv.block_size = 4;
  int64_t longest = 0;
  for (const auto& g : prompts_) longest = std::max<int64_t>(longest, static_cast<int64_t>(g.prompt.size()) + 16);
  c.kv.num_blocks = static_cast<int32_t>((longest + 3) / 4 + 4);  // one long request and a little more
  Harness h(GetParam(), c);
  run_together(h, 2, "preempted");
  EXPECT_GT(h.core->scheduler().stats().num_preemptions, 0);
}

TEST_P(EngineExactness, ChunkedPrefillWithTinyBudgets) {
  for (int budget : {1, 7, 33}) {
    EngineCoreConfig c = default_config();
    c.scheduler.max_num_batched_tokens = budget;
    Harness h(GetParam(), c);
    run_together(h, 1, "budget " + std::to_string(budget));
  }
}

INSTANTIATE_TEST_SUITE_P(Golden, EngineExactness, ::testing::Values("tiny-bf16", "tiny-int4"),
                         [](const auto& info) { return info.param == "tiny-bf16" ? "tiny_bf16" : "tiny_int4"; });

}  // namespace
}  // namespace k2
