// ZmqEngineClient's routing, output delivery, aborts, rank deaths and shutdown against fake
// engines in this process (attach(): the client binds, the fakes connect as enginecores
// do). Each fake rank's "enginecore" pid is a sleeping child process, killed to play a death.
#include "frontend/engine/zmq_engine_client.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <map>
#include <mutex>

#include "enginecore/protocol/child_process.h"

namespace k2::frontend {
namespace {

using namespace std::chrono_literals;

// One rank as the client sees it: a DEALER with the rank's identity and a PUSH.
struct FakeEngine {
  FakeEngine(zmq::context_t& context, uint32_t rank, const std::string& input, const std::string& output)
      : rank(rank) {
    protocol::SocketOptions o;
    o.routing_id = protocol::rank_identity(rank);
    dealer.emplace(std::move(protocol::make_socket(context, zmq::socket_type::dealer, o)).value());
    push.emplace(std::move(protocol::make_socket(context, zmq::socket_type::push)).value());
    EXPECT_TRUE(protocol::connect_endpoint(*dealer, input).ok());
    EXPECT_TRUE(protocol::connect_endpoint(*push, output).ok());
    auto child = ChildProcess::spawn("/bin/sleep", {"60"});
    EXPECT_TRUE(child.ok());
    process = std::move(*child);
  }
  void ready(const std::string& config_json) {
    protocol::ReadyMsg r;
    r.rank = rank;
    r.max_model_len = 1000 + rank;
    r.num_kv_blocks = 10;
    r.block_size = 16;
    r.config_json = config_json;
    ASSERT_TRUE(protocol::send(*dealer, r).ok());
  }
  protocol::Message receive() {
    auto got = protocol::receive_valid(*dealer, 5s, /*routed=*/false);
    EXPECT_TRUE(got.ok() && *got);
    return got.ok() && *got ? (*got)->message : protocol::Message{};
  }
  std::string receive_request_id() {
    protocol::Message m = receive();
    auto* add = std::get_if<protocol::AddRequest>(&m);
    return add != nullptr ? add->request_id : "";
  }
  void output(const std::string& id, protocol::FinishReason finish, uint32_t num_running = 0) {
    protocol::EngineOutputs out;
    out.engine_index = rank;
    protocol::RequestOutput o;
    o.request_id = id;
    o.new_token_ids = {42};
    o.finish_reason = finish;
    out.outputs.push_back(o);
    protocol::SchedulerStats st;
    st.num_running = num_running;
    out.scheduler_stats = st;
    ASSERT_TRUE(protocol::send(*push, out).ok());
  }
  uint32_t rank;
  std::optional<zmq::socket_t> dealer, push;
  ChildProcess process;
};

// What each request got, thread-safe (callbacks run on the client's I/O thread).
struct Outputs {
  openai::OutputCallback callback(const std::string& id) {
    return [this, id](openai::EngineOutput o) {
      std::lock_guard lock(mu);
      got[id].push_back(std::move(o));
    };
  }
  // The last output of `id` once it is final (waits up to 5 s); nullopt if none came.
  std::optional<openai::EngineOutput> final_of(const std::string& id) {
    for (auto deadline = std::chrono::steady_clock::now() + 5s; std::chrono::steady_clock::now() < deadline;) {
      {
        std::lock_guard lock(mu);
        auto it = got.find(id);
        if (it != got.end() && it->second.back().finish_reason != openai::FinishReason::kNone) return it->second.back();
      }
      std::this_thread::sleep_for(5ms);
    }
    return std::nullopt;
  }
  std::mutex mu;
  std::map<std::string, std::vector<openai::EngineOutput>> got;
};

openai::GenerateRequest request(const std::string& id) {
  openai::GenerateRequest r;
  r.request_id = id;
  r.prompt_ids = {1, 2, 3};
  return r;
}

class ZmqEngineClientTest : public ::testing::Test {
 protected:
  // `config_json`: what every rank's READY reports (rank 0's stop ids, dp_waves).
  void attach(uint32_t ranks, const std::string& config_json = "{}") {
    auto dir = protocol::RunDir::create();
    ASSERT_TRUE(dir.ok());
    run_dir.emplace(std::move(*dir));
    EngineAttachOptions o;
    o.input_address = *run_dir->ipc_address("in");
    o.output_address = *run_dir->ipc_address("out");
    o.ready_timeout = 10s;
    for (uint32_t r = 0; r < ranks; ++r) {
      engines.push_back(std::make_unique<FakeEngine>(context, r, o.input_address, o.output_address));
      o.engine_pids.push_back(engines.back()->process.pid());
      engines.back()->ready(config_json);
    }
    auto attached = ZmqEngineClient::attach(o);
    ASSERT_TRUE(attached.ok()) << attached.status().to_string();
    client = std::move(*attached);
  }
  void TearDown() override {
    client.reset();  // before the fakes' sockets and the context
    engines.clear();
  }

