// ZmqEngineClient: the frontend's EngineClient over 1..N enginecore processes (vLLM V1's
// AsyncMPClient; with N data-parallel ranks its DPLBAsyncMPClient, internal load balancing).
// One engine is data parallelism of size 1: there is no other client.
//
// Two ways to make one, which differ only in what the client owns:
// - start(): API server 0 (or the only one). Makes a private run directory, binds one request
//   ROUTER and one output PULL shared by every rank (each engine's DEALER carries its rank as
//   identity, outputs name their engine_index) on ipc:// and, when some ranks live on other
//   nodes (--headless nodes, --data-parallel-size-local < size), also on tcp:// at
//   --data-parallel-address with the ports of protocol::dp_ports(). Spawns this node's
//   enginecores (which spawn their workers), answers every rank's HELLO (local ranks get the
//   shm arenas, remote ones everything inline) and returns once all ranks are READY; a rank
//   that has not said hello within hello_timeout (or went silent, or died, during startup)
//   fails start() with an error naming the missing ranks. For MoE models with N > 1 the
//   rank-0 enginecore runs the wave coordinator (enginecore/coordinator.h; with no rank on
//   this node, --data-parallel-size-local 0, this client runs it). With a
//   control-plane key file both sockets are CURVE servers (protocol/dp_transport.h).
// - attach(): API servers 1..N-1 of `serve --api-server-count N` (vLLM: every API server
//   has its own input ROUTER and output PULL; every engine connects a DEALER and a PUSH to
//   each). API server 0 launched the engines and told them our two ipc:// addresses; we
//   bind them and wait for each rank's ReadyMsg (the first message its DEALER sends). The
//   engines are not ours: they are watched through pidfds, never stopped. Prompts travel
//   inline (the prompt arena the engines read is API server 0's); media go through this
//   process's own media arena, which the workers open by name.
//
// Routing: each request goes to the live rank with the least queue (waiting * 4 + running
// from the stats every engine publishes with every step, plus the requests sent since);
// requests with media go to a rank on this node (the pixels live in shm). Aborts go to the
// rank that holds the request. One I/O thread owns the sockets: it sends what add_request /
// abort queued (any thread may call them; they take a mutex and poke an eventfd), receives
// EngineOutputs and calls each request's callback (never under the mutex).
//
// Failure: a local rank is watched through its pidfd (and its EngineDead message), a remote
// one through its heartbeats (protocol::kDpPeerTimeout). A dead rank makes healthy() false
// (/health 503) and ends its in-flight requests with kError at once; with request waves the
// other ranks would wait for it in their next all-reduce, so theirs are ended too. Nothing
// is retried: the deployment stays dead (new requests: kUnavailable) until restarted, as
// vLLM's. A dead rank we own is stopped and its shm segments removed.
//
// Owns: the sockets, the run directory, the arenas (prompts: started clients only; media),
// the I/O thread and, started clients only, the local enginecore processes. EngineClient
// methods and the accessors are thread-safe; start()/attach(), shutdown() and the destructor
// belong to one owner (spawn from a long-lived thread: PR_SET_PDEATHSIG fires when the
// spawning thread exits).
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
#include <utility>
#include <vector>

#include "enginecore/coordinator.h"
#include "enginecore/protocol/child_process.h"
#include "enginecore/protocol/dp_transport.h"
#include "enginecore/protocol/engine_config.h"
#include "enginecore/protocol/messages.h"
#include "enginecore/protocol/zmq_channel.h"
#include "frontend/engine/engine_wire.h"
#include "frontend/openai/engine_client.h"
#include "shm/arena.h"
#include "shm/status.h"

