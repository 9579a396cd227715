// DpEngineClient: the frontend's EngineClient over N data-parallel enginecores behind one
// API server (vLLM's DPLBAsyncMPClient, internal load balancing).
//
// start() binds one request ROUTER and one output PULL shared by every rank (as vLLM: each
// engine's DEALER carries its rank as identity, outputs name their engine_index), on ipc://
// in a private run directory and, when some ranks live on other nodes (--headless nodes,
// --data-parallel-size-local < size), also on tcp:// at --data-parallel-address with the
// ports of protocol::dp_ports(). It spawns this node's enginecores, answers every rank's
// HELLO (local ranks get the shm arenas, remote ones get everything inline), and returns
// once all N ranks are READY; a rank that has not said hello within hello_timeout (or went
// silent, or died, during startup) fails start() with an error naming the missing ranks,
// which are also logged every 10 s while waited for. For MoE models the rank-0 enginecore
// runs the wave coordinator (enginecore/coordinator.h); its address is handed out in the
// handshake. With a control-plane key file both sockets are CURVE servers (see
// protocol/dp_transport.h); refused peers are logged and never become ranks.
//
// Routing: each request goes to the live rank with the least queue (waiting * 4 + running
// from the stats the engines publish with every step, plus the requests sent since), as
// vLLM's balancer; requests with media go to a rank on this node (the pixels live in shm).
// Aborts go to the rank that holds the request.
//
// Failure: a local rank is watched through its pidfd, a remote one through its heartbeats
// (protocol::kDpPeerTimeout). A dead rank makes healthy() false (/health 503) and ends its
// in-flight requests with kError at once; with request waves the other ranks would wait for
// it in their next all-reduce, so theirs are ended too. Nothing is retried: the deployment
// stays dead (new requests: kUnavailable, 503) until the operator restarts it, as vLLM's.
//
// Owns the local enginecore processes, the sockets, the run directory, the arenas and the
// I/O thread. EngineClient methods are thread-safe; start(), shutdown() and the destructor
// belong to one owner (spawn from a long-lived thread: PR_SET_PDEATHSIG).
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

#include "enginecore/protocol/child_process.h"
#include "enginecore/protocol/dp_transport.h"
#include "enginecore/protocol/engine_config.h"
#include "enginecore/protocol/messages.h"
#include "enginecore/protocol/zmq_channel.h"
#include "frontend/engine/zmq_engine_client.h"
#include "frontend/openai/engine_client.h"
#include "shm/arena.h"
#include "shm/status.h"

namespace k2::frontend {

struct DpEngineClientOptions {
  EngineConfig config;
  std::filesystem::path enginecore_binary;  // default: k2serve-enginecore next to this process
  std::filesystem::path worker_binary;      // passed to the enginecores
  std::chrono::milliseconds hello_timeout{std::chrono::minutes(5)};   // every rank's HELLO
  std::chrono::milliseconds ready_timeout{std::chrono::minutes(30)};  // each rank's READY
  std::vector<std::string> vocabulary;      // see ZmqEngineClientOptions
  std::string control_plane_key_file;       // CURVE keys for tcp:// sockets ("" = none)
  // --api-server-count > 1: the ipc:// input and output addresses of API servers 1.. (they
  // bind them); every local rank connects to them too. Not with remote ranks.
  std::vector<std::string> extra_inputs, extra_outputs;
};

// One rank as the API server sees it (for /metrics and tests).
struct DpRankStatus {
  uint32_t rank = 0;
  bool local = true;
  bool alive = true;
  openai::EngineStats stats;  // as last published by the engine
  uint64_t requests_routed = 0;
  uint64_t requests_finished = 0;
  int64_t in_flight = 0;
  pid_t pid = -1;  // local ranks
};

class DpEngineClient final : public openai::EngineClient {
 public:
  static Result<std::unique_ptr<DpEngineClient>> start(const DpEngineClientOptions& options);
  ~DpEngineClient() override;

  Status add_request(openai::GenerateRequest request, openai::OutputCallback on_output) override;
  void abort(const std::string& request_id) override;
  bool healthy() const override { return healthy_.load(); }
  // The sum over ranks (kv_cache_usage: the mean).
  openai::EngineStats stats() const override;

