// Expert parallelism across data-parallel ranks (EP = TP x DP), ranks as threads: each DP rank
// runs its own batch (or dummy forwards) through a model whose routed experts are spread over
// the workers of both DP ranks; its logits must match the unsharded float32 model's on that
// batch, and the expert load must count every real routed row exactly once.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <optional>
#include <thread>

#include "workers/models/deepseek_v3.h"
#include "workers/models/logit_compare.h"
#include "workers/parallel/thread_group_communicator.h"

namespace k2 {
namespace {

const std::filesystem::path kModels = std::filesystem::path(K2_TEST_DATA_DIR) / "models";

// A DP rank's forwards: a prefill of two prompts (every logit row), then decode steps of both.
// `seed` makes the prompts (and their lengths) differ between DP ranks. dummy: the same number
// of forwards, each an idle rank's dummy one (one token into the null block 0, engine_loop.cpp).
struct Script {
  int seed = 0;
  bool dummy = false;
};
constexpr int kDecodeSteps = 3;

std::vector<float> run_script(const DeepSeekV3& m, const Script& s) {
  const ModelConfig& c = m.config();
  LatentKvCache cache = LatentKvCache::create(c.num_hidden_layers, 9, 4, m.cache_row_dim()).value();
  std::vector<float> out;
  auto forward = [&](ForwardBatch batch) {
    batch.dummy = s.dummy;
    Result<Logits> r = m.forward(batch, cache);
    EXPECT_TRUE(r.ok()) << r.status().to_string();
    if (r.ok() && !s.dummy) out.insert(out.end(), r->data.begin(), r->data.end());
    return r.ok();
  };
  const std::vector<int32_t> null_block = {0}, zero = {0};
  if (s.dummy) {
    for (int i = 0; i <= kDecodeSteps; ++i) {
      if (!forward(ForwardBatch{{{zero, 0, null_block}}, LogitRows::kLastPerSequence})) break;
    }
    return out;
  }
  const int32_t la = 9 - s.seed, lb = 5 + 2 * s.seed;  // different row counts per DP rank
  std::vector<int32_t> a, b;
  for (int32_t i = 0; i < la; ++i) a.push_back(static_cast<int32_t>((i * 37 + 5 + 13 * s.seed) % c.vocab_size));
  for (int32_t i = 0; i < lb; ++i) b.push_back(static_cast<int32_t>((i * 53 + 11 + 7 * s.seed) % c.vocab_size));
  const std::vector<int32_t> ta = {1, 2, 3, 4}, tb = {5, 6, 7, 8};
  if (!forward(ForwardBatch{{{a, 0, ta}, {b, 0, tb}}, LogitRows::kAll})) return out;
  for (int32_t step = 0; step < kDecodeSteps; ++step) {
    const std::vector<int32_t> na = {static_cast<int32_t>(step + 1 + s.seed)}, nb = {static_cast<int32_t>(step + 7)};
    if (!forward(ForwardBatch{{{na, la + step, ta}, {nb, lb + step, tb}}, LogitRows::kLastPerSequence})) break;
  }
  return out;
}

// Real rows a script routes: every prefill token, then two rows a decode step.
int64_t script_rows(const Script& s) { return s.dummy ? 0 : (9 - s.seed) + (5 + 2 * s.seed) + 2 * kDecodeSteps; }

// The DP x TP workers of one deployment; worker dp * tp_size + tp holds Shard{tp, T, true, dp, D}.
struct Deployment {
  int dp_size = 1, tp_size = 1;
  std::vector<std::unique_ptr<ThreadGroupCommunicator>> experts;                   // [dp * T + tp]
  std::vector<std::vector<std::unique_ptr<ThreadGroupCommunicator>>> tensor;      // [dp][tp]
  std::vector<std::unique_ptr<DeepSeekV3>> workers;                               // [dp * T + tp]
};

Deployment load_deployment(const Checkpoint& checkpoint, const ModelConfig& config, int dp_size, int tp_size,
                           CommOptions options = {}) {
  Deployment d{dp_size, tp_size, ThreadGroupCommunicator::create(dp_size * tp_size, options), {}, {}};
  for (int dp = 0; dp < dp_size; ++dp) {
    d.tensor.push_back(ThreadGroupCommunicator::create(tp_size, options));
    for (int tp = 0; tp < tp_size; ++tp) {
      const Shard shard{tp, tp_size, true, dp, dp_size};
      Communicator* tensor = tp_size > 1 ? d.tensor.back()[static_cast<size_t>(tp)].get() : nullptr;
      auto m = DeepSeekV3::load(checkpoint, config, ProgressStyle::kQuiet, {}, shard, tensor,
                                d.experts[static_cast<size_t>(dp * tp_size + tp)].get());
      EXPECT_TRUE(m.ok()) << m.status().to_string();
      if (m.ok()) d.workers.push_back(std::move(m).value());
    }
  }
  return d;
}

// Every worker at once, worker i running scripts[i / T]; one logit vector per worker.
std::vector<std::vector<float>> run_deployment(const Deployment& d, const std::vector<Script>& scripts) {
  std::vector<std::vector<float>> out(d.workers.size());
  std::vector<std::thread> threads;
  for (size_t w = 0; w < d.workers.size(); ++w) {
    threads.emplace_back([&, w] { out[w] = run_script(*d.workers[w], scripts[w / static_cast<size_t>(d.tp_size)]); });
  }
  for (std::thread& t : threads) t.join();
  return out;
}

using logit_compare::max_diff;
using logit_compare::same_bits;

// Routed rows over every MoE layer and expert of the whole deployment.
uint64_t total_expert_load(const Deployment& d) {
  uint64_t total = 0;
  for (const auto& w : d.workers) {
    for (const auto& layer : w->expert_load()) {
      for (uint64_t t : layer.tokens) total += t;
    }
  }
  return total;
}

int64_t moe_layers(const ModelConfig& c) {
  int64_t n = 0;
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) n += c.is_moe_layer(l) ? 1 : 0;
  return n;
}

class MoeDispatchTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    config_ = ModelConfig::from_dir(kModels / GetParam()).value();
    checkpoint_.emplace(Checkpoint::open(kModels / GetParam(), config_).value());
    auto whole = DeepSeekV3::load(*checkpoint_, config_, ProgressStyle::kQuiet);
    ASSERT_TRUE(whole.ok()) << whole.status().to_string();
    whole_ = std::move(whole).value();
  }

  // DP=2 x TP=tp_size: each DP rank's logits against the unsharded model on its own script,
  // the TP ranks of a DP rank bit for bit, and the expert load exact.
  void check(int tp_size, const std::vector<Script>& scripts) {
    const int dp_size = static_cast<int>(scripts.size());
    if (config_.n_routed_experts % (dp_size * tp_size) != 0 || config_.num_attention_heads % tp_size != 0) {
      GTEST_SKIP() << GetParam() << ": experts or heads do not divide by EP " << dp_size * tp_size;
    }
    Deployment d = load_deployment(*checkpoint_, config_, dp_size, tp_size);
    ASSERT_EQ(d.workers.size(), static_cast<size_t>(dp_size * tp_size));
    const auto got = run_deployment(d, scripts);
    int64_t rows = 0;
    for (int dp = 0; dp < dp_size; ++dp) {
      const Script& s = scripts[static_cast<size_t>(dp)];
      rows += script_rows(s);
      const std::vector<float>& first = got[static_cast<size_t>(dp * tp_size)];
      for (int tp = 1; tp < tp_size; ++tp) {
        EXPECT_TRUE(same_bits(got[static_cast<size_t>(dp * tp_size + tp)], first)) << "DP " << dp << " TP " << tp;
      }
      if (s.dummy) continue;
      const std::vector<float> want = run_script(*whole_, s);
      ASSERT_FALSE(want.empty());
      const double diff = max_diff(first, want);
      std::cout << GetParam() << " DP=" << dp_size << " x TP=" << tp_size << ", DP rank " << dp
                << ": largest |logit - unsharded| = " << diff << " over " << want.size() << " logits\n";
      EXPECT_LE(diff, 1e-3) << "DP rank " << dp;
    }
    EXPECT_EQ(total_expert_load(d),
              static_cast<uint64_t>(rows * config_.num_experts_per_tok * moe_layers(config_)));
  }

  ModelConfig config_;
  std::optional<Checkpoint> checkpoint_;
  std::unique_ptr<DeepSeekV3> whole_;
};