namespace k2::frontend {

// start(): how to launch the engines. The rank count follows the config as the enginecore
// reads it (protocol/dp_lb_mode.h): internal load balancing is N ranks behind this API server
// ([0, --data-parallel-size-local) on this node), hybrid this node's L (deployment-wide ranks
// S..S+L-1, all local), external or none one engine.
struct ZmqEngineClientOptions {
  EngineConfig config;
  // Default: k2serve-enginecore next to this process's executable.
  std::filesystem::path enginecore_binary;
  // Passed to the enginecores; default there: k2serve-worker next to the enginecore binary.
  std::filesystem::path worker_binary;
  std::chrono::milliseconds hello_timeout{std::chrono::minutes(5)};   // every rank's HELLO
  std::chrono::milliseconds ready_timeout{std::chrono::minutes(30)};  // each READY, weight load included
  // The bytes of every token id ("" for special tokens): the engine's structured outputs
  // need it. Empty: structured requests are refused.
  std::vector<std::string> vocabulary;
  std::string control_plane_key_file;  // CURVE keys for the sockets ("" = none)
  // --api-server-count > 1: the ipc:// input and output addresses of API servers 1.. (they
  // bind them); every local enginecore connects to them too. With remote ranks also their
  // tcp:// ones (protocol::api_server_ports), which the remote enginecores connect to.
  std::vector<std::string> extra_inputs, extra_outputs;
  std::vector<std::string> extra_tcp_inputs, extra_tcp_outputs;
};

// attach(): the engines another API server launched.
struct EngineAttachOptions {
  std::string input_address;       // ipc:// ROUTER this API server binds
  std::string output_address;      // ipc:// PULL this API server binds
  // With ranks on other nodes: the tcp:// endpoints of the same sockets ("" = none).
  std::string tcp_input_address, tcp_output_address;
  std::string control_plane_key_file;  // CURVE keys for both sockets ("" = none), as API server 0's
  // Index = data-parallel rank; its size is the rank count. 0: a rank on another node, watched
  // through its heartbeats instead of a pidfd.
  std::vector<pid_t> engine_pids;
  std::chrono::milliseconds ready_timeout{std::chrono::minutes(5)};
};

// One rank as the API server sees it (for /metrics and tests).
struct DpRankStatus {
  uint32_t rank = 0;  // deployment-wide (hybrid load balancing: this node's start rank + index)
  bool local = true;
  bool alive = true;
  openai::EngineStats stats;  // as last published by the engine
  uint64_t requests_routed = 0;
  uint64_t requests_finished = 0;
  int64_t in_flight = 0;
  pid_t pid = -1;  // local ranks
};

class ZmqEngineClient final : public openai::EngineClient {
 public:
  static Result<std::unique_ptr<ZmqEngineClient>> start(const ZmqEngineClientOptions& options);
  static Result<std::unique_ptr<ZmqEngineClient>> attach(const EngineAttachOptions& options);
  // shutdown() if not done yet.
  ~ZmqEngineClient() override;

  Status add_request(openai::GenerateRequest request, openai::OutputCallback on_output) override;
  void abort(const std::string& request_id) override;
  bool healthy() const override { return healthy_.load(); }
  // The sum over ranks (kv_cache_usage: the mean).
  openai::EngineStats stats() const override;

  std::vector<DpRankStatus> rank_status() const;
  const EngineCapacities& capacities() const { return capacities_; }
  bool waves() const { return waves_; }
  size_t num_in_flight() const;
  // Waits until no request is in flight (SIGTERM drain); false when `timeout` passed first.
  bool drain(std::chrono::milliseconds timeout);
  // Stops the enginecores we own (SIGTERM, SIGKILL after a grace period; remote ones stop by
  // themselves once our heartbeats stop), ends requests still in flight with kError,
  // removes the run's shm segments, closes the sockets. Idempotent; not thread-safe.
  void shutdown();
  // Why the deployment is dead ("" while healthy).
  std::string dead_reason() const;

  // Fixed once start()/attach() returned.
  pid_t enginecore_pid() const { return ranks_.empty() ? -1 : ranks_[0].pid; }
  std::vector<pid_t> worker_pids() const;  // of every rank
  std::vector<std::string> shm_segments() const;  // the engines', of every rank
  // Prompts sent through the prompt arena (longer than protocol::kInlineTokenLimit ids).
  uint64_t num_prompts_in_shm() const { return num_prompts_in_shm_.load(); }

 private:
  using Clock = std::chrono::steady_clock;
  struct Rank {
    uint32_t rank = 0;
    bool local = true;
    bool alive = false;
    bool joined = false;   // said hello (its identity is known)
    ChildProcess process;  // started clients, local ranks
    int pidfd = -1;        // attached clients: the engine another process owns
    pid_t pid = -1;        // local ranks
    std::string identity;
    std::vector<pid_t> worker_pids;
    std::vector<std::string> segments;
    Clock::time_point last_seen;
    openai::EngineStats stats;
    int64_t sent_since_stats = 0;  // optimistic queue growth until the next stats
    uint64_t routed = 0;
    uint64_t finished = 0;
    int64_t in_flight = 0;
  };
  struct InFlight {
    std::shared_ptr<openai::OutputCallback> callback;
    uint32_t rank = 0;
    // The request's pixel_values in media_arena_: freed once the engine finished it (the
    // engine loop never runs a step of a request after its final output).
    std::vector<ShmHandle> media_blocks;
  };
  struct Addresses {
    std::string ipc_input, ipc_output, ipc_coordinator;
    std::string tcp_input, tcp_output, tcp_coordinator;  // multi-node only
  };
  using Failed = std::unordered_map<std::string, InFlight>;