  std::vector<DpRankStatus> rank_status() const;
  // min(max_model_len), sum of KV blocks (as vLLM), rank 0's stop ids.
  const EngineCapacities& capacities() const { return capacities_; }
  bool waves() const { return waves_; }
  size_t num_in_flight() const;
  bool drain(std::chrono::milliseconds timeout);
  // Stops the local enginecores, ends requests in flight with kError, removes the run's
  // shm segments. Remote enginecores stop on their own once the heartbeats stop.
  void shutdown();
  std::string dead_reason() const;

 private:
  struct Rank {
    uint32_t rank = 0;
    bool local = true;
    bool alive = false;
    bool joined = false;  // said hello (its identity is known)
    ChildProcess process;  // local ranks
    pid_t pid = -1;
    std::string identity;
    std::vector<pid_t> worker_pids;
    std::vector<std::string> segments;
    std::chrono::steady_clock::time_point last_seen;
    openai::EngineStats stats;
    int64_t sent_since_stats = 0;  // optimistic queue growth until the next stats
    uint64_t routed = 0;
    uint64_t finished = 0;
    int64_t in_flight = 0;
  };
  struct InFlight {
    std::shared_ptr<openai::OutputCallback> callback;
    uint32_t rank = 0;
    std::vector<ShmHandle> media_blocks;
  };
  struct Addresses {
    std::string ipc_input, ipc_output, ipc_coordinator;
    std::string tcp_input, tcp_output, tcp_coordinator;  // multi-node only
  };

  DpEngineClient() = default;
  Status launch(const DpEngineClientOptions& options);
  Status bind_sockets(const DpEngineClientOptions& options);
  Status spawn_local(const DpEngineClientOptions& options);
  Result<protocol::EngineConfigMsg> config_for(const protocol::Hello& hello, const std::string& config_json,
                                               const ShmHandle& vocabulary, const std::string& vocabulary_inline);
  Result<std::vector<protocol::HandshakePeer>> handshake(const DpEngineClientOptions& options,
                                                         const std::vector<ShmHandle>& vocabularies,
                                                         const std::string& vocabulary_inline);
  Status watch_startup();
  std::string rank_list(bool joined) const;
  Status take_ready(const std::vector<protocol::HandshakePeer>& peers);
  Result<uint32_t> pick_rank(bool needs_local);  // under mu_
  Result<std::vector<protocol::MediaItem>> place_media(const std::vector<openai::MediaInput>& media,
                                                       std::vector<ShmHandle>& blocks);
  void free_media(const std::vector<ShmHandle>& blocks);
  void io_loop();
  void send_queued();
  void receive_outputs();
  void dispatch(protocol::EngineOutputs& outputs);
  void check_ranks();
  void rank_died(uint32_t rank, const std::string& reason);
  void fail(std::unordered_map<std::string, InFlight> failed, const std::string& reason);
  void wake();

  std::optional<protocol::RunDir> run_dir_;
  std::string run_id_;
  Addresses addresses_;
  std::vector<std::string> extra_inputs_, extra_outputs_;
  uint32_t first_local_ = 0, num_local_ = 0, size_ = 0;
  bool multi_node_ = false;
  std::unique_ptr<zmq::context_t> context_;
  std::unique_ptr<protocol::ControlPlaneSecurity> security_;  // CURVE (or none); reset before context_
  std::optional<zmq::socket_t> router_, pull_;
  std::optional<Arena> prompt_arena_, media_arena_;
  EngineCapacities capacities_;
  bool waves_ = false;
  int wake_fd_ = -1;
  std::thread io_thread_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> healthy_{false};
  bool shut_down_ = false;
  std::chrono::steady_clock::time_point last_heartbeat_sent_;

  mutable std::mutex mu_;  // guards everything below and the Rank fields other than process
  std::condition_variable drained_;
  std::vector<Rank> ranks_;
  uint32_t next_scan_ = 0;  // rotating start of the balancer's scan
  std::unordered_map<std::string, InFlight> in_flight_;
  std::deque<std::pair<uint32_t, protocol::Message>> send_queue_;
  std::string dead_reason_;
};

}  // namespace k2::frontend
