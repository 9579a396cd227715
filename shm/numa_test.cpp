#include "shm/numa.h"

#include <gtest/gtest.h>
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

namespace k2 {
namespace {

TEST(Numa, CpuListsParseAndBadOnesNameThePiece) {
  auto cpus = parse_cpu_list("0-3,8,10-11,2");
  ASSERT_TRUE(cpus.ok()) << cpus.status().to_string();
  EXPECT_EQ(*cpus, (std::vector<int>{0, 1, 2, 3, 8, 10, 11}));
  for (const char* bad : {"", "1,,2", "3-1", "a", "1-", "-1", "99999"}) {
    auto r = parse_cpu_list(bad);
    EXPECT_FALSE(r.ok()) << bad;
  }
  EXPECT_NE(parse_cpu_list("0,x").status().message().find("'x'"), std::string::npos);
}

TEST(Numa, ExplicitListsGoToTheirRank) {
  auto first = plan_numa_placement("0|1-2", 0);
  auto second = plan_numa_placement("0|1-2", 1);
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(first->cpus, std::vector<int>{0});
  EXPECT_EQ(second->cpus, (std::vector<int>{1, 2}));
  EXPECT_FALSE(plan_numa_placement("0|1-2", 2).ok());  // a rank without a list is an error
  EXPECT_FALSE(plan_numa_placement("0", -1).ok());
  auto none = plan_numa_placement("nobind", 0);
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->bound());
  EXPECT_EQ(describe(*none), "unbound");
  EXPECT_EQ(describe(NumaPlacement{1, {0, 1, 2, 5, 7, 8}}), "node 1, cpus 0-2,5,7-8");
}

TEST(Numa, AutoTakesTheRanksNodeAmongTheAllowedCpus) {
  const int nodes = numa_node_count();
  ASSERT_GE(nodes, 1);
  for (int rank = 0; rank < 3; ++rank) {
    auto p = plan_numa_placement("auto", rank);
    ASSERT_TRUE(p.ok());
    if (!p->bound()) GTEST_SKIP() << "no NUMA support on this kernel";
    EXPECT_EQ(p->node, rank % nodes);
    cpu_set_t allowed;
    ASSERT_EQ(sched_getaffinity(0, sizeof allowed, &allowed), 0);
    for (int c : p->cpus) EXPECT_TRUE(CPU_ISSET(c, &allowed)) << c;
  }
  // With one node every allowed CPU is on it.
  if (nodes == 1) {
    cpu_set_t allowed;
    ASSERT_EQ(sched_getaffinity(0, sizeof allowed, &allowed), 0);
    EXPECT_EQ(static_cast<int>(plan_numa_placement("auto", 0)->cpus.size()), CPU_COUNT(&allowed));
  }
}

TEST(Numa, RanksSharingANodeSplitItsCpus) {
  auto whole = plan_numa_placement("auto", 0, 1);
  ASSERT_TRUE(whole.ok());
  if (!whole->bound() || numa_node_count() != 1) GTEST_SKIP() << "needs NUMA support and one node";
  const std::vector<int>& all = whole->cpus;
  if (all.size() < 2) GTEST_SKIP() << "needs two CPUs";
  auto r0 = plan_numa_placement("auto", 0, 2);
  auto r1 = plan_numa_placement("auto", 1, 2);
  ASSERT_TRUE(r0.ok() && r1.ok());
  std::vector<int> joined = r0->cpus;
  joined.insert(joined.end(), r1->cpus.begin(), r1->cpus.end());
  EXPECT_EQ(joined, all);  // disjoint halves covering the node, in order
  EXPECT_FALSE(r0->cpus.empty());
  EXPECT_FALSE(r1->cpus.empty());
  // More ranks than CPUs: every rank gets them all rather than none.
  auto crowded = plan_numa_placement("auto", 0, static_cast<int>(all.size()) + 1);
  ASSERT_TRUE(crowded.ok());
  EXPECT_EQ(crowded->cpus, all);
  EXPECT_FALSE(plan_numa_placement("auto", 2, 2).ok());
}

// In a child, so the test process keeps its affinity.
TEST(Numa, ApplyPinsTheProcess) {
  cpu_set_t allowed;
  ASSERT_EQ(sched_getaffinity(0, sizeof allowed, &allowed), 0);
  int cpu = 0;
  while (!CPU_ISSET(cpu, &allowed)) ++cpu;
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    if (!apply_numa_placement(NumaPlacement{-1, {cpu}}).ok()) _exit(2);
    cpu_set_t now;
    if (sched_getaffinity(0, sizeof now, &now) != 0) _exit(3);
    _exit(CPU_COUNT(&now) == 1 && CPU_ISSET(cpu, &now) ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

}  // namespace
}  // namespace k2
