#include "workers/models/deepseek_v3.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

namespace k2 {
namespace {

const std::filesystem::path kMicro = std::filesystem::path(K2_TEST_DATA_DIR) / "models" / "micro-bf16";

class DeepSeekV3Test : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ModelConfig config = ModelConfig::from_dir(kMicro).value();
    Checkpoint checkpoint = Checkpoint::open(kMicro, config).value();
    Result<std::unique_ptr<DeepSeekV3>> m = DeepSeekV3::load(checkpoint, config, ProgressStyle::kQuiet);
    ASSERT_TRUE(m.ok()) << m.status().to_string();
    model_ = std::move(m).value().release();
  }
  static void TearDownTestSuite() { delete model_; }

  LatentKvCache make_cache(int64_t blocks = 16) const {
    return LatentKvCache::create(model_->config().num_hidden_layers, blocks, 4, model_->cache_row_dim()).value();
  }
  std::vector<int32_t> prompt(int64_t n, int64_t salt) const {
    std::vector<int32_t> p;
    for (int64_t i = 0; i < n; ++i) p.push_back(static_cast<int32_t>((i * 37 + salt * 11) % (model_->config().vocab_size - 256)));
    return p;
  }
  Logits run(LatentKvCache& cache, std::vector<SequenceChunk> seqs, LogitRows rows = LogitRows::kAll,
             ForwardTrace* trace = nullptr) const {
    Result<Logits> l = model_->forward(ForwardBatch{std::move(seqs), rows}, cache, trace);
    EXPECT_TRUE(l.ok()) << l.status().to_string();
    return l.ok() ? std::move(l).value() : Logits{};
  }
  static double max_diff(const float* a, const float* b, int64_t n) {
    double d = 0;
    for (int64_t i = 0; i < n; ++i) d = std::max(d, std::fabs(double(a[i]) - b[i]));
    return d;
  }

  static DeepSeekV3* model_;
};
DeepSeekV3* DeepSeekV3Test::model_ = nullptr;

TEST_F(DeepSeekV3Test, VarlenBatchMatchesSingleSequences) {
  const auto a = prompt(7, 1), b = prompt(3, 2);
  const int64_t v = model_->config().vocab_size;
  LatentKvCache c1 = make_cache(), c2 = make_cache();
  const std::vector<int32_t> ta = {5, 2}, tb = {9}, tc = {0, 7};
  const Logits single = run(c1, {{a, 0, ta}});
  const Logits batch = run(c2, {{b, 0, tb}, {a, 0, tc}});
  ASSERT_EQ(batch.rows, 10);
  EXPECT_LE(max_diff(single.data.data(), batch.row(3), 7 * v), 1e-6);
  const Logits last = run(c2, {{b, 0, tb}, {a, 0, tc}}, LogitRows::kLastPerSequence);
  ASSERT_EQ(last.rows, 2);
  EXPECT_LE(max_diff(last.row(1), single.row(6), v), 1e-6);
}

// A sequence asking for all its rows (prompt logprobs) next to one that needs only its last.
TEST_F(DeepSeekV3Test, PerSequenceAllLogits) {
  const auto a = prompt(7, 1), b = prompt(3, 2);
  const int64_t v = model_->config().vocab_size;
  LatentKvCache c1 = make_cache(), c2 = make_cache();
  const std::vector<int32_t> ta = {5, 2}, tb = {9};
  const Logits all = run(c1, {{b, 0, tb}, {a, 0, ta}});
  SequenceChunk sa{a, 0, ta};
  sa.all_logits = true;
  const Logits mixed = run(c2, {{b, 0, tb}, sa}, LogitRows::kLastPerSequence);
  ASSERT_EQ(mixed.rows, 1 + 7);
  EXPECT_LE(max_diff(mixed.row(0), all.row(2), v), 1e-6);      // b's last row
  EXPECT_LE(max_diff(mixed.row(1), all.row(3), 7 * v), 1e-6);  // every row of a
}

TEST_F(DeepSeekV3Test, ChunkedPrefillAndAbsorbedDecodeMatchOneShotPrefill) {
  const auto a = prompt(9, 3);
  const int64_t v = model_->config().vocab_size;
  const std::vector<int32_t> table = {6, 1, 11};
  LatentKvCache full_cache = make_cache(), cache = make_cache();
  const Logits full = run(full_cache, {{a, 0, table}});
  const std::span<const int32_t> s(a);
  const Logits c0 = run(cache, {{s.subspan(0, 3), 0, table}});
  const Logits c1 = run(cache, {{s.subspan(3, 1), 3, table}});  // one token: absorbed form
  const Logits c2 = run(cache, {{s.subspan(4, 4), 4, table}});  // continues from the cache
  const Logits c3 = run(cache, {{s.subspan(8, 1), 8, table}});
  EXPECT_LE(max_diff(c0.data.data(), full.row(0), 3 * v), 1e-6);
  EXPECT_LE(max_diff(c1.data.data(), full.row(3), v), 1e-4);
  EXPECT_LE(max_diff(c2.data.data(), full.row(4), 4 * v), 1e-4);
  EXPECT_LE(max_diff(c3.data.data(), full.row(8), v), 1e-4);
  EXPECT_GT(max_diff(c3.data.data(), full.row(7), v), 1e-2);  // the rows do differ
}

