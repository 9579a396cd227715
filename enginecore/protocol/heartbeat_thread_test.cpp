#include "enginecore/protocol/heartbeat_thread.h"

#include <gtest/gtest.h>

#include <chrono>

#include "enginecore/protocol/zmq_channel.h"

namespace k2::protocol {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

TEST(HeartbeatThread, BeatsCarryTheRankEverySecond) {
  zmq::context_t context(1);
  auto security = ControlPlaneSecurity::load("");
  ASSERT_TRUE(security.ok());
  auto pull = make_socket(context, zmq::socket_type::pull);
  ASSERT_TRUE(pull.ok());
  auto endpoint = bind_any_port(*pull, "127.0.0.1");
  ASSERT_TRUE(endpoint.ok()) << endpoint.status().to_string();
  const auto t0 = Clock::now();
  int beats = 0;
  {
    HeartbeatThread beat(context, **security, *endpoint, DpControl{DpControlKind::kHeartbeat, 7, 0, 0, false, -1},
                         "test");
    while (beats < 2 && Clock::now() - t0 < 5s) {
      auto got = receive_valid(*pull, 200ms, /*routed=*/false);
      ASSERT_TRUE(got.ok()) << got.status().to_string();
      if (!*got) continue;
      const auto* control = std::get_if<DpControl>(&(*got)->message);
      ASSERT_NE(control, nullptr);
      EXPECT_EQ(control->kind, DpControlKind::kHeartbeat);
      EXPECT_EQ(control->rank, 7u);
      ++beats;
    }
  }
  EXPECT_EQ(beats, 2);
  EXPECT_GE(Clock::now() - t0, kDpHeartbeatInterval - 100ms);  // the second one came a period later
}

// Nobody listens: the queue fills, and stopping must still return at once.
TEST(HeartbeatThread, StopsPromptlyWithoutAPeer) {
  zmq::context_t context(1);
  auto security = ControlPlaneSecurity::load("");
  ASSERT_TRUE(security.ok());
  auto beat = std::make_unique<HeartbeatThread>(context, **security, "tcp://127.0.0.1:9",
                                                DpControl{DpControlKind::kHeartbeat, 1, 0, 0, false, -1}, "test");
  std::this_thread::sleep_for(6 * kDpHeartbeatInterval);  // past the send high-water mark
  const auto t0 = Clock::now();
  beat.reset();
  EXPECT_LT(Clock::now() - t0, 1s);
}

}  // namespace
}  // namespace k2::protocol