  zmq::context_t context{1};
  std::optional<protocol::RunDir> run_dir;
  std::vector<std::unique_ptr<FakeEngine>> engines;
  std::unique_ptr<ZmqEngineClient> client;
  Outputs outputs;
};

TEST_F(ZmqEngineClientTest, BalancesRanksDeliversOutputsAndRoutesAborts) {
  attach(2, R"({"eos_token_ids": [7]})");
  EXPECT_TRUE(client->healthy());
  EXPECT_EQ(client->capacities().max_model_len, 1000u);
  EXPECT_EQ(client->capacities().num_kv_blocks, 20u);
  EXPECT_EQ(client->capacities().eos_token_ids, (std::vector<int32_t>{7}));
  ASSERT_TRUE(client->add_request(request("a"), outputs.callback("a")).ok());
  ASSERT_TRUE(client->add_request(request("b"), outputs.callback("b")).ok());
  // "a" made rank 0's queue longer, so "b" goes to rank 1.
  EXPECT_EQ(engines[0]->receive_request_id(), "a");
  EXPECT_EQ(engines[1]->receive_request_id(), "b");
  EXPECT_EQ(client->add_request(request("a"), outputs.callback("a")).code(), Code::kInvalidArgument);
  engines[1]->output("b", protocol::FinishReason::kStop, 3);
  auto b = outputs.final_of("b");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->new_token_ids, (std::vector<int32_t>{42}));
  EXPECT_EQ(client->num_in_flight(), 1u);
  client->abort("a");
  protocol::Message abort = engines[0]->receive();
  auto* ids = std::get_if<protocol::AbortRequests>(&abort);
  ASSERT_NE(ids, nullptr);
  EXPECT_EQ(ids->request_ids, (std::vector<std::string>{"a"}));
  engines[0]->output("a", protocol::FinishReason::kAbort);
  EXPECT_TRUE(client->drain(5s));
  EXPECT_EQ(outputs.final_of("a")->finish_reason, openai::FinishReason::kAbort);
  EXPECT_EQ(client->stats().num_running, 3);
  const auto ranks = client->rank_status();
  ASSERT_EQ(ranks.size(), 2u);
  EXPECT_EQ(ranks[1].requests_routed, 1u);
  EXPECT_EQ(ranks[1].requests_finished, 1u);
  EXPECT_EQ(ranks[1].in_flight, 0);
  EXPECT_EQ(ranks[1].pid, engines[1]->process.pid());
}

TEST_F(ZmqEngineClientTest, ADeadRankEndsOnlyItsOwnRequestsWithoutWaves) {
  attach(2);
  ASSERT_TRUE(client->add_request(request("a"), outputs.callback("a")).ok());
  ASSERT_TRUE(client->add_request(request("b"), outputs.callback("b")).ok());
  ASSERT_EQ(engines[0]->receive_request_id(), "a");
  ASSERT_EQ(engines[1]->receive_request_id(), "b");
  ASSERT_TRUE(protocol::send(*engines[0]->push, protocol::EngineDead{"out of memory", 0}).ok());
  auto a = outputs.final_of("a");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->finish_reason, openai::FinishReason::kError);
  EXPECT_NE(a->error.find("rank 0 died: out of memory"), std::string::npos) << a->error;
  EXPECT_FALSE(client->healthy());
  EXPECT_EQ(client->num_in_flight(), 1u) << "rank 1's request runs on";
  engines[1]->output("b", protocol::FinishReason::kStop);
  EXPECT_EQ(outputs.final_of("b")->finish_reason, openai::FinishReason::kStop);
  const Status refused = client->add_request(request("c"), outputs.callback("c"));
  EXPECT_EQ(refused.code(), Code::kUnavailable);
  EXPECT_NE(refused.message().find("a data-parallel rank is down"), std::string::npos) << refused.message();
  EXPECT_FALSE(client->rank_status()[0].alive);
  EXPECT_TRUE(client->rank_status()[1].alive);
}