TEST_F(DeepSeekV3Test, TraceHasEveryLayerAndRouter) {
  const auto a = prompt(5, 4);
  LatentKvCache cache = make_cache();
  const std::vector<int32_t> table = {0, 1};
  ForwardTrace trace;
  run(cache, {{a, 0, table}}, LogitRows::kLastPerSequence, &trace);
  const ModelConfig& c = model_->config();
  EXPECT_EQ(static_cast<int64_t>(trace.hidden.size()), c.num_hidden_layers);
  EXPECT_EQ(static_cast<int64_t>(trace.embed.size()), 5 * c.hidden_size);
  EXPECT_EQ(static_cast<int64_t>(trace.final_norm.size()), 5 * c.hidden_size);
  EXPECT_EQ(static_cast<int64_t>(trace.routers.size()), c.num_hidden_layers - c.first_k_dense_replace);
  for (const RouterTrace& r : trace.routers) {
    ASSERT_EQ(static_cast<int64_t>(r.idx.size()), 5 * c.num_experts_per_tok);
    for (int32_t e : r.idx) EXPECT_TRUE(e >= 0 && e < c.n_routed_experts);
    float sum = 0;
    for (int64_t j = 0; j < c.num_experts_per_tok; ++j) sum += r.weights[j];
    EXPECT_NEAR(sum, c.routed_scaling_factor, 1e-4);
  }
}

TEST_F(DeepSeekV3Test, BadBatchesAreErrors) {
  LatentKvCache cache = make_cache(4);
  const std::vector<int32_t> bad_token = {static_cast<int32_t>(model_->config().vocab_size)};
  const std::vector<int32_t> ok_tokens = prompt(6, 5), table1 = {0}, table_bad = {0, 4}, table_ok = {0, 1};
  EXPECT_FALSE(model_->forward({{{bad_token, 0, table1}}}, cache).ok());
  EXPECT_FALSE(model_->forward({{{ok_tokens, 0, table1}}}, cache).ok());     // 6 tokens, 4 slots
  EXPECT_FALSE(model_->forward({{{ok_tokens, 0, table_bad}}}, cache).ok());  // block 4 of 4
  EXPECT_FALSE(model_->forward({{{std::span<const int32_t>(), 0, table1}}}, cache).ok());
  EXPECT_TRUE(model_->forward({{{ok_tokens, 0, table_ok}}}, cache).ok());
  LatentKvCache wrong = LatentKvCache::create(1, 4, 4, model_->cache_row_dim()).value();
  EXPECT_FALSE(model_->forward({{{ok_tokens, 0, table_ok}}}, wrong).ok());
}

}  // namespace
}  // namespace k2

namespace k2 {
namespace {

// --load-format dummy: only config.json is read; the model runs and is deterministic.
TEST(DeepSeekV3Dummy, RunsFromTheConfigAlone) {
  const std::filesystem::path dir = std::filesystem::path(::testing::TempDir()) / "k2-dummy-config";
  std::filesystem::create_directories(dir);
  std::filesystem::copy_file(std::filesystem::path(K2_TEST_DATA_DIR) / "models" / "tiny-bf16" / "config.json",
                             dir / "config.json", std::filesystem::copy_options::overwrite_existing);
  ModelConfig config = ModelConfig::from_dir(dir).value();
  auto a = DeepSeekV3::load_dummy(config, 7);
  auto b = DeepSeekV3::load_dummy(config, 7);
  ASSERT_TRUE(a.ok()) << a.status().to_string();
  ASSERT_TRUE(b.ok());
  auto run = [&](const DeepSeekV3& m) {
    LatentKvCache cache = LatentKvCache::create(config.num_hidden_layers, 4, 16, m.cache_row_dim()).value();
    const std::vector<int32_t> tokens = {1, 2, 3, 4, 5}, blocks = {0};
    return m.forward(ForwardBatch{{{tokens, 0, blocks}}, LogitRows::kLastPerSequence}, cache).value();
  };
  const Logits la = run(**a), lb = run(**b);
  ASSERT_EQ(la.vocab, config.vocab_size);
  EXPECT_EQ(la.data, lb.data);
  float spread = 0;
  for (float v : la.data) {
    ASSERT_TRUE(std::isfinite(v));
    spread = std::max(spread, std::fabs(v - la.data[0]));
  }
  EXPECT_GT(spread, 1e-3f) << "random weights give varied logits";
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace k2
