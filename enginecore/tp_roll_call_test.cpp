#include "enginecore/tp_roll_call.h"

#include <gtest/gtest.h>

#include <cstdlib>

#include "enginecore/protocol/dp_transport.h"

namespace k2::engine {
namespace {

using namespace std::chrono_literals;
using Clock = TpRollCall::Clock;

TpNodes nodes(int64_t tp, int64_t nnodes) {
  TpNodes t;
  t.tp = tp;
  t.nnodes = nnodes;
  t.per_node = tp / nnodes;
  t.master_addr = "10.0.0.1";
  t.master_port = 29501;
  return t;
}

TEST(TpRollCall, NamesTheNodesAndRanksStillMissing) {
  const auto t0 = Clock::now();
  TpRollCall call(nodes(6, 3), 60s, t0);
  call.joined(0);
  call.joined(1);
  call.joined(3);
  EXPECT_FALSE(call.complete());
  EXPECT_EQ(call.missing(), "node 1 (worker rank 2), node 2 (worker ranks 4, 5)");
  call.joined(2);
  call.joined(4);
  call.joined(5);
  call.joined(99);  // not a rank of the group: ignored
  EXPECT_TRUE(call.complete());
  EXPECT_EQ(call.missing(), "");
}

TEST(TpRollCall, ReportsProgressEveryTenSeconds) {
  const auto t0 = Clock::now();
  TpRollCall call(nodes(2, 2), 600s, t0);
  call.joined(0);
  EXPECT_FALSE(call.progress(t0 + 9s));
  auto line = call.progress(t0 + 10s);
  ASSERT_TRUE(line);
  EXPECT_NE(line->find("still waiting for node 1 (worker rank 1) after 10 s"), std::string::npos) << *line;
  EXPECT_NE(line->find("600 s"), std::string::npos) << *line;
  EXPECT_FALSE(call.progress(t0 + 15s));
  EXPECT_TRUE(call.progress(t0 + 20s));
  call.joined(1);
  EXPECT_FALSE(call.progress(t0 + 40s));  // nobody missing: nothing to say
}

TEST(TpRollCall, FailsNamingTheMissingNodeOnceTheTimeoutPassed) {
  const auto t0 = Clock::now();
  TpRollCall call(nodes(4, 2), 12s, t0);
  call.joined(0);
  call.joined(1);
  EXPECT_TRUE(call.check(t0 + 11s).ok());
  Status late = call.check(t0 + 12s);
  EXPECT_EQ(late.code(), Code::kUnavailable);
  EXPECT_NE(late.message().find("node 1 (worker ranks 2, 3) never joined"), std::string::npos) << late.to_string();
  EXPECT_NE(late.message().find("10.0.0.1:29501"), std::string::npos) << late.to_string();
  call.joined(2);
  call.joined(3);
  EXPECT_TRUE(call.check(t0 + 100s).ok());
}

// The roll call's timeout: vLLM's variable, its default when unset or not a positive integer.
TEST(TpRollCall, TimeoutIsVllmEngineReadyTimeout) {
  ::unsetenv("VLLM_ENGINE_READY_TIMEOUT_S");
  EXPECT_EQ(protocol::engine_ready_timeout(), 600s);
  ::setenv("VLLM_ENGINE_READY_TIMEOUT_S", "12", 1);
  EXPECT_EQ(protocol::engine_ready_timeout(), 12s);
  for (const char* bad : {"0", "-5", "12s", ""}) {
    ::setenv("VLLM_ENGINE_READY_TIMEOUT_S", bad, 1);
    EXPECT_EQ(protocol::engine_ready_timeout(), 600s) << bad;
  }
  ::unsetenv("VLLM_ENGINE_READY_TIMEOUT_S");
}

}  // namespace
}  // namespace k2::engine
