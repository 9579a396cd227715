#include "enginecore/client_router.h"

#include <gtest/gtest.h>

namespace k2::engine {
namespace {

protocol::AddRequest add(const std::string& id, uint32_t claimed_client = 0) {
  protocol::AddRequest a;
  a.request_id = id;
  a.client_index = claimed_client;
  return a;
}

protocol::RequestOutput output(const std::string& id, bool finished) {
  protocol::RequestOutput o;
  o.request_id = id;
  o.new_token_ids = {7};
  o.finish_reason = finished ? protocol::FinishReason::kStop : protocol::FinishReason::kNone;
  return o;
}

TEST(ClientRouter, OneClientLeavesTheWireUntouched) {
  ClientRouter router(1);
  auto a = add("req-1", 5);
  router.on_add(0, a);
  EXPECT_EQ(a.request_id, "req-1");
  EXPECT_EQ(a.client_index, 0u);
  protocol::EngineOutputs outs;
  outs.outputs = {output("req-1", true)};
  auto split = router.split(outs);
  ASSERT_EQ(split.size(), 1u);
  ASSERT_EQ(split[0].outputs.size(), 1u);
  EXPECT_EQ(split[0].outputs[0].request_id, "req-1");
  EXPECT_EQ(split[0].finished_requests, std::vector<std::string>{"req-1"});
  EXPECT_EQ(router.num_tracked_requests(), 0u);
}

TEST(ClientRouter, SameIdFromTwoClientsStaysTwoRequests) {
  ClientRouter router(2);
  auto a0 = add("chatcmpl-x");
  auto a1 = add("chatcmpl-x", /*claimed_client=*/0);  // the socket, not the claim, decides
  router.on_add(0, a0);
  router.on_add(1, a1);
  EXPECT_NE(a0.request_id, a1.request_id);
  EXPECT_EQ(a1.client_index, 1u);
  EXPECT_EQ(router.num_tracked_requests(), 2u);

  protocol::EngineOutputs outs;
  outs.engine_index = 3;
  outs.timestamp = 12.5;
  outs.scheduler_stats = protocol::SchedulerStats{};
  outs.scheduler_stats->num_waiting = 4;
  outs.outputs = {output(a1.request_id, false), output(a0.request_id, true)};
  auto split = router.split(outs);
  ASSERT_EQ(split.size(), 2u);
  for (const auto& s : split) {
    EXPECT_EQ(s.engine_index, 3u);
    EXPECT_EQ(s.timestamp, 12.5);
    ASSERT_TRUE(s.scheduler_stats.has_value());
    EXPECT_EQ(s.scheduler_stats->num_waiting, 4u);
    ASSERT_EQ(s.outputs.size(), 1u);
    EXPECT_EQ(s.outputs[0].request_id, "chatcmpl-x");
  }
  EXPECT_EQ(split[0].outputs[0].finish_reason, protocol::FinishReason::kStop);
  EXPECT_EQ(split[0].finished_requests, std::vector<std::string>{"chatcmpl-x"});
  EXPECT_EQ(split[1].outputs[0].finish_reason, protocol::FinishReason::kNone);
  EXPECT_TRUE(split[1].finished_requests.empty());
  EXPECT_EQ(router.num_tracked_requests(), 1u);  // client 0's finished one is forgotten
}

TEST(ClientRouter, StatsReachAClientWithoutOutputs) {
  ClientRouter router(3);
  auto a = add("r");
  router.on_add(2, a);
  protocol::EngineOutputs outs;
  outs.scheduler_stats = protocol::SchedulerStats{};
  outs.scheduler_stats->num_running = 1;
  outs.outputs = {output(a.request_id, false)};
  auto split = router.split(outs);
  ASSERT_EQ(split.size(), 3u);
  EXPECT_TRUE(split[0].outputs.empty());
  EXPECT_TRUE(split[1].outputs.empty());
  ASSERT_EQ(split[2].outputs.size(), 1u);
  EXPECT_EQ(split[2].outputs[0].request_id, "r");
  for (const auto& s : split) EXPECT_EQ(s.scheduler_stats->num_running, 1u);
}

TEST(ClientRouter, AbortsAreTranslatedPerClient) {
  ClientRouter router(2);
  auto a = add("r");
  router.on_add(1, a);
  protocol::AbortRequests abort{{"r"}};
  router.on_abort(1, abort);
  EXPECT_EQ(abort.request_ids, std::vector<std::string>{a.request_id});
  protocol::AbortRequests other{{"r"}};
  router.on_abort(0, other);
  EXPECT_NE(other.request_ids[0], a.request_id);  // client 0 cannot abort client 1's request
}

TEST(ClientRouter, UtilityAnswerGoesBackToItsCaller) {
  ClientRouter router(2);
  protocol::Utility c0{0, 42, "reset_prefix_cache", "{}"};
  protocol::Utility c1{0, 42, "reset_prefix_cache", "{}"};
  router.on_utility(0, c0);
  router.on_utility(1, c1);
  EXPECT_NE(c0.call_id, c1.call_id);
  EXPECT_EQ(c1.client_index, 1u);
  protocol::EngineOutputs outs;
  outs.utility_output = protocol::UtilityOutput{c1.call_id, std::nullopt, "true"};
  auto split = router.split(outs);
  EXPECT_FALSE(split[0].utility_output.has_value());
  ASSERT_TRUE(split[1].utility_output.has_value());
  EXPECT_EQ(split[1].utility_output->call_id, 42u);
  outs.utility_output = protocol::UtilityOutput{c0.call_id, std::nullopt, "true"};
  split = router.split(outs);
  ASSERT_TRUE(split[0].utility_output.has_value());
  EXPECT_EQ(split[0].utility_output->call_id, 42u);
  EXPECT_FALSE(split[1].utility_output.has_value());
}

TEST(ClientRouter, ClientIndexOutOfRangeIsClamped) {
  ClientRouter router(2);
  auto a = add("r");
  router.on_add(9, a);
  EXPECT_EQ(a.client_index, 1u);
  protocol::EngineOutputs outs;
  outs.outputs = {output(a.request_id, true)};
  auto split = router.split(outs);
  ASSERT_EQ(split[1].outputs.size(), 1u);
  EXPECT_EQ(split[1].outputs[0].request_id, "r");
}

TEST(ClientRouter, UnknownOutputGoesToTheFirstClient) {
  ClientRouter router(2);
  protocol::EngineOutputs outs;
  outs.outputs = {output("never-added", true)};
  auto split = router.split(outs);
  ASSERT_EQ(split[0].outputs.size(), 1u);
  EXPECT_EQ(split[0].outputs[0].request_id, "never-added");
}

}  // namespace
}  // namespace k2::engine