TEST_P(MoeDispatchTest, DifferentBatchesPerDataParallelRank) { check(1, {{0, false}, {1, false}}); }

TEST_P(MoeDispatchTest, IdleRankRunsDummyForwards) {
  check(1, {{0, false}, {0, true}});
  check(1, {{1, true}, {1, false}});
}

TEST_P(MoeDispatchTest, TensorTimesDataParallel) {
  check(2, {{0, false}, {1, false}});
  check(2, {{0, true}, {1, false}});
}

INSTANTIATE_TEST_SUITE_P(Sets, MoeDispatchTest, ::testing::Values("tiny-bf16", "micro-bf16"));

// A DP rank that never calls forward() (a dead peer) fails the others' forwards after the
// communicator's timeout instead of hanging them.
TEST(MoeDispatchFailureTest, MissingPeerIsAnErrorNotAHang) {
  const ModelConfig config = ModelConfig::from_dir(kModels / "tiny-bf16").value();
  const Checkpoint checkpoint = Checkpoint::open(kModels / "tiny-bf16", config).value();
  Deployment d = load_deployment(checkpoint, config, 2, 1, CommOptions{std::chrono::milliseconds(300)});
  ASSERT_EQ(d.workers.size(), 2u);
  LatentKvCache cache = LatentKvCache::create(config.num_hidden_layers, 2, 4, d.workers[0]->cache_row_dim()).value();
  const std::vector<int32_t> tokens = {1, 2}, table = {1};
  Result<Logits> r = d.workers[0]->forward(ForwardBatch{{{tokens, 0, table}}, LogitRows::kAll}, cache);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kUnavailable) << r.status().to_string();
}

