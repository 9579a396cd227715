#include "frontend/openai/expert_metrics.h"

#include <gtest/gtest.h>

#include <mutex>

#include "enginecore/protocol/messages.h"

namespace k2::openai {
namespace {

// An engine whose stats the test sets.
class StatsEngine final : public EngineClient {
 public:
  Status add_request(GenerateRequest, OutputCallback) override { return unimplemented("stats only"); }
  void abort(const std::string&) override {}
  bool healthy() const override { return true; }
  EngineStats stats() const override {
    std::lock_guard lock(mu_);
    return stats_;
  }
  void set(EngineStats s) {
    std::lock_guard lock(mu_);
    stats_ = std::move(s);
  }

 private:
  mutable std::mutex mu_;
  EngineStats stats_;
};

protocol::ExpertLoad table(std::vector<uint32_t> layers, uint32_t experts, std::vector<uint64_t> tokens) {
  return protocol::ExpertLoad{experts, std::move(layers), std::move(tokens)};
}

// The value of one series in Prometheus text, or -1 when it is absent.
double value_of(const std::string& text, const std::string& series) {
  const size_t at = text.find("\n" + series + " ");
  if (at == std::string::npos) return -1;
  return std::stod(text.substr(at + series.size() + 2));
}

TEST(ExpertMetrics, SummaryPerExpertAndPerLayer) {
  // Layer 1: even (max/mean 1). Layer 3: 12 tokens, expert 2 takes 9 -> 9 / 3 = 3.
  // Layer 5: nothing routed yet (no imbalance series).
  auto totals = expert_load_after(nullptr, table({1, 3, 5}, 4, {2, 2, 2, 2, 1, 1, 9, 1, 0, 0, 0, 0}));
  ASSERT_TRUE(totals);
  const ExpertLoadSummary s = summarize_expert_load(*totals);
  EXPECT_EQ(s.per_expert, (std::vector<uint64_t>{3, 3, 11, 3}));
  ASSERT_EQ(s.layer_imbalance.size(), 2u);
  EXPECT_EQ(s.layer_imbalance[0], (std::pair<int64_t, double>{1, 1.0}));
  EXPECT_EQ(s.layer_imbalance[1], (std::pair<int64_t, double>{3, 3.0}));
  EXPECT_DOUBLE_EQ(s.max_imbalance, 3.0);
  // A malformed table summarizes to nothing rather than reading out of bounds.
  ExpertLoadTotals bad{4, {1}, {1, 2}};
  EXPECT_TRUE(summarize_expert_load(bad).per_expert.empty());
}

TEST(ExpertMetrics, TablesPersistUntilReplacedAndDataParallelRanksSum) {
  auto first = expert_load_after(nullptr, table({0}, 2, {1, 2}));
  // Stats without a table keep the last one (the engine sends totals only when they change).
  auto same = expert_load_after(first, std::nullopt);
  EXPECT_EQ(same, first);
  auto next = expert_load_after(first, table({0}, 2, {5, 2}));
  EXPECT_EQ(next->tokens, (std::vector<uint64_t>{5, 2}));
  auto other_rank = expert_load_after(nullptr, table({0}, 2, {1, 1}));
  EXPECT_EQ(sum_expert_load(next, other_rank)->tokens, (std::vector<uint64_t>{6, 3}));
  EXPECT_EQ(sum_expert_load(nullptr, other_rank), other_rank);
  EXPECT_EQ(sum_expert_load(next, nullptr), next);
  auto misshapen = expert_load_after(nullptr, table({0, 1}, 2, {1, 1, 1, 1}));
  EXPECT_EQ(sum_expert_load(next, misshapen), next);
  EXPECT_EQ(next->tokens, (std::vector<uint64_t>{5, 2}));  // the inputs are never modified
}

TEST(ExpertMetrics, ScrapeRendersBoundedSeries) {
  http::MetricsRegistry registry;
  auto engine = std::make_shared<StatsEngine>();
  add_expert_load_metrics(registry, "kimi-k2", engine);
  std::string text = registry.render();
  EXPECT_EQ(text.find("k2:expert_routed_tokens_total{"), std::string::npos) << "no series before any report";

  EngineStats stats;
  stats.expert_load = expert_load_after(nullptr, table({1, 3, 5}, 4, {2, 2, 2, 2, 1, 1, 9, 1, 0, 0, 0, 0}));
  engine->set(stats);
  text = registry.render();
  EXPECT_EQ(value_of(text, "k2:expert_routed_tokens_total{model_name=\"kimi-k2\",expert=\"2\"}"), 11) << text;
  EXPECT_EQ(value_of(text, "k2:expert_routed_tokens_total{model_name=\"kimi-k2\",expert=\"0\"}"), 3) << text;
  EXPECT_EQ(value_of(text, "k2:expert_load_imbalance{model_name=\"kimi-k2\",layer=\"3\"}"), 3) << text;
  EXPECT_EQ(value_of(text, "k2:expert_load_imbalance{model_name=\"kimi-k2\",layer=\"1\"}"), 1) << text;
  EXPECT_EQ(text.find("layer=\"5\""), std::string::npos) << "a layer with no tokens has no ratio";
  EXPECT_EQ(value_of(text, "k2:expert_load_max_imbalance{model_name=\"kimi-k2\"}"), 3) << text;
  EXPECT_NE(text.find("# TYPE k2:expert_routed_tokens_total counter"), std::string::npos);
  EXPECT_NE(text.find("# TYPE k2:expert_load_imbalance gauge"), std::string::npos);

  // Kimi-K2's shape stays at experts + layers + 1 series however many tokens flow.
  std::vector<uint32_t> layers;
  for (uint32_t l = 1; l <= 60; ++l) layers.push_back(l);
  stats.expert_load = expert_load_after(nullptr, table(layers, 384, std::vector<uint64_t>(60 * 384, 7)));
  http::MetricsRegistry kimi;
  auto kimi_engine = std::make_shared<StatsEngine>();
  kimi_engine->set(stats);
  add_expert_load_metrics(kimi, "kimi-k2", kimi_engine);
  text = kimi.render();
  size_t series = 0;
  for (size_t at = text.find("\nk2:expert_"); at != std::string::npos; at = text.find("\nk2:expert_", at + 1)) ++series;
  EXPECT_EQ(series, 384u + 60u + 1u);
  EXPECT_EQ(value_of(text, "k2:expert_routed_tokens_total{model_name=\"kimi-k2\",expert=\"383\"}"), 420);
}

}  // namespace
}  // namespace k2::openai
