// ZmqEngineClient: the frontend's EngineClient over real enginecore processes (vLLM V1's
// MPClient / AsyncMPClient).
//
// start() makes a private run directory, binds a ROUTER (requests, and the startup
// handshake) and a PULL (outputs) on ipc:// sockets in it, spawns `k2serve-enginecore`
// (which spawns its workers), and returns once the engine is READY. One I/O thread then owns
// both sockets: it sends what add_request/abort queued (any thread may call them; they only
// take a mutex and poke an eventfd), receives EngineOutputs and calls each request's
// callback, and watches the enginecore's pidfd, so an engine death (or its EngineDead
// message) is seen at once: healthy() turns false and every in-flight request gets a final
// kError output. After a death it removes every shm segment of the run.
//
// Owns the enginecore child process, the sockets, the run directory and the I/O thread.
// The EngineClient methods are thread-safe as engine_client.h requires; start() and the
// destructor are not (one owner). Spawn it from a long-lived thread (PR_SET_PDEATHSIG fires
// when the spawning thread exits).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "enginecore/protocol/child_process.h"
#include "enginecore/protocol/engine_config.h"
#include "enginecore/protocol/messages.h"
#include "enginecore/protocol/zmq_channel.h"
#include "frontend/openai/engine_client.h"
#include "shm/arena.h"
#include "shm/status.h"

namespace k2::frontend {

struct ZmqEngineClientOptions {
  EngineConfig config;
  // Default: k2serve-enginecore next to this process's executable.
  std::filesystem::path enginecore_binary;
  // Passed to the enginecore; default there: k2serve-worker next to the enginecore binary.
  std::filesystem::path worker_binary;
  std::chrono::milliseconds hello_timeout{std::chrono::minutes(5)};
  std::chrono::milliseconds ready_timeout{std::chrono::minutes(30)};  // weight load included
  // The bytes of every token id ("" for special tokens): the engine's structured outputs
  // need it. Empty: structured requests are refused.
  std::vector<std::string> vocabulary;
  // --api-server-count > 1: the ipc:// input and output addresses of API servers 1.. (they
  // bind them); the enginecore connects to them too.
  std::vector<std::string> extra_inputs, extra_outputs;
};

// What the engine reported in READY.
struct EngineCapacities {
  uint32_t max_model_len = 0;
  uint64_t num_kv_blocks = 0;
  uint32_t block_size = 0;
  uint32_t max_num_seqs = 0;
  uint32_t max_num_batched_tokens = 0;
  std::vector<int32_t> eos_token_ids;  // the stop ids the engine applies to every request
};

class ZmqEngineClient final : public openai::EngineClient {
 public:
  static Result<std::unique_ptr<ZmqEngineClient>> start(const ZmqEngineClientOptions& options);
  // shutdown() if not done yet.
  ~ZmqEngineClient() override;

  Status add_request(openai::GenerateRequest request, openai::OutputCallback on_output) override;
  void abort(const std::string& request_id) override;
  bool healthy() const override { return healthy_.load(); }
  openai::EngineStats stats() const override;

  const EngineCapacities& capacities() const { return capacities_; }
  size_t num_in_flight() const;
  // Waits until no request is in flight (SIGTERM drain); false when `timeout` passed first.
  bool drain(std::chrono::milliseconds timeout);
  // Stops the enginecore (SIGTERM, then SIGKILL after a grace period), ends requests still
  // in flight with kError, removes the run's shm segments. Idempotent; not thread-safe.
  void shutdown();

  // Why the engine is dead ("" while healthy).
  std::string dead_reason() const;
  pid_t enginecore_pid() const { return engine_pid_; }
  const std::vector<pid_t>& worker_pids() const { return worker_pids_; }
  const std::vector<std::string>& shm_segments() const { return segments_; }
  // Prompts sent through the prompt arena (longer than protocol::kInlineTokenLimit ids).
  uint64_t num_prompts_in_shm() const { return num_prompts_in_shm_.load(); }

 private:
  struct InFlight {
    std::shared_ptr<openai::OutputCallback> callback;
    bool wants_logprobs = false;
    // The request's pixel_values in media_arena_: freed once the engine finished it (the
    // engine loop never runs a step of a request after its final output).
    std::vector<ShmHandle> media_blocks;
  };

  ZmqEngineClient() = default;
  Status launch(const ZmqEngineClientOptions& options);
  void io_loop();
  void send_queued();
  void receive_outputs();
  void dispatch(protocol::EngineOutputs& outputs);
  void mark_dead(const std::string& reason);
  void fail_all(const std::string& reason);
  void wake();
  void remove_run_segments();

  std::optional<protocol::RunDir> run_dir_;
  std::string run_id_;
  std::unique_ptr<zmq::context_t> context_;
  std::optional<zmq::socket_t> router_, pull_;
  ChildProcess engine_;
  pid_t engine_pid_ = -1;
  std::string engine_identity_;
  std::vector<pid_t> worker_pids_;
  std::vector<std::string> segments_;
  // Large prompt arrays go here; the enginecore frees each block once read. Created before
  // the engine, removed with this client (its name carries our pid for stale cleanup).
  std::optional<Arena> prompt_arena_;
  std::atomic<uint64_t> num_prompts_in_shm_{0};
  // Preprocessed media (float32 pixel_values) of requests in flight; the workers read them.
  std::optional<Arena> media_arena_;
  Result<std::vector<protocol::MediaItem>> place_media(const std::vector<openai::MediaInput>& media,
                                                       std::vector<ShmHandle>& blocks);
  void free_media(const std::vector<ShmHandle>& blocks);
  EngineCapacities capacities_;
  int wake_fd_ = -1;
  std::thread io_thread_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> healthy_{false};
  bool shut_down_ = false;

  mutable std::mutex mu_;  // guards everything below
  std::condition_variable drained_;
  std::unordered_map<std::string, InFlight> in_flight_;
  std::deque<protocol::Message> send_queue_;
  openai::EngineStats stats_;
  std::string dead_reason_;
};

// The wire's sampling parameters for one engine request. kInvalidArgument / kUnimplemented
// for what the engine cannot do yet (allowed_token_ids, n != 1).
Result<protocol::SamplingParams> to_protocol_params(const openai::SamplingParams& params);
// One engine output as the OpenAI layer sees it.
openai::EngineOutput to_engine_output(const protocol::RequestOutput& output, double engine_time = 0);

}  // namespace k2::frontend
