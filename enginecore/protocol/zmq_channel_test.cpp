#include "enginecore/protocol/zmq_channel.h"

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <thread>

#include <gtest/gtest.h>

namespace k2::protocol {
namespace {

using namespace std::chrono_literals;

TEST(RunDir, PrivateAndRemoved) {
  std::string path;
  {
    auto dir = RunDir::create();
    ASSERT_TRUE(dir.ok()) << dir.status().to_string();
    path = dir->path();
    struct stat st {};
    ASSERT_EQ(stat(path.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0700u);
    auto addr = dir->ipc_address("input");
    ASSERT_TRUE(addr.ok());
    EXPECT_EQ(*addr, "ipc://" + path + "/input");
    EXPECT_FALSE(dir->ipc_address("a/b").ok());
    EXPECT_FALSE(dir->ipc_address(std::string(200, 'x')).ok());
    zmq::context_t ctx;
    auto s = make_socket(ctx, zmq::socket_type::pull);
    ASSERT_TRUE(s.ok());
    ASSERT_TRUE(bind_endpoint(*s, *addr).ok());
    EXPECT_TRUE(std::filesystem::exists(path + "/input"));
  }
  EXPECT_FALSE(std::filesystem::exists(path));
}

TEST(Sockets, BindRules) {
  zmq::context_t ctx;
  auto s = make_socket(ctx, zmq::socket_type::router);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(bind_endpoint(*s, "tcp://*:0").code(), Code::kInvalidArgument);
  EXPECT_EQ(bind_endpoint(*s, "tcp://0.0.0.0:5555").code(), Code::kInvalidArgument);
  EXPECT_EQ(bind_endpoint(*s, "inproc://x").code(), Code::kInvalidArgument);
  EXPECT_TRUE(bind_endpoint(*s, "tcp://127.0.0.1:*").ok());
  EXPECT_EQ(bind_endpoint(*s, "tcp://256.1.1.1:1").code(), Code::kIo);
  EXPECT_EQ(tcp_address("::1", 80), "tcp://[::1]:80");
  EXPECT_EQ(tcp_address("10.0.0.1", 80), "tcp://10.0.0.1:80");
  EXPECT_EQ(rank_identity(258), std::string("\x02\x01", 2));
}

TEST(Sockets, ReceiveTimesOutAndDropsMalformed) {
  zmq::context_t ctx;
  auto pull = make_socket(ctx, zmq::socket_type::pull);
  auto push = make_socket(ctx, zmq::socket_type::push);
  ASSERT_TRUE(pull.ok() && push.ok());
  ASSERT_TRUE(bind_endpoint(*pull, "tcp://127.0.0.1:*").ok());
  ASSERT_TRUE(connect_endpoint(*push, pull->get(zmq::sockopt::last_endpoint)).ok());
  auto t0 = std::chrono::steady_clock::now();
  auto none = receive(*pull, 50ms, false);
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);

  push->send(zmq::str_buffer("garbage"), zmq::send_flags::none);
  push->send(zmq::buffer(std::string{static_cast<char>(kProtocolVersion), 7}), zmq::send_flags::sndmore);
  push->send(zmq::str_buffer("\xc1"), zmq::send_flags::none);  // 0xc1 is never valid msgpack
  ASSERT_TRUE(send(*push, EngineDead{"bye", 0}).ok());
  auto bad = receive(*pull, 1s, false);
  EXPECT_EQ(bad.status().code(), Code::kCorrupt);
  auto good = receive_valid(*pull, 2s, false);
  ASSERT_TRUE(good.ok());
  ASSERT_TRUE(good->has_value());
  EXPECT_EQ(std::get<EngineDead>((*good)->message).reason, "bye");
}

TEST(Sockets, SendToAGonePeerIsAnError) {
  zmq::context_t ctx;
  auto router = make_socket(ctx, zmq::socket_type::router);
  ASSERT_TRUE(router.ok());
  EXPECT_EQ(send(*router, EngineDead{"x", 0}, rank_identity(9)).code(), Code::kUnavailable);
}

// The engine side of the tests: handshake, then serve one AddRequest with one EngineOutputs.
Status run_engine(zmq::context_t& ctx, const std::string& handshake_addr, uint32_t rank) {
  K2_ASSIGN_OR_RETURN(auto dealer, make_socket(ctx, zmq::socket_type::dealer, {rank_identity(rank)}));
  K2_RETURN_IF_ERROR(connect_endpoint(dealer, handshake_addr));
  K2_ASSIGN_OR_RETURN(auto config, handshake_hello(dealer, Hello{ProcessKind::kEngineCore, rank, kProtocolVersion,
                                                                  true, false, getpid()}, 10s));
  if (config.rank != rank || config.output_addresses.size() != 1) return internal_error("bad config");
  K2_ASSIGN_OR_RETURN(auto push, make_socket(ctx, zmq::socket_type::push, {std::nullopt, 2000}));
  K2_RETURN_IF_ERROR(connect_endpoint(push, config.output_addresses[0]));
  ReadyMsg ready;
  ready.rank = rank;
  ready.num_kv_blocks = 100 + rank;
  ready.max_model_len = 4096;
  K2_RETURN_IF_ERROR(handshake_ready(dealer, ready));
  K2_ASSIGN_OR_RETURN(auto got, receive_valid(dealer, 10s, false));
  if (!got) return unavailable("no request");
  auto* add = std::get_if<AddRequest>(&got->message);
  if (add == nullptr) return internal_error("expected an AddRequest");
  RequestOutput out;
  out.request_id = add->request_id;
  out.new_token_ids = {add->prompt.ids.back() + static_cast<int32_t>(rank)};
  out.finish_reason = FinishReason::kLength;
  return send(push, EngineOutputs{rank, {out}, std::nullopt, 0, std::nullopt, {}});
}

// The frontend side: handshake with `engines` ranks, one request to each, collect outputs.
Status run_frontend(zmq::context_t& ctx, const std::string& handshake_addr, const std::string& output_addr,
                    uint32_t engines, std::function<Status()> alive = {}) {
  K2_ASSIGN_OR_RETURN(auto router, make_socket(ctx, zmq::socket_type::router));
  K2_RETURN_IF_ERROR(bind_endpoint(router, handshake_addr));
  K2_ASSIGN_OR_RETURN(auto pull, make_socket(ctx, zmq::socket_type::pull));
  K2_RETURN_IF_ERROR(bind_endpoint(pull, output_addr));
  HandshakeOptions opts;
  opts.expected_peers = engines;
  opts.hello_timeout = 10s;
  opts.ready_timeout = 10s;
  opts.peers_alive = std::move(alive);
  K2_ASSIGN_OR_RETURN(auto peers, handshake_serve(router, opts, [&](const Hello& h) -> Result<EngineConfigMsg> {
    return EngineConfigMsg{"{}", "run", {handshake_addr}, {output_addr}, h.rank, "", {}, "", ""};
  }));
  if (peers.size() != engines) return internal_error("wrong peer count");
  for (uint32_t r = 0; r < engines; ++r) {
    if (peers[r].hello.rank != r || peers[r].ready.num_kv_blocks != 100 + r) return internal_error("bad ready");
    AddRequest add{"req-" + std::to_string(r), inline_tokens({1, 2, 1000}), SamplingParams{}, 0, 0, 0, {}, {}, std::nullopt, {}};
    K2_RETURN_IF_ERROR(send(router, add, peers[r].routing_id));
  }
  std::vector<bool> seen(engines, false);
  for (uint32_t i = 0; i < engines; ++i) {
    K2_ASSIGN_OR_RETURN(auto got, receive_valid(pull, 10s, false));
    if (!got) return unavailable("missing output");
    auto& outs = std::get<EngineOutputs>(got->message);
    uint32_t r = outs.engine_index;
    if (r >= engines || seen[r] || outs.outputs.size() != 1 || outs.outputs[0].request_id != "req-" + std::to_string(r) ||
        outs.outputs[0].new_token_ids != std::vector<int32_t>{1000 + static_cast<int32_t>(r)})
      return internal_error("bad output");
    seen[r] = true;
  }
  return Status::ok_status();
}

TEST(Handshake, TwoEnginesInThreads) {
  auto dir = RunDir::create();
  ASSERT_TRUE(dir.ok());
  std::string hs = *dir->ipc_address("handshake"), out = *dir->ipc_address("output");
  zmq::context_t ctx;
  Status front, e0, e1;
  std::thread f([&] { front = run_frontend(ctx, hs, out, 2); });
  std::thread t0([&] { e0 = run_engine(ctx, hs, 0); });
  std::thread t1([&] { e1 = run_engine(ctx, hs, 1); });
  f.join();
  t0.join();
  t1.join();
  EXPECT_TRUE(front.ok()) << front.to_string();
  EXPECT_TRUE(e0.ok()) << e0.to_string();
  EXPECT_TRUE(e1.ok()) << e1.to_string();
}

TEST(Handshake, AcrossFork) {
  auto dir = RunDir::create();
  ASSERT_TRUE(dir.ok());
  std::string hs = *dir->ipc_address("handshake"), out = *dir->ipc_address("output");
  pid_t pid = fork();
  if (pid == 0) {
    Status s;
    {
      // The context must be terminated before _exit: that is what flushes (lingers) the
      // PUSH socket's last message; _exit alone would drop it.
      zmq::context_t ctx;
      s = run_engine(ctx, hs, 0);
    }
    if (!s.ok()) std::fprintf(stderr, "engine: %s\n", s.to_string().c_str());
    _exit(s.ok() ? 0 : 1);
  }
  zmq::context_t ctx;
  Status s = run_frontend(ctx, hs, out, 1);
  EXPECT_TRUE(s.ok()) << s.to_string();
  int status = 0;
  waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

TEST(Handshake, DeadChildEndsItAtOnce) {
  auto dir = RunDir::create();
  ASSERT_TRUE(dir.ok());
  pid_t pid = fork();
  if (pid == 0) {
    pause();
    _exit(0);
  }
  kill(pid, SIGKILL);
  zmq::context_t ctx;
  auto alive = [pid]() -> Status {
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) return unavailable("engine process died");
    return Status::ok_status();
  };
  auto t0 = std::chrono::steady_clock::now();
  Status s = run_frontend(ctx, *dir->ipc_address("hs"), *dir->ipc_address("out"), 1, alive);
  EXPECT_EQ(s.code(), Code::kUnavailable) << s.to_string();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 3s);
}

TEST(Handshake, WrongVersionFailsFast) {
  auto dir = RunDir::create();
  ASSERT_TRUE(dir.ok());
  std::string hs = *dir->ipc_address("hs");
  zmq::context_t ctx;
  auto router = make_socket(ctx, zmq::socket_type::router);
  ASSERT_TRUE(router.ok());
  ASSERT_TRUE(bind_endpoint(*router, hs).ok());
  std::thread peer([&] {
    auto dealer = make_socket(ctx, zmq::socket_type::dealer, {rank_identity(0)});
    if (!dealer.ok() || !connect_endpoint(*dealer, hs).ok()) return;
    Frames f = encode(Hello{});
    f[0][0] = static_cast<char>(kProtocolVersion + 1);
    dealer->send(zmq::buffer(f[0]), zmq::send_flags::sndmore);
    dealer->send(zmq::buffer(f[1]), zmq::send_flags::none);
    std::this_thread::sleep_for(500ms);  // keep the socket open until the frames are out
  });
  HandshakeOptions opts;
  opts.hello_timeout = 10s;
  auto r = handshake_serve(*router, opts, [](const Hello&) -> Result<EngineConfigMsg> { return EngineConfigMsg{}; });
  peer.join();
  EXPECT_EQ(r.status().code(), Code::kUnimplemented) << r.status().to_string();
}

}  // namespace
}  // namespace k2::protocol
