// AttachedEngineClient: the EngineClient of API servers 1..N-1 of `serve --api-server-count
// N` (vLLM: every API server has its own input ROUTER and output PULL; every engine connects
// a DEALER and a PUSH to each). API server 0 launched the enginecores and told them our two
// ipc:// addresses in the handshake; this client binds them, waits for every rank's ReadyMsg
// (the first message each engine's DEALER sends us: its identity and capacities) and then
// works as ZmqEngineClient / DpEngineClient do, without owning any engine: requests go to the
// live rank with the least queue (waiting * 4 + running from the stats every engine publishes
// to every API server, plus the requests sent since), outputs come back on our PULL.
//
// Failure: each engine is watched through a pidfd (pidfd_open of the pid API server 0 gave
// us) and its EngineDead message. A dead rank makes healthy() false (/health 503) and ends
// the in-flight requests it held (all of them with request waves or a single engine). The
// engines belong to API server 0, which stops them; this process dies with it
// (PR_SET_PDEATHSIG, set up by the serve command).
//
// Prompts always travel inline (the prompt arena the engines read is API server 0's); media
// go through this process's own media arena, which the workers open by name.
//
// Owns the sockets, the media arena, the pidfds and the I/O thread. EngineClient methods are
// thread-safe; start(), shutdown() and the destructor belong to one owner.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "enginecore/protocol/messages.h"
#include "enginecore/protocol/zmq_channel.h"
#include "frontend/engine/dp_engine_client.h"
#include "frontend/engine/zmq_engine_client.h"
#include "frontend/openai/engine_client.h"
#include "shm/arena.h"
#include "shm/status.h"

namespace k2::frontend {

struct AttachedEngineClientOptions {
  std::string input_address;   // ipc:// ROUTER this API server binds
  std::string output_address;  // ipc:// PULL this API server binds
  std::vector<pid_t> engine_pids;  // index = data-parallel rank; its size is the rank count
  std::chrono::milliseconds ready_timeout{std::chrono::minutes(5)};
};

class AttachedEngineClient final : public openai::EngineClient {
 public:
  static Result<std::unique_ptr<AttachedEngineClient>> start(const AttachedEngineClientOptions& options);
  ~AttachedEngineClient() override;

  Status add_request(openai::GenerateRequest request, openai::OutputCallback on_output) override;
  void abort(const std::string& request_id) override;
  bool healthy() const override { return healthy_.load(); }
  openai::EngineStats stats() const override;  // the sum over ranks (kv_cache_usage: the mean)

  std::vector<DpRankStatus> rank_status() const;
  const EngineCapacities& capacities() const { return capacities_; }
  size_t num_in_flight() const;
  std::string dead_reason() const;
  // Ends requests still in flight with kError and closes the sockets. Idempotent.
  void shutdown();

 private:
  struct Rank {
    pid_t pid = -1;
    int pidfd = -1;
    bool alive = false;
    std::string identity;
    openai::EngineStats stats;
    int64_t sent_since_stats = 0;
    uint64_t routed = 0, finished = 0;
    int64_t in_flight = 0;
  };
  struct InFlight {
    std::shared_ptr<openai::OutputCallback> callback;
    uint32_t rank = 0;
    std::vector<ShmHandle> media_blocks;
  };

  AttachedEngineClient() = default;
  Status attach(const AttachedEngineClientOptions& options);
  Status await_ready(std::chrono::milliseconds timeout);
  Result<uint32_t> pick_rank();  // under mu_
  Result<std::vector<protocol::MediaItem>> place_media(const std::vector<openai::MediaInput>& media,
                                                       std::vector<ShmHandle>& blocks);
  void free_media(const std::vector<ShmHandle>& blocks);
  void io_loop();
  void send_queued();
  void receive_outputs();
  void dispatch(protocol::EngineOutputs& outputs);
  void rank_died(uint32_t rank, const std::string& reason);
  void fail(std::unordered_map<std::string, InFlight> failed, const std::string& reason);
  void wake();

  std::unique_ptr<zmq::context_t> context_;
  std::optional<zmq::socket_t> router_, pull_;
  std::optional<Arena> media_arena_;
  EngineCapacities capacities_;
  bool waves_ = false;
  int wake_fd_ = -1;
  std::thread io_thread_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> healthy_{false};
  bool shut_down_ = false;

  mutable std::mutex mu_;  // guards everything below and the Rank fields but pidfd
  std::vector<Rank> ranks_;
  uint32_t next_scan_ = 0;
  std::unordered_map<std::string, InFlight> in_flight_;
  std::deque<std::pair<uint32_t, protocol::Message>> send_queue_;
  std::string dead_reason_;
};

}  // namespace k2::frontend