TEST_F(ZmqEngineClientTest, WithWavesAnExitedRankEndsEveryRanksRequests) {
  attach(2, R"({"dp_waves": true})");
  EXPECT_TRUE(client->waves());
  ASSERT_TRUE(client->add_request(request("a"), outputs.callback("a")).ok());
  ASSERT_TRUE(client->add_request(request("b"), outputs.callback("b")).ok());
  ASSERT_EQ(engines[1]->receive_request_id(), "b");
  engines[1]->process.signal(SIGKILL);
  for (const char* id : {"a", "b"}) {
    auto out = outputs.final_of(id);
    ASSERT_TRUE(out) << id;
    EXPECT_EQ(out->finish_reason, openai::FinishReason::kError) << id;
  }
  EXPECT_NE(client->dead_reason().find("the enginecore of rank 1 exited"), std::string::npos) << client->dead_reason();
  EXPECT_TRUE(client->drain(1s));
}

TEST_F(ZmqEngineClientTest, ALoneEngineIsNamedAsTheEngine) {
  attach(1);
  ASSERT_TRUE(client->add_request(request("a"), outputs.callback("a")).ok());
  ASSERT_EQ(engines[0]->receive_request_id(), "a");
  ASSERT_TRUE(protocol::send(*engines[0]->push, protocol::EngineDead{"worker died", 0}).ok());
  auto a = outputs.final_of("a");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->error, "the engine died: worker died");
  const Status refused = client->add_request(request("b"), outputs.callback("b"));
  EXPECT_EQ(refused.message(), "the engine is not running: the engine died: worker died");
}

TEST_F(ZmqEngineClientTest, ShutdownEndsRequestsInFlightAndRefusesNewOnes) {
  attach(1);
  ASSERT_TRUE(client->add_request(request("a"), outputs.callback("a")).ok());
  openai::GenerateRequest empty = request("e");
  empty.prompt_ids.clear();
  EXPECT_EQ(client->add_request(empty, outputs.callback("e")).code(), Code::kInvalidArgument);
  EXPECT_FALSE(client->drain(50ms));
  client->shutdown();
  auto a = outputs.final_of("a");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->error, "the API server was shut down");
  EXPECT_FALSE(client->healthy());
  EXPECT_EQ(client->add_request(request("b"), outputs.callback("b")).code(), Code::kUnavailable);
  EXPECT_TRUE(engines[0]->process.running()) << "an attached client never stops the engines";
}

TEST(ZmqEngineClientAttach, AGoneEngineFailsTheAttach) {
  auto child = ChildProcess::spawn("/bin/true", {});
  ASSERT_TRUE(child.ok());
  const pid_t pid = child->pid();
  (void)child->terminate(1s);  // reaped: the pid names no process
  EngineAttachOptions o;
  o.input_address = "ipc:///nonexistent-dir/in";
  o.output_address = "ipc:///nonexistent-dir/out";
  o.engine_pids = {pid};
  EXPECT_EQ(ZmqEngineClient::attach(o).status().code(), Code::kUnavailable);
  o.engine_pids.clear();
  EXPECT_EQ(ZmqEngineClient::attach(o).status().code(), Code::kInvalidArgument);
}

}  // namespace
}  // namespace k2::frontend
