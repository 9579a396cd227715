#include "enginecore/protocol/tp_nodes.h"

#include <gtest/gtest.h>

namespace k2 {
namespace {

EngineConfig config(int64_t tp, std::optional<int64_t> nnodes, std::optional<int64_t> node_rank) {
  EngineConfig c;
  c.tensor_parallel_size = tp;
  c.nnodes = nnodes;
  c.node_rank = node_rank;
  c.master_addr = "10.1.2.3";
  c.master_port = 4000;
  return c;
}

TEST(TpNodes, OneNodeHoldsTheWholeGroup) {
  auto t = tp_nodes_of(config(4, std::nullopt, std::nullopt));
  ASSERT_TRUE(t.ok());
  EXPECT_FALSE(t->spans_nodes());
  EXPECT_EQ(t->per_node, 4);
  EXPECT_EQ(t->node_of(3), 0);
}

TEST(TpNodes, RanksSplitEvenlyOverNodes) {
  auto t = tp_nodes_of(config(8, 2, 1));
  ASSERT_TRUE(t.ok()) << t.status().to_string();
  EXPECT_TRUE(t->spans_nodes());
  EXPECT_EQ(t->per_node, 4);
  EXPECT_EQ(t->first_rank(), 4);
  EXPECT_EQ(t->node_of(3), 0);
  EXPECT_EQ(t->node_of(4), 1);
  EXPECT_EQ(t->handshake_address(), "tcp://10.1.2.3:4000");
  EXPECT_EQ(t->store_address(), "tcp://10.1.2.3:4001");
}

TEST(TpNodes, BadLayoutsAreErrors) {
  EXPECT_EQ(tp_nodes_of(config(3, 2, 0)).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(tp_nodes_of(config(2, 2, 2)).status().code(), Code::kInvalidArgument);
  EngineConfig port = config(2, 2, 0);
  port.master_port = 65535;
  EXPECT_EQ(tp_nodes_of(port).status().code(), Code::kInvalidArgument);
  EngineConfig dp = config(2, 2, 0);
  dp.data_parallel_size = 2;
  EXPECT_EQ(tp_nodes_of(dp).status().code(), Code::kUnimplemented);
}

TEST(TpNodes, LocalAddressTowardLoopbackIsLoopback) {
  auto a = local_address_toward("127.0.0.1", 4000);
  ASSERT_TRUE(a.ok()) << a.status().to_string();
  EXPECT_EQ(*a, "127.0.0.1");
  EXPECT_FALSE(local_address_toward("no-such-host.invalid", 1).ok());
}

}  // namespace
}  // namespace k2
