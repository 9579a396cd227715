#include "enginecore/protocol/dp_lb_mode.h"

#include <gtest/gtest.h>

namespace k2 {
namespace {

Result<DpLayout> layout_of(std::vector<std::string> args) {
  args.insert(args.begin(), "m");
  K2_ASSIGN_OR_RETURN(EngineConfig cfg, parse_engine_config(args));
  return dp_layout(cfg);
}

void expect_layout(const std::vector<std::string>& args, DpLbMode mode, int64_t first, int64_t behind) {
  auto l = layout_of(args);
  ASSERT_TRUE(l.ok()) << l.status().to_string();
  EXPECT_EQ(l->mode, mode) << dp_lb_mode_name(l->mode);
  EXPECT_EQ(l->first_rank, first);
  EXPECT_EQ(l->ranks_behind, behind);
}

void expect_refused(const std::vector<std::string>& args, const std::string& says) {
  auto l = layout_of(args);
  ASSERT_FALSE(l.ok()) << dp_lb_mode_name(l->mode);
  EXPECT_NE(l.status().message().find(says), std::string::npos) << l.status().message();
}

TEST(DpLbMode, NoDataParallelism) { expect_layout({}, DpLbMode::kNone, 0, 1); }

TEST(DpLbMode, InternalBalancesOverEveryRank) {
  expect_layout({"-dp", "4"}, DpLbMode::kInternal, 0, 4);
  expect_layout({"-dp", "4", "-dpl", "2"}, DpLbMode::kInternal, 0, 4);  // the others join --headless
}

TEST(DpLbMode, StartRankOnANodeWithAnApiServerMeansHybrid) {
  expect_layout({"-dp", "4", "-dpl", "2", "--data-parallel-start-rank", "2"}, DpLbMode::kHybrid, 2, 2);
  // vLLM >= 0.28: `is not None`, so start rank 0 flips the head into hybrid too.
  expect_layout({"-dp", "4", "-dpl", "2", "--data-parallel-start-rank", "0"}, DpLbMode::kHybrid, 0, 2);
  expect_layout({"-dp", "4", "-dpl", "2", "--data-parallel-hybrid-lb"}, DpLbMode::kHybrid, 0, 2);
  expect_layout({"-dp", "6", "-dpl", "3", "-dpr", "3", "--data-parallel-hybrid-lb"}, DpLbMode::kHybrid, 3, 3);
}

TEST(DpLbMode, HybridWithOneLocalRankIsExternal) {
  expect_layout({"-dp", "4", "-dpl", "1", "--data-parallel-start-rank", "3"}, DpLbMode::kExternal, 3, 1);
  expect_layout({"-dp", "4", "--data-parallel-rank", "2"}, DpLbMode::kExternal, 2, 1);
  expect_layout({"-dp", "4", "--data-parallel-rank", "2", "-dpl", "1"}, DpLbMode::kExternal, 2, 1);
}

TEST(DpLbMode, HybridWithEveryRankLocalIsInternal) {
  expect_layout({"-dp", "2", "--data-parallel-start-rank", "0"}, DpLbMode::kInternal, 0, 2);
  expect_layout({"-dp", "2", "-dpl", "2", "--data-parallel-hybrid-lb"}, DpLbMode::kInternal, 0, 2);
  expect_refused({"-dp", "2", "--data-parallel-start-rank", "1"}, "with every rank on this node");
}

TEST(DpLbMode, HeadlessNodesJoinAnInternalMaster) {
  expect_layout({"-dp", "4", "-dpl", "2", "--data-parallel-start-rank", "2", "--headless"}, DpLbMode::kInternal, 2, 2);
  expect_refused({"-dp", "4", "-dpl", "2", "--data-parallel-start-rank", "2", "--headless", "--data-parallel-hybrid-lb"},
                 "drop --headless");
}

TEST(DpLbMode, RefusesContradictions) {
  expect_refused({"-dp", "4", "-dpl", "2", "-dpr", "3"}, "start + --data-parallel-size-local <= --data-parallel-size");
  expect_refused({"-dp", "4", "-dpl", "0", "-dpr", "0"}, "--data-parallel-size-local >= 1");
  expect_refused({"-dp", "4", "-dpl", "1", "-dpr", "4"}, "outside [0, --data-parallel-size 4)");
  expect_refused({"-dp", "4", "--data-parallel-rank", "4"}, "outside");
  expect_refused({"-dp", "4", "--data-parallel-rank", "1", "-dpl", "2"}, "needs --data-parallel-size-local 1");
  expect_refused({"-dp", "4", "--data-parallel-rank", "1", "--headless"}, "exclude each other");
  expect_refused({"-dp", "4", "--data-parallel-rank", "1", "--data-parallel-hybrid-lb"}, "exclude each other");
  expect_refused({"-dp", "4", "--data-parallel-rank", "1", "-dpr", "2"}, "disagree");
  expect_refused({"-dp", "4", "-dpl", "5"}, "must be in [0, --data-parallel-size]");
}

TEST(DpLbMode, DescribesTheModeInOneLine) {
  EXPECT_EQ(describe(DpLayout{DpLbMode::kHybrid, 4, 2, 2}), "hybrid load balancing: ranks 2..3 of 4 behind this API server");
  EXPECT_EQ(describe(DpLayout{DpLbMode::kExternal, 4, 1, 1}), "external load balancing: rank 1 of 4 behind this API server");
  EXPECT_EQ(describe(DpLayout{}), "no data parallelism");
}

TEST(DpLbMode, GlobalRanksStartAtTheNodesFirst) {
  const DpLayout hybrid{DpLbMode::kHybrid, 4, 2, 2};
  EXPECT_EQ(hybrid.global_rank(0), 2u);
  EXPECT_EQ(hybrid.global_rank(1), 3u);
  EXPECT_TRUE(hybrid.api_server_per_node());
  EXPECT_FALSE((DpLayout{DpLbMode::kInternal, 4, 0, 4}).api_server_per_node());
}

}  // namespace
}  // namespace k2
