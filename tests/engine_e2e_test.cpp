// The real process tree: ZmqEngineClient (this process, the frontend's role) spawns
// k2serve-enginecore, which spawns k2serve-worker. Exactness of greedy generation against
// the golden tokens (alone and concurrently) and the lifecycle: kill -9 of the worker or of
// the enginecore with requests in flight ends every request with kError, healthy() turns
// false within 2 s, and no process of the tree and no shm segment of the run is left.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <map>
#include <mutex>
#include <thread>

#include "engine_test_util.h"
#include "enginecore/protocol/token_payload.h"
#include "frontend/engine/zmq_engine_client.h"

namespace k2 {
namespace {

using namespace std::chrono_literals;
using frontend::ZmqEngineClient;
using frontend::ZmqEngineClientOptions;

// Collects every request's outputs as the engine client delivers them.
class Collector {
 public:
  openai::OutputCallback callback(const std::string& id) {
    return [this, id](openai::EngineOutput out) {
      std::lock_guard lock(mu_);
      Entry& e = entries_[id];
      EXPECT_FALSE(e.finish) << id << ": an output after the final one";
      e.tokens.insert(e.tokens.end(), out.new_token_ids.begin(), out.new_token_ids.end());
      ++e.outputs;
      if (out.finished()) {
        e.finish = out.finish_reason;
        e.error = out.error;
      }
      cv_.notify_all();
    };
  }
  bool wait_finished(const std::vector<std::string>& ids, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] {
      for (const auto& id : ids)
        if (!entries_[id].finish) return false;
      return true;
    });
  }
  bool wait_outputs(const std::vector<std::string>& ids, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] {
      for (const auto& id : ids)
        if (entries_[id].outputs == 0) return false;
      return true;
    });
  }
  struct Entry {
    std::vector<int32_t> tokens;
    int outputs = 0;
    std::optional<openai::FinishReason> finish;
    std::string error;
  };
  Entry get(const std::string& id) {
    std::lock_guard lock(mu_);
    return entries_[id];
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, Entry> entries_;
};

ZmqEngineClientOptions options_for(const std::string& set) {
  ZmqEngineClientOptions o;
  o.config.model = testing::model_dir(set);
  o.config.dtype = "float32";  // exactness is a property of the float32 path
  o.config.kv_cache_memory = int64_t{64} << 20;
  o.config.max_model_len = 2048;
  o.config.max_num_seqs = 16;
  o.enginecore_binary = K2_ENGINECORE_BIN;
  o.worker_binary = K2_WORKER_BIN;
  o.ready_timeout = 120s;
  return o;
}

std::unique_ptr<ZmqEngineClient> start(const std::string& set) {
  auto client = ZmqEngineClient::start(options_for(set));
  EXPECT_TRUE(client.ok()) << client.status().to_string();
  return client.ok() ? std::move(*client) : nullptr;
}

openai::GenerateRequest greedy_request(const std::string& id, const std::vector<int32_t>& prompt, int32_t max_tokens,
                                       bool ignore_eos = false) {
  openai::GenerateRequest r;
  r.request_id = id;
  r.prompt_ids = prompt;
  r.sampling.temperature = 0;
  r.sampling.max_tokens = max_tokens;
  r.sampling.ignore_eos = ignore_eos;
  return r;
}

bool process_gone(pid_t pid) { return ::kill(pid, 0) != 0 && errno == ESRCH; }

// No /dev/shm segment named for these pids.
std::vector<std::string> segments_of(const std::vector<pid_t>& pids) {
  std::vector<std::string> left;
  for (const auto& entry : std::filesystem::directory_iterator("/dev/shm")) {
    const std::string name = entry.path().filename().string();
    for (pid_t pid : pids)
      if (name.starts_with(std::string("k2serve-").append(std::to_string(pid)).append("-"))) left.push_back(name);
  }
  return left;
}

class EngineE2e : public ::testing::TestWithParam<std::string> {};

