#include "enginecore/coordinator.h"

#include <gtest/gtest.h>

#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "enginecore/dp_wave.h"
#include "enginecore/protocol/curve_auth.h"
#include "enginecore/protocol/dp_transport.h"
#include "enginecore/protocol/zmq_channel.h"

namespace k2::engine {
namespace {

using protocol::DpControl;
using protocol::DpControlKind;

DpControl msg(DpControlKind kind, uint64_t wave = 0, uint64_t round = 0, bool unfinished = false) {
  return DpControl{kind, 0, wave, round, unfinished, -1};
}

TEST(WaveCoordinator, StartBroadcastsToTheOthersAndIdleSyncEndsTheWave) {
  WaveCoordinator c(3);
  for (uint32_t r = 0; r < 3; ++r) EXPECT_TRUE(c.on_message(r, msg(DpControlKind::kJoin)).empty());
  auto out = c.on_message(1, msg(DpControlKind::kStartWave, 0));
  ASSERT_EQ(out.size(), 2u);
  for (const auto& [to, m] : out) {
    EXPECT_NE(to, 1u);
    EXPECT_EQ(m.kind, DpControlKind::kStartDpWave);
    EXPECT_EQ(m.wave, 0u);
    EXPECT_EQ(m.exclude_rank, 1);
  }
  EXPECT_TRUE(c.running());
  // A second start for the running wave is not broadcast again.
  EXPECT_TRUE(c.on_message(2, msg(DpControlKind::kStartWave, 0)).empty());
  // Round 0: one rank still busy -> every rank hears "unfinished", the wave goes on.
  EXPECT_TRUE(c.on_message(0, msg(DpControlKind::kSync, 0, 0, false)).empty());
  EXPECT_TRUE(c.on_message(1, msg(DpControlKind::kSync, 0, 0, true)).empty());
  out = c.on_message(2, msg(DpControlKind::kSync, 0, 0, false));
  ASSERT_EQ(out.size(), 3u);
  for (const auto& [to, m] : out) {
    EXPECT_EQ(m.kind, DpControlKind::kSyncResult);
    EXPECT_TRUE(m.unfinished);
  }
  EXPECT_TRUE(c.running());
  // Round 1: all idle -> the wave ends and the next one is wave 1.
  for (uint32_t r = 0; r < 2; ++r) EXPECT_TRUE(c.on_message(r, msg(DpControlKind::kSync, 0, 1, false)).empty());
  out = c.on_message(2, msg(DpControlKind::kSync, 0, 1, false));
  ASSERT_EQ(out.size(), 3u);
  EXPECT_FALSE(out[0].second.unfinished);
  EXPECT_FALSE(c.running());
  EXPECT_EQ(c.wave(), 1u);
  EXPECT_EQ(c.waves_completed(), 1u);
  out = c.on_message(0, msg(DpControlKind::kStartWave, 1));
  EXPECT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].second.wave, 1u);
}

TEST(WaveCoordinator, LateJoinerIsToldOfTheRunningWave) {
  WaveCoordinator c(2);
  c.on_message(0, msg(DpControlKind::kJoin));
  EXPECT_TRUE(c.on_message(0, msg(DpControlKind::kStartWave, 0)).empty());  // nobody else joined yet
  auto out = c.on_message(1, msg(DpControlKind::kJoin));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].first, 1u);
  EXPECT_EQ(out[0].second.kind, DpControlKind::kStartDpWave);
}

