// The sharded model (tensor and expert parallel, ranks as threads) against the unsharded one.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <iostream>
#include <thread>

#include "workers/models/deepseek_v3.h"
#include "workers/models/logit_compare.h"
#include "workers/parallel/thread_group_communicator.h"

namespace k2 {
namespace {

const std::filesystem::path kModels = std::filesystem::path(K2_TEST_DATA_DIR) / "models";

using Loader = std::function<Result<std::unique_ptr<DeepSeekV3>>(const Shard&, Communicator*)>;

struct Group {
  std::vector<std::unique_ptr<ThreadGroupCommunicator>> comms;
  std::vector<std::unique_ptr<DeepSeekV3>> ranks;
};

Group load_group(const Loader& load, int n, bool ep) {
  Group g;
  g.comms = ThreadGroupCommunicator::create(n);
  for (int r = 0; r < n; ++r) {
    Result<std::unique_ptr<DeepSeekV3>> m = load(Shard{r, n, ep}, g.comms[static_cast<size_t>(r)].get());
    EXPECT_TRUE(m.ok()) << m.status().to_string();
    if (m.ok()) g.ranks.push_back(std::move(m).value());
  }
  return g;
}

// Prefill of two prompts (one varlen batch, every logit row), then three decode steps of both:
// all logits in order.
std::vector<float> run_script(const DeepSeekV3& m) {
  const ModelConfig& c = m.config();
  LatentKvCache cache = LatentKvCache::create(c.num_hidden_layers, 8, 4, m.cache_row_dim()).value();
  std::vector<int32_t> a, b;
  for (int32_t i = 0; i < 9; ++i) a.push_back(static_cast<int32_t>((i * 37 + 5) % c.vocab_size));
  for (int32_t i = 0; i < 5; ++i) b.push_back(static_cast<int32_t>((i * 53 + 11) % c.vocab_size));
  const std::vector<int32_t> ta = {0, 1, 2, 3}, tb = {4, 5, 6, 7};
  std::vector<float> out;
  Result<Logits> pre = m.forward(ForwardBatch{{{a, 0, ta}, {b, 0, tb}}, LogitRows::kAll}, cache);
  EXPECT_TRUE(pre.ok()) << pre.status().to_string();
  if (!pre.ok()) return out;
  out = pre->data;
  for (int32_t step = 0; step < 3; ++step) {
    const std::vector<int32_t> na = {static_cast<int32_t>(step + 1)}, nb = {static_cast<int32_t>(step + 7)};
    Result<Logits> dec = m.forward(
        ForwardBatch{{{na, 9 + step, ta}, {nb, 5 + step, tb}}, LogitRows::kLastPerSequence}, cache);
    EXPECT_TRUE(dec.ok()) << dec.status().to_string();
    if (!dec.ok()) return out;
    out.insert(out.end(), dec->data.begin(), dec->data.end());
  }
  return out;
}

// Every rank at once (their collectives pair up); one logit vector per rank.
std::vector<std::vector<float>> run_ranks(const Group& g) {
  std::vector<std::vector<float>> out(g.ranks.size());
  std::vector<std::thread> threads;
  for (size_t r = 0; r < g.ranks.size(); ++r) threads.emplace_back([&, r] { out[r] = run_script(*g.ranks[r]); });
  for (std::thread& t : threads) t.join();
  return out;
}

using logit_compare::max_diff;
using logit_compare::same_bits;

ModelConfig config_of(const std::string& set) { return ModelConfig::from_dir(kModels / set).value(); }

// Dummy weights of a real config: a shard holds the slice of the unsharded weights, so the
// sharded logits equal the unsharded ones up to the order of the sums.
void expect_shards_match(const ModelConfig& config, const WeightLayouts& layouts, double tol) {
  auto whole = DeepSeekV3::load_dummy(config, 3, layouts);
  ASSERT_TRUE(whole.ok()) << whole.status().to_string();
  const std::vector<float> want = run_script(**whole);
  for (int n : {2, 4}) {
    for (bool ep : {false, true}) {
      Group g = load_group([&](const Shard& s, Communicator* c) { return DeepSeekV3::load_dummy(config, 3, layouts, s, c); },
                           n, ep);
      ASSERT_EQ(g.ranks.size(), static_cast<size_t>(n));
      const auto got = run_ranks(g);
      EXPECT_LE(max_diff(got[0], want), tol) << "size " << n << (ep ? " expert" : " tensor") << " parallel";
      for (int r = 1; r < n; ++r) EXPECT_TRUE(same_bits(got[static_cast<size_t>(r)], got[0])) << "rank " << r;
    }
  }
}

TEST(DeepSeekV3ParallelTest, Float32ShardsMatchTheWholeModel) {
  expect_shards_match(config_of("tiny-bf16"), WeightLayouts{}, 1e-4);
  expect_shards_match(config_of("noqlora-bf16"), WeightLayouts{}, 1e-4);  // plain q_proj, two shared experts
}

TEST(DeepSeekV3ParallelTest, Bf16FastPathShardsMatchTheWholeModel) {
  const WeightLayouts bf16 = weight_layouts_for("bfloat16", "").value();
  expect_shards_match(config_of("tiny-bf16"), bf16, 1e-2);
}

// int8 experts are quantised at load per output row: a rank's columns of down_proj get
// scales of their own, so sharded int8 differs from whole int8 by a quantisation error, not
// by summation order, and that error can flip a near-tied routing choice (logits then move
// by a fraction of a unit; tests/data/models/README.md §8). Both must stay near the float32
// model: within twice the whole model's error, or 0.5 where that is smaller than a flip
// (the bound this test had while the dense layers' bf16 activations set the error; a wrong
// shard moves logits by their whole spread, ~3).
TEST(DeepSeekV3ParallelTest, Int8ExpertsShardAsWell) {
  const ModelConfig config = config_of("tiny-bf16");
  const WeightLayouts int8 = weight_layouts_for("bfloat16", "int8").value();
  const std::vector<float> exact = run_script(*DeepSeekV3::load_dummy(config, 3).value());
  const double whole_error = max_diff(run_script(*DeepSeekV3::load_dummy(config, 3, int8).value()), exact);
  for (bool ep : {false, true}) {
    Group g = load_group([&](const Shard& s, Communicator* c) { return DeepSeekV3::load_dummy(config, 3, int8, s, c); },
                         2, ep);
    ASSERT_EQ(g.ranks.size(), 2u);
    const auto got = run_ranks(g);
    std::cout << (ep ? "EP" : "TP") << "=2 int8 experts: max |logit - float32| " << max_diff(got[0], exact)
              << ", unsharded int8 " << whole_error << "\n";
    EXPECT_LE(max_diff(got[0], exact), std::max(2 * whole_error, 0.5));
    EXPECT_TRUE(same_bits(got[0], got[1]));
  }
}

// The checkpoint at TP=2 against TP=1: the figure the issue asks for.
TEST(DeepSeekV3ParallelTest, CheckpointTensorParallelMatchesUnsharded) {
  const ModelConfig config = config_of("tiny-bf16");
  const Checkpoint checkpoint = Checkpoint::open(kModels / "tiny-bf16", config).value();
  auto whole = DeepSeekV3::load(checkpoint, config, ProgressStyle::kQuiet);
  ASSERT_TRUE(whole.ok());
  const std::vector<float> want = run_script(**whole);
  Group g = load_group([&](const Shard& s, Communicator* c) {
    return DeepSeekV3::load(checkpoint, config, ProgressStyle::kQuiet, {}, s, c);
  }, 2, false);
  ASSERT_EQ(g.ranks.size(), 2u);
  const auto got = run_ranks(g);
  const double diff = max_diff(got[0], want);
  std::cout << "tiny-bf16 float32: largest |logit TP=2 - TP=1| = " << diff << " over " << want.size() << " logits\n";
  EXPECT_LE(diff, 1e-4);
  EXPECT_TRUE(same_bits(got[0], got[1]));
}

TEST(DeepSeekV3ParallelTest, ExpertLoadCountsEveryRoutedToken) {
  const ModelConfig config = config_of("tiny-bf16");
  auto whole = DeepSeekV3::load_dummy(config, 3);
  ASSERT_TRUE(whole.ok());
  run_script(**whole);
  const auto want = (*whole)->expert_load();
  ASSERT_FALSE(want.empty());
  // 14 prefill rows + 3 steps of 2 rows, each routed to num_experts_per_tok experts.
  uint64_t total = 0;
  for (uint64_t t : want[0].tokens) total += t;
  EXPECT_EQ(total, static_cast<uint64_t>((14 + 3 * 2) * config.num_experts_per_tok));
  Group g = load_group([&](const Shard& s, Communicator* c) { return DeepSeekV3::load_dummy(config, 3, {}, s, c); },
                       2, true);
  ASSERT_EQ(g.ranks.size(), 2u);
  run_ranks(g);
  for (size_t i = 0; i < want.size(); ++i) {
    std::vector<uint64_t> joined;
    for (const auto& rank : g.ranks) {
      const auto load = rank->expert_load();
      ASSERT_EQ(load.size(), want.size());
      EXPECT_EQ(load[i].layer, want[i].layer);
      EXPECT_EQ(load[i].first_expert, static_cast<int64_t>(joined.size()));
      joined.insert(joined.end(), load[i].tokens.begin(), load[i].tokens.end());
    }
    // Router choices differ from the unsharded model's only where the sums' order flips a
    // near-tie; with these weights they do not.
    EXPECT_EQ(joined, want[i].tokens) << "layer " << want[i].layer;
  }
}

TEST(DeepSeekV3ParallelTest, ShapesThatDoNotDivideAreClearErrors) {
  ModelConfig config = config_of("micro-bf16");
  Status s = DeepSeekV3::check_shard(config, Shard{0, 4, false});
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_NE(s.message().find("num_attention_heads"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("does not divide"), std::string::npos) << s.message();

  config = config_of("tiny-bf16");
  EXPECT_TRUE(DeepSeekV3::check_shard(config, Shard{0, 4, true}).ok());
  config.n_routed_experts = 6;
  s = DeepSeekV3::check_shard(config, Shard{0, 4, true});
  EXPECT_NE(s.message().find("n_routed_experts"), std::string::npos) << s.message();
  EXPECT_TRUE(DeepSeekV3::check_shard(config, Shard{0, 2, false}).ok());  // TP slices each expert instead
  config = config_of("tiny-bf16");
  config.moe_intermediate_size = 66;
  s = DeepSeekV3::check_shard(config, Shard{0, 4, false});
  EXPECT_NE(s.message().find("moe_intermediate_size"), std::string::npos) << s.message();
  // A load that does not divide fails before reading a weight, and so does one without a
  // communicator of the right size.
  EXPECT_FALSE(DeepSeekV3::load_dummy(config, 0, {}, Shard{0, 4, false}).ok());
  auto comms = ThreadGroupCommunicator::create(3);
  EXPECT_EQ(DeepSeekV3::load_dummy(config_of("tiny-bf16"), 0, {}, Shard{0, 2, false}, comms[0].get()).status().code(),
            Code::kInvalidArgument);
  EXPECT_FALSE(DeepSeekV3::load_dummy(config_of("tiny-bf16"), 0, {}, Shard{0, 2, false}, nullptr).ok());
}

}  // namespace
}  // namespace k2