TEST_P(EngineE2e, GoldenTokensAloneAndConcurrently) {
  double atol = 1e-3;
  const auto prompts = testing::golden_prompts(GetParam(), &atol);
  auto client = start(GetParam());
  ASSERT_TRUE(client);
  EXPECT_TRUE(client->healthy());
  EXPECT_EQ(client->capacities().max_model_len, 2048u);
  EXPECT_GT(client->capacities().num_kv_blocks, 0u);
  Collector c;
  for (const auto& g : prompts) {
    const std::string id = "alone-" + g.id;
    ASSERT_TRUE(client->add_request(greedy_request(id, g.prompt, 16), c.callback(id)).ok());
    ASSERT_TRUE(c.wait_finished({id}, 60s)) << id;
    EXPECT_EQ(c.get(id).finish, openai::FinishReason::kLength);
    testing::expect_golden_tokens(g, c.get(id).tokens, atol, "alone");
  }
  // All prompts in flight together, submitted from one thread each (add_request is
  // thread-safe).
  std::vector<std::string> ids;
  for (const auto& g : prompts) ids.push_back("together-" + g.id);
  std::vector<std::thread> submitters;
  std::atomic<int> accepted{0};
  for (size_t i = 0; i < prompts.size(); ++i)
    submitters.emplace_back([&, i] {
      if (client->add_request(greedy_request(ids[i], prompts[i].prompt, 16), c.callback(ids[i])).ok()) ++accepted;
    });
  for (auto& t : submitters) t.join();
  ASSERT_EQ(accepted.load(), static_cast<int>(prompts.size()));
  ASSERT_TRUE(c.wait_finished(ids, 60s));
  for (size_t i = 0; i < prompts.size(); ++i)
    testing::expect_golden_tokens(prompts[i], c.get(ids[i]).tokens, atol, "together");
  EXPECT_GT(client->stats().prefix_cache_hits, 0u);  // the second round reused the first's blocks
  // Prompts longer than the inline limit went through the shared-memory arena and came out
  // whole (the golden tokens above depend on every id).
  size_t num_long = 0;
  for (const auto& g : prompts) num_long += g.prompt.size() > protocol::kInlineTokenLimit ? 2 : 0;
  EXPECT_EQ(client->num_prompts_in_shm(), num_long);
  EXPECT_TRUE(client->drain(5s));
  const pid_t engine = client->enginecore_pid();
  const auto workers = client->worker_pids();
  client.reset();
  EXPECT_TRUE(process_gone(engine));
  for (pid_t w : workers) EXPECT_TRUE(process_gone(w));
  std::vector<pid_t> pids = workers;
  pids.push_back(engine);
  EXPECT_TRUE(segments_of(pids).empty());
}

TEST(EngineLifecycle, AbortEndsARequest) {
  auto client = start("tiny-bf16");
  ASSERT_TRUE(client);
  Collector c;
  ASSERT_TRUE(client->add_request(greedy_request("long", {1, 2, 3}, 2000, true), c.callback("long")).ok());
  ASSERT_TRUE(c.wait_outputs({"long"}, 30s));
  client->abort("long");
  ASSERT_TRUE(c.wait_finished({"long"}, 10s));
  EXPECT_EQ(c.get("long").finish, openai::FinishReason::kAbort);
  EXPECT_TRUE(client->healthy());
}

// Kills one process of the tree while requests stream; checks what the brief promises.
void kill_while_streaming(const std::string& set, bool kill_worker) {
  auto client = start(set);
  ASSERT_TRUE(client);
  ASSERT_EQ(client->worker_pids().size(), 1u);
  const pid_t engine = client->enginecore_pid();
  const pid_t worker = client->worker_pids()[0];
  Collector c;
  std::vector<std::string> ids;
  for (int i = 0; i < 4; ++i) {
    ids.push_back(std::string("r").append(std::to_string(i)));
    ASSERT_TRUE(client->add_request(greedy_request(ids.back(), {5, 6, 7, int32_t(i)}, 2000, true),
                                    c.callback(ids.back())).ok());
  }
  ASSERT_TRUE(c.wait_outputs(ids, 30s));
  const auto killed_at = std::chrono::steady_clock::now();
  ASSERT_EQ(::kill(kill_worker ? worker : engine, SIGKILL), 0);
  while (client->healthy() && std::chrono::steady_clock::now() - killed_at < 5s) std::this_thread::sleep_for(1ms);
  EXPECT_FALSE(client->healthy());
  EXPECT_LT(std::chrono::steady_clock::now() - killed_at, 2s) << "healthy() did not turn false within 2 s";
  ASSERT_TRUE(c.wait_finished(ids, 5s));
  for (const auto& id : ids) {
    EXPECT_EQ(c.get(id).finish, openai::FinishReason::kError) << id;
    EXPECT_FALSE(c.get(id).error.empty());
  }
  EXPECT_FALSE(client->add_request(greedy_request("late", {1}, 1), c.callback("late")).ok());
  // Every process of the tree is gone and every segment removed, without shutdown().
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while ((!process_gone(engine) || !process_gone(worker) || !segments_of({engine, worker}).empty()) &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(10ms);
  EXPECT_TRUE(process_gone(engine));
  EXPECT_TRUE(process_gone(worker));
  EXPECT_TRUE(segments_of({engine, worker}).empty());
  for (const auto& name : client->shm_segments())
    EXPECT_FALSE(std::filesystem::exists("/dev/shm" + name)) << name;
}

TEST(EngineLifecycle, KillWorkerWhileStreaming) { kill_while_streaming("tiny-bf16", /*kill_worker=*/true); }
TEST(EngineLifecycle, KillEnginecoreWhileStreaming) { kill_while_streaming("tiny-bf16", /*kill_worker=*/false); }

INSTANTIATE_TEST_SUITE_P(Golden, EngineE2e, ::testing::Values("tiny-bf16", "tiny-int4"),
                         [](const auto& info) { return info.param == "tiny-bf16" ? "tiny_bf16" : "tiny_int4"; });

}  // namespace
}  // namespace k2