// Two ranks follow a wave through a coordinator at `address`: a start reaches the idle rank,
// and an idle all-reduce ends the wave on both.
void run_one_wave(zmq::context_t& ctx, const std::string& address, const protocol::ControlPlaneSecurity& client) {
  auto a = DpWave::connect(ctx, address, 0, client);
  auto b = DpWave::connect(ctx, address, 1, client);
  ASSERT_TRUE(a.ok() && b.ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // both joined
  ASSERT_TRUE((*a)->start_if_idle().ok());
  EXPECT_TRUE((*a)->running());
  auto wait_for = [](DpWave& w, auto pred) {
    for (int i = 0; i < 100 && !pred(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      EXPECT_TRUE(w.drain().ok());
    }
    return pred();
  };
  ASSERT_TRUE(wait_for(**b, [&] { return (*b)->running(); }));  // START_DP_WAVE reached the idle rank
  bool sync_a = false, sync_b = false;
  for (uint64_t i = 0; i < DpWave::kSyncInterval; ++i) {
    sync_a = (*a)->count_step();
    sync_b = (*b)->count_step();
  }
  ASSERT_TRUE(sync_a && sync_b);
  ASSERT_TRUE((*a)->begin_sync(false).ok());
  ASSERT_TRUE((*b)->begin_sync(false).ok());
  ASSERT_TRUE(wait_for(**a, [&] { return !(*a)->sync_pending(); }));
  ASSERT_TRUE(wait_for(**b, [&] { return !(*b)->sync_pending(); }));
  EXPECT_FALSE((*a)->running());
  EXPECT_FALSE((*b)->running());
  EXPECT_EQ((*a)->wave(), 1u);
  EXPECT_EQ((*b)->wave(), 1u);
}

std::unique_ptr<protocol::ControlPlaneSecurity> no_keys() {
  auto s = protocol::ControlPlaneSecurity::load("");
  EXPECT_TRUE(s.ok());
  return std::move(s).value();
}

TEST(DpWave, FollowsStartsAndSyncResults) {
  zmq::context_t ctx(1);
  auto dir = protocol::RunDir::create();
  ASSERT_TRUE(dir.ok());
  auto addr = dir->ipc_address("coord");
  auto security = no_keys();
  EXPECT_FALSE(security->curve());
  auto coordinator = DpCoordinator::start(ctx, *addr, 2, *security);
  ASSERT_TRUE(coordinator.ok()) << coordinator.status().to_string();
  run_one_wave(ctx, *addr, *security);
  EXPECT_EQ(security->refused(), 0u);
}

// ---------------------------------------------------------------- CURVE over tcp://127.0.0.1

// A key file made as `k2serve keygen` makes it, in a private temporary directory.
struct KeyFile {
  std::filesystem::path dir;
  std::string path;
  KeyFile() {
    char tmpl[] = "/tmp/k2-coordinator-test-XXXXXX";
    dir = ::mkdtemp(tmpl);
    path = (dir / "control.key").string();
    auto keys = protocol::generate_curve_keys();
    EXPECT_TRUE(keys.ok());
    EXPECT_TRUE(protocol::write_key_file(path, *keys).ok());
  }
  ~KeyFile() { std::filesystem::remove_all(dir); }
  std::unique_ptr<protocol::ControlPlaneSecurity> load() const {
    auto s = protocol::ControlPlaneSecurity::load(path);
    EXPECT_TRUE(s.ok()) << s.status().to_string();
    return std::move(s).value();
  }
};

// A loopback port free a moment ago (the coordinator binds a fixed address, as in a deployment).
std::string free_tcp_address() {
  zmq::context_t ctx(1);
  zmq::socket_t s(ctx, zmq::socket_type::router);
  s.set(zmq::sockopt::linger, 0);
  s.bind("tcp://127.0.0.1:*");
  return s.get(zmq::sockopt::last_endpoint);
}

// The master side of a secured deployment: a CURVE coordinator in its own context.
struct SecuredCoordinator {
  zmq::context_t context{1};
  std::unique_ptr<protocol::ControlPlaneSecurity> security;
  std::unique_ptr<DpCoordinator> coordinator;
  std::string address = free_tcp_address();
  explicit SecuredCoordinator(const KeyFile& keys) : security(keys.load()) {
    auto c = DpCoordinator::start(context, address, 2, *security);
    EXPECT_TRUE(c.ok()) << c.status().to_string();
    if (c.ok()) coordinator = std::move(c).value();
  }
  ~SecuredCoordinator() {
    coordinator.reset();
    security.reset();  // the authenticator before its context
  }
};

Status await(zmq::context_t& ctx, const protocol::ControlPlaneSecurity& client, const std::string& address,
             std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
  zmq::socket_t s(ctx, zmq::socket_type::dealer);
  s.set(zmq::sockopt::linger, 0);
  K2_RETURN_IF_ERROR(client.secure_client(s));
  return protocol::connect_and_await_handshake(ctx, s, address, timeout);
}

TEST(CurveControlPlane, SameKeyFileRunsAWave) {
  KeyFile keys;
  SecuredCoordinator server(keys);
  ASSERT_TRUE(server.security->curve());
  zmq::context_t ctx(1);
  auto client = keys.load();
  EXPECT_TRUE(await(ctx, *client, server.address).ok());
  run_one_wave(ctx, server.address, *client);
  EXPECT_EQ(server.security->refused(), 0u);
}

TEST(CurveControlPlane, AnotherKeyFileIsRefusedOnBothSidesWithinSeconds) {
  KeyFile keys, other;
  SecuredCoordinator server(keys);
  zmq::context_t ctx(1);
  auto intruder = other.load();
  const auto t0 = std::chrono::steady_clock::now();
  Status s = await(ctx, *intruder, server.address);
  EXPECT_EQ(s.code(), Code::kInvalidArgument) << s.to_string();
  EXPECT_NE(s.message().find("--control-plane-key-file"), std::string::npos) << s.message();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(10));
  // The server saw (and logged) the failed handshakes.
  for (int i = 0; i < 50 && server.security->refused() == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_GT(server.security->refused(), 0u);
}

TEST(CurveControlPlane, ANodeWithoutKeysIsRefusedAndCannotJoinTheWave) {
  KeyFile keys;
  SecuredCoordinator server(keys);
  zmq::context_t ctx(1);
  auto plain = no_keys();
  Status s = await(ctx, *plain, server.address);
  EXPECT_EQ(s.code(), Code::kInvalidArgument) << s.to_string();
  // Whichever side notices the mechanism mismatch first hangs up: the client hears of it as a
  // mismatch, or as a server that closes every handshake.
  EXPECT_NE(s.message().find("refused this node's control-plane connection"), std::string::npos) << s.message();
  // Its messages never reach the coordinator: a wave it starts reaches nobody.
  auto a = DpWave::connect(ctx, server.address, 0, *plain);
  auto b = DpWave::connect(ctx, server.address, 1, *keys.load());
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_TRUE((*a)->start_if_idle().ok());
  for (int i = 0; i < 25; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    ASSERT_TRUE((*b)->drain().ok());
  }
  EXPECT_FALSE((*b)->running());
  EXPECT_GT(server.security->refused(), 0u);
}

TEST(CurveControlPlane, UnsecuredPairsAndMissingServers) {
  zmq::context_t server_ctx(1);
  auto plain = no_keys();
  const std::string address = free_tcp_address();
  auto coordinator = DpCoordinator::start(server_ctx, address, 2, *plain);
  ASSERT_TRUE(coordinator.ok());
  zmq::context_t ctx(1);
  EXPECT_TRUE(await(ctx, *plain, address).ok());  // no keys on either side: vLLM's behaviour
  // Nobody listening: bounded by the timeout, and said so.
  Status none = await(ctx, *plain, free_tcp_address(), std::chrono::milliseconds(300));
  EXPECT_EQ(none.code(), Code::kUnavailable) << none.to_string();
}

TEST(CurveControlPlane, KeyFileProblemsAndOneContextPerProcess) {
  EXPECT_EQ(protocol::ControlPlaneSecurity::load("/nonexistent/k2.key").status().code(), Code::kNotFound);
  KeyFile keys;
  auto security = keys.load();
  zmq::context_t a(1), b(1);
  {
    zmq::socket_t s1(a, zmq::socket_type::router), s2(b, zmq::socket_type::router);
    s1.set(zmq::sockopt::linger, 0);
    s2.set(zmq::sockopt::linger, 0);
    EXPECT_TRUE(security->secure_server(a, s1, "first").ok());
    EXPECT_EQ(security->secure_server(b, s2, "second").code(), Code::kInternal);
  }
  security.reset();
}

}  // namespace
}  // namespace k2::engine