  ZmqEngineClient() = default;
  // Startup (zmq_engine_startup.cpp), before the I/O thread exists.
  static Result<std::unique_ptr<ZmqEngineClient>> started(std::unique_ptr<ZmqEngineClient> client, Status status);
  Status launch(const ZmqEngineClientOptions& options);
  Status attach_to(const EngineAttachOptions& options);
  Status create_arena(const std::string& name, bool prompts);
  Status bind_sockets(const EngineConfig& cfg, const std::string& key_file);
  Status spawn_local(const ZmqEngineClientOptions& options);
  Result<protocol::EngineConfigMsg> config_for(const protocol::Hello& hello, const std::string& config_json,
                                               const ShmHandle& vocabulary, const std::string& vocabulary_inline);
  Result<std::vector<protocol::HandshakePeer>> handshake(const ZmqEngineClientOptions& options,
                                                         const std::vector<ShmHandle>& vocabularies,
                                                         const std::string& vocabulary_inline);
  Status watch_startup();
  std::string rank_list(bool joined) const;
  void take_ready(uint32_t rank, const std::string& routing_id, const protocol::ReadyMsg& ready);
  Status await_ready(std::chrono::milliseconds timeout);
  void run_io_thread();
  std::string engine_name(uint32_t rank) const;
  std::string rank_name(uint32_t rank) const;

  // Requests and the I/O thread (zmq_engine_client.cpp).
  Result<uint32_t> pick_rank(bool needs_local);  // under mu_
  Result<std::vector<protocol::MediaItem>> place_media(const std::vector<openai::MediaInput>& media,
                                                       std::vector<ShmHandle>& blocks);
  void free_media(const std::vector<ShmHandle>& blocks);
  void io_loop();
  void send_queued();
  void receive_outputs();
  void dispatch(protocol::EngineOutputs& outputs);
  std::optional<uint32_t> rank_of(uint32_t engine_index) const;
  void check_ranks();
  bool rank_exited(Rank& rank, std::string& how);
  void rank_died(uint32_t rank, const std::string& reason);
  void all_ranks_died(const std::string& reason);
  void stop_owned_ranks();
  void remove_segments(const Rank& rank);
  void fail(Failed failed, const std::string& reason);
  void wake();

  bool owns_engines_ = false;  // start(): the local enginecores are ours to stop
  const char* log_name_ = "engine client";
  std::optional<protocol::RunDir> run_dir_;
  std::string run_id_;
  Addresses addresses_;
  std::vector<std::string> extra_inputs_, extra_outputs_, extra_tcp_inputs_, extra_tcp_outputs_;
  uint32_t num_local_ = 0, size_ = 0;  // this node holds ranks [0, num_local_)
  // Deployment-wide rank of ranks_[0] (hybrid load balancing: --data-parallel-start-rank), for
  // what logs, errors and /metrics call a rank; the engines and ranks_ count from 0.
  uint32_t first_rank_ = 0;
  bool multi_node_ = false;
  std::unique_ptr<zmq::context_t> context_;
  std::unique_ptr<protocol::ControlPlaneSecurity> security_;  // CURVE (or none); reset before context_
  std::optional<zmq::socket_t> router_, pull_;
  std::unique_ptr<engine::DpCoordinator> coordinator_;  // API-only head only; reset before context_
  // Large prompt arrays go here; the enginecore frees each block once read. Created before
  // the engines, removed with this client (its name carries our pid for stale cleanup).
  std::optional<Arena> prompt_arena_;
  std::atomic<uint64_t> num_prompts_in_shm_{0};
  // Preprocessed media (float32 pixel_values) of requests in flight; the workers read them.
  std::optional<Arena> media_arena_;
  EngineCapacities capacities_;
  bool waves_ = false;
  int wake_fd_ = -1;
  std::thread io_thread_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> healthy_{false};
  bool shut_down_ = false;
  Clock::time_point last_heartbeat_sent_;

  // Guards everything below and the Rank fields but process, pidfd, pid, local, worker_pids
  // and segments (fixed at startup or the I/O thread's own).
  mutable std::mutex mu_;
  std::condition_variable drained_;
  std::vector<Rank> ranks_;
  uint32_t next_scan_ = 0;  // rotating start of the balancer's scan
  std::unordered_map<std::string, InFlight> in_flight_;
  std::deque<std::pair<uint32_t, protocol::Message>> send_queue_;
  std::string dead_reason_;
};

}  // namespace k2::frontend