TEST(MoeDispatchShardTest, ExpertShardSpansDataParallelRanks) {
  const Shard s{1, 2, true, 1, 2};
  EXPECT_TRUE(s.experts_across_dp());
  EXPECT_EQ(s.experts().rank, 3);
  EXPECT_EQ(s.experts().size, 4);
  EXPECT_TRUE(s.validate().ok());
  EXPECT_NE(s.describe().find("expert-parallel size 4, rank 3"), std::string::npos) << s.describe();
  EXPECT_EQ((Shard{1, 2, false}.experts().size), 2);  // TP: a slice of each expert
  EXPECT_FALSE((Shard{0, 1, false, 1, 2}.validate().ok()));  // DP shares experts only with EP
  EXPECT_FALSE((Shard{0, 1, true, 2, 2}.validate().ok()));
  ModelConfig config = ModelConfig::from_dir(kModels / "tiny-bf16").value();
  config.n_routed_experts = 6;  // divides by TP 2 but not by EP 2 x 2
  const Status st = DeepSeekV3::check_shard(config, Shard{0, 2, true, 0, 2});
  EXPECT_NE(st.message().find("n_routed_experts 6 does not divide by the expert-parallel size 4"), std::string::npos)
      << st.message();
  // A model whose experts span DP ranks needs the expert-parallel communicator.
  config = ModelConfig::from_dir(kModels / "tiny-bf16").value();
  EXPECT_EQ(DeepSeekV3::load_dummy(config, 0, {}, Shard{0, 1, true, 0, 2}).status().code(), Code::kInvalidArgument);
}

}  // namespace
}  // namespace k2
