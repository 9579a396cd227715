// ZmqEngineClient's startup: launching the enginecores (start) or attaching to those another
// API server launched (attach). Runs on the owner's thread before the I/O thread exists.
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <spdlog/spdlog.h>

#include "enginecore/protocol/dp_lb_mode.h"
#include "enginecore/protocol/token_payload.h"
#include "frontend/engine/zmq_engine_client.h"
#include "shm/segment.h"

namespace k2::frontend {
namespace {

using namespace std::chrono_literals;

constexpr uint64_t kPromptArenaId = 1;
constexpr size_t kPromptArenaBytes = size_t{256} << 20;
constexpr uint64_t kMediaArenaId = 2;
constexpr size_t kMediaArenaBytes = size_t{1} << 30;
constexpr auto kStartupProgressInterval = std::chrono::seconds(10);  // "still waiting for ranks" lines

int pidfd_of(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

}  // namespace

Result<std::unique_ptr<ZmqEngineClient>> ZmqEngineClient::start(const ZmqEngineClientOptions& options) {
  std::unique_ptr<ZmqEngineClient> client(new ZmqEngineClient());
  Status status = client->launch(options);
  return started(std::move(client), std::move(status));
}

Result<std::unique_ptr<ZmqEngineClient>> ZmqEngineClient::attach(const EngineAttachOptions& options) {
  std::unique_ptr<ZmqEngineClient> client(new ZmqEngineClient());
  Status status = client->attach_to(options);
  return started(std::move(client), std::move(status));
}

// A client whose startup failed still undoes what it did (processes, segments, sockets).
Result<std::unique_ptr<ZmqEngineClient>> ZmqEngineClient::started(std::unique_ptr<ZmqEngineClient> client,
                                                                  Status status) {
  if (!status.ok()) {
    client->shutdown();
    return status;
  }
  return client;
}

// Address space only: tmpfs pages exist once a prompt is written, and a full prompt arena
// sends the prompt inline instead.
Status ZmqEngineClient::create_arena(const std::string& name, bool prompts) {
  ArenaOptions arena;
  arena.run_id = run_id_;
  arena.name = name;
  arena.arena_id = prompts ? kPromptArenaId : kMediaArenaId;
  arena.bytes = prompts ? kPromptArenaBytes : kMediaArenaBytes;
  K2_ASSIGN_OR_RETURN(Arena created, Arena::create(arena));
  (prompts ? prompt_arena_ : media_arena_).emplace(std::move(created));
  return Status::ok_status();
}

Status ZmqEngineClient::launch(const ZmqEngineClientOptions& options) {
  const EngineConfig& cfg = options.config;
  owns_engines_ = true;
  // As the enginecores decide (dp_lb_mode.h): every rank with internal load balancing (some
  // of them maybe on --headless nodes), this node's L with hybrid, its one with external.
  K2_ASSIGN_OR_RETURN(const DpLayout layout, dp_layout(cfg));
  size_ = static_cast<uint32_t>(layout.ranks_behind);
  first_rank_ = static_cast<uint32_t>(layout.first_rank);
  num_local_ = layout.mode == DpLbMode::kInternal
                   ? static_cast<uint32_t>(cfg.data_parallel_size_local.value_or(cfg.data_parallel_size))
                   : size_;
  multi_node_ = num_local_ < size_;
  log_name_ = size_ == 1 ? "engine client" : "dp client";
  if (multi_node_ && options.extra_tcp_inputs.size() != options.extra_inputs.size())
    return invalid_argument("remote ranks need the tcp:// addresses of every API server");
  extra_inputs_ = options.extra_inputs;
  extra_outputs_ = options.extra_outputs;
  extra_tcp_inputs_ = options.extra_tcp_inputs;
  extra_tcp_outputs_ = options.extra_tcp_outputs;
  if (auto removed = cleanup_stale_segments(); removed.ok() && *removed > 0)
    spdlog::info("removed {} shm segments of dead processes", *removed);
  K2_ASSIGN_OR_RETURN(protocol::RunDir dir, protocol::RunDir::create());
  run_dir_.emplace(std::move(dir));
  run_id_ = make_run_id();
  K2_RETURN_IF_ERROR(create_arena("prompts", true));
  K2_RETURN_IF_ERROR(create_arena("media", false));
  // Each local engine frees the vocabulary block it read, so each gets its own copy.
  std::vector<ShmHandle> vocabularies;
  for (uint32_t i = 0; i < num_local_ && !options.vocabulary.empty(); ++i) {
    K2_ASSIGN_OR_RETURN(ShmHandle h, protocol::store_vocabulary(options.vocabulary, *prompt_arena_));
    vocabularies.push_back(h);
  }
  const std::string vocabulary_inline = multi_node_ ? protocol::encode_vocabulary(options.vocabulary) : "";
  ranks_.resize(size_);
  for (uint32_t r = 0; r < size_; ++r) {
    ranks_[r].rank = r;
    ranks_[r].local = r < num_local_;
  }
  K2_RETURN_IF_ERROR(bind_sockets(cfg, options.control_plane_key_file));
  // Where the wave coordinator lives: rank 0's enginecore when it is on this node; with an
  // API-only head (--data-parallel-size-local 0) this process, as vLLM's head runs its
  // DPCoordinator. Rank 0's engine is then on a headless node, whose address the other ranks
  // do not know, while --data-parallel-address (P + 2) is the one address they all reach.
  // Engines of a model without waves never connect: it then idles.
  if (num_local_ == 0) {
    K2_ASSIGN_OR_RETURN(coordinator_, engine::DpCoordinator::start(*context_, addresses_.tcp_coordinator, size_,
                                                                   *security_));
  }
  K2_RETURN_IF_ERROR(spawn_local(options));
  if (multi_node_)
    spdlog::info("waiting for {} remote ranks at {} ({} local{})", size_ - num_local_, addresses_.tcp_input, num_local_,
                 security_->curve() ? ", CURVE control plane" : "");
  K2_ASSIGN_OR_RETURN(std::vector<protocol::HandshakePeer> peers, handshake(options, vocabularies, vocabulary_inline));
  capacities_ = fresh_capacities();
  for (const auto& p : peers) take_ready(p.hello.rank, p.routing_id, p.ready);
  run_io_thread();
  if (size_ == 1) {
    spdlog::info("engine ready: pid {}, {} KV blocks of {} tokens, max_model_len {}", ranks_[0].pid,
                 capacities_.num_kv_blocks, capacities_.block_size, capacities_.max_model_len);
  } else {
    spdlog::info("{} data-parallel ranks ready ({} on this node{}): {} KV blocks in all, max_model_len {}", size_,
                 num_local_, waves_ ? ", MoE request waves" : "", capacities_.num_kv_blocks, capacities_.max_model_len);
  }
  return Status::ok_status();
}

Status ZmqEngineClient::bind_sockets(const EngineConfig& cfg, const std::string& key_file) {
  K2_ASSIGN_OR_RETURN(addresses_.ipc_input, run_dir_->ipc_address("input"));
  K2_ASSIGN_OR_RETURN(addresses_.ipc_output, run_dir_->ipc_address("output"));
  K2_ASSIGN_OR_RETURN(addresses_.ipc_coordinator, run_dir_->ipc_address("coordinator"));
  context_ = std::make_unique<zmq::context_t>(1);
  K2_ASSIGN_OR_RETURN(security_, protocol::ControlPlaneSecurity::load(key_file));
  K2_ASSIGN_OR_RETURN(zmq::socket_t router, protocol::make_socket(*context_, zmq::socket_type::router));
  K2_ASSIGN_OR_RETURN(zmq::socket_t pull, protocol::make_socket(*context_, zmq::socket_type::pull));
  // With a key file both sockets speak CURVE on all their endpoints, ipc:// included: see
  // protocol/dp_transport.h for why the local engines are not given sockets of their own.
  K2_RETURN_IF_ERROR(security_->secure_server(*context_, router, "requests"));
  K2_RETURN_IF_ERROR(security_->secure_server(*context_, pull, "outputs"));
  K2_RETURN_IF_ERROR(protocol::bind_endpoint(router, addresses_.ipc_input));
  K2_RETURN_IF_ERROR(protocol::bind_endpoint(pull, addresses_.ipc_output));
  if (multi_node_) {
    K2_ASSIGN_OR_RETURN(protocol::DpPorts ports, protocol::dp_ports(cfg.data_parallel_rpc_port));
    addresses_.tcp_input = protocol::tcp_address(cfg.data_parallel_address, ports.requests);
    addresses_.tcp_output = protocol::tcp_address(cfg.data_parallel_address, ports.outputs);
    addresses_.tcp_coordinator = protocol::tcp_address(cfg.data_parallel_address, ports.coordinator);
    K2_RETURN_IF_ERROR(protocol::bind_endpoint(router, addresses_.tcp_input));
    K2_RETURN_IF_ERROR(protocol::bind_endpoint(pull, addresses_.tcp_output));
  }
  router_.emplace(std::move(router));
  pull_.emplace(std::move(pull));
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0) return io_error(std::string("eventfd: ") + std::strerror(errno));
  return Status::ok_status();
}

Status ZmqEngineClient::spawn_local(const ZmqEngineClientOptions& options) {
  const std::filesystem::path binary = options.enginecore_binary.empty() ? self_exe_dir() / "k2serve-enginecore"
                                                                         : options.enginecore_binary;
  for (uint32_t i = 0; i < num_local_; ++i) {
    Rank& r = ranks_[i];
    std::vector<std::string> args = {"--handshake", addresses_.ipc_input, "--rank", std::to_string(r.rank),
                                     "--parent-pid", std::to_string(::getpid()), "--dp-local-index", std::to_string(i),
                                     "--dp-local-size", std::to_string(num_local_)};
    if (!options.worker_binary.empty()) args.insert(args.end(), {"--worker-binary", options.worker_binary.string()});
    if (!options.control_plane_key_file.empty())
      args.insert(args.end(), {"--control-plane-key-file", options.control_plane_key_file});
    K2_ASSIGN_OR_RETURN(r.process, ChildProcess::spawn(binary, args));
    r.pid = r.process.pid();
  }
  return Status::ok_status();
}

Result<protocol::EngineConfigMsg> ZmqEngineClient::config_for(const protocol::Hello& hello,
                                                              const std::string& config_json,
                                                              const ShmHandle& vocabulary,
                                                              const std::string& vocabulary_inline) {
  const bool local = hello.rank < num_local_;
  if (local != hello.local)
    return invalid_argument("rank " + std::to_string(hello.rank) + " joined as a " +
                            (hello.local ? "local" : "remote") + " engine but is expected " +
                            (local ? "on this node" : "on another node (--headless)"));
  if (size_ > 1)
    spdlog::info("rank {} said hello ({}, pid {})", first_rank_ + hello.rank, local ? "local" : "remote", hello.pid);
  // Rank 0's engine (or, with no local rank, launch()) binds it; the engines connect when the
  // model needs waves (MoE). A lone engine has no coordinator.
  const std::string coordinator = size_ == 1 ? "" : multi_node_ ? addresses_.tcp_coordinator : addresses_.ipc_coordinator;
  if (local) {
    std::vector<std::string> inputs{addresses_.ipc_input}, outputs{addresses_.ipc_output};
    inputs.insert(inputs.end(), extra_inputs_.begin(), extra_inputs_.end());
    outputs.insert(outputs.end(), extra_outputs_.begin(), extra_outputs_.end());
    return protocol::EngineConfigMsg{config_json, run_id_, inputs, outputs, hello.rank,
                                     prompt_arena_->name(), vocabulary, coordinator, ""};
  }
  std::vector<std::string> inputs{addresses_.tcp_input}, outputs{addresses_.tcp_output};
  inputs.insert(inputs.end(), extra_tcp_inputs_.begin(), extra_tcp_inputs_.end());
  outputs.insert(outputs.end(), extra_tcp_outputs_.begin(), extra_tcp_outputs_.end());
  return protocol::EngineConfigMsg{config_json, run_id_, inputs, outputs, hello.rank,
                                   "", ShmHandle{}, coordinator, vocabulary_inline};
}

// Every rank's HELLO -> config -> READY. Meanwhile local ranks are watched through their
// pidfds and remote ones through their heartbeats (which start right after their config),
// remote ranks get ours, and the ranks still missing are logged now and then and named when
// the wait ends.
Result<std::vector<protocol::HandshakePeer>> ZmqEngineClient::handshake(const ZmqEngineClientOptions& options,
                                                                        const std::vector<ShmHandle>& vocabularies,
                                                                        const std::string& vocabulary_inline) {
  protocol::HandshakeOptions hs;
  hs.expected_peers = size_;
  hs.expected_kind = protocol::ProcessKind::kEngineCore;
  hs.hello_timeout = options.hello_timeout;
  hs.ready_timeout = options.ready_timeout;
  const auto started = Clock::now();
  auto last_progress = started;
  hs.peers_alive = [&]() -> Status {
    K2_RETURN_IF_ERROR(watch_startup());
    if (size_ > 1 && Clock::now() - last_progress >= kStartupProgressInterval) {
      last_progress = Clock::now();
      const auto waited = std::chrono::duration_cast<std::chrono::seconds>(last_progress - started).count();
      spdlog::info("still waiting for data-parallel ranks {} after {} s (joined: {}; the wait for the first hello "
                   "of each ends after {} s)", rank_list(false), waited, rank_list(true),
                   std::chrono::duration_cast<std::chrono::seconds>(options.hello_timeout).count());
    }
    return Status::ok_status();
  };
  const std::string config_json = engine_config_table().to_json(options.config).dump();
  size_t next_vocabulary = 0;
  auto on_hello = [&](const protocol::Hello& hello) -> Result<protocol::EngineConfigMsg> {
    ShmHandle vocabulary{};
    if (hello.local && next_vocabulary < vocabularies.size()) vocabulary = vocabularies[next_vocabulary++];
    K2_ASSIGN_OR_RETURN(protocol::EngineConfigMsg msg, config_for(hello, config_json, vocabulary, vocabulary_inline));
    Rank& r = ranks_[hello.rank];
    r.joined = true;
    r.last_seen = Clock::now();
    r.identity = protocol::rank_identity(hello.rank);
    return msg;
  };
  auto peers = protocol::handshake_serve(*router_, hs, on_hello);
  if (!peers.ok() && size_ > 1)
    return peers.status().with_context("data-parallel ranks " + rank_list(false) + " never joined (joined: " +
                                       rank_list(true) + ")");
  return peers;
}

// During the handshake: a local rank that exited, a remote one that reported its death or
// went silent, ends the startup; joined remote ranks get our heartbeat.
Status ZmqEngineClient::watch_startup() {
  for (uint32_t i = 0; i < num_local_; ++i) {
    if (auto st = ranks_[i].process.try_wait())
      return unavailable(engine_name(i) + " exited during startup (" + describe_wait_status(*st) + ")");
  }
  if (!multi_node_) return Status::ok_status();
  while (true) {
    auto got = protocol::receive_valid(*pull_, 0ms, /*routed=*/false);
    if (!got.ok()) return got.status().with_context("output socket");
    if (!*got) break;
    if (auto* beat = std::get_if<protocol::DpControl>(&(*got)->message)) {
      if (beat->rank < size_) ranks_[beat->rank].last_seen = Clock::now();
    } else if (auto* dead = std::get_if<protocol::EngineDead>(&(*got)->message)) {
      return unavailable("rank " + std::to_string(dead->engine_index) + " failed during startup: " + dead->reason);
    }
  }
  const auto now = Clock::now();
  const bool beat = now - last_heartbeat_sent_ >= protocol::kDpHeartbeatInterval;
  if (beat) last_heartbeat_sent_ = now;
  for (Rank& r : ranks_) {
    if (r.local || !r.joined) continue;
    if (now - r.last_seen > protocol::kDpPeerTimeout)
      return unavailable("remote rank " + std::to_string(r.rank) + " went silent during startup (no heartbeat for " +
                         std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(now - r.last_seen).count()) +
                         " ms): its node is gone");
    if (beat) {
      const protocol::DpControl heartbeat{protocol::DpControlKind::kHeartbeat, r.rank, 0, 0, false, -1};
      (void)protocol::send(*router_, heartbeat, r.identity);  // an unreachable rank shows as silence
    }
  }
  return Status::ok_status();
}

// "[1, 3]": the ranks that joined the handshake (or, `joined` false, those that did not).
std::string ZmqEngineClient::rank_list(bool joined) const {
  std::string out = "[";
  for (const Rank& r : ranks_) {
    if (r.joined != joined) continue;
    if (out.size() > 1) out += ", ";
    out += std::to_string(first_rank_ + r.rank);
  }
  return out + "]";
}

void ZmqEngineClient::take_ready(uint32_t rank, const std::string& routing_id, const protocol::ReadyMsg& ready) {
  Rank& r = ranks_[rank];
  r.identity = routing_id;
  r.alive = true;
  r.joined = true;
  r.last_seen = Clock::now();
  r.segments = ready.shm_segments;
  ReadyFacts facts = add_ready(ready, rank, capacities_);
  r.worker_pids = std::move(facts.worker_pids);
  if (facts.dp_waves) waves_ = true;
}

Status ZmqEngineClient::attach_to(const EngineAttachOptions& options) {
  if (options.engine_pids.empty()) return invalid_argument("no engine to attach to");
  log_name_ = "attached client";
  size_ = num_local_ = static_cast<uint32_t>(options.engine_pids.size());
  ranks_.resize(size_);
  for (uint32_t r = 0; r < size_; ++r) {
    ranks_[r].rank = r;
    ranks_[r].local = options.engine_pids[r] != 0;
    if (!ranks_[r].local) continue;  // on another node: its heartbeats tell (check_ranks)
    ranks_[r].pid = options.engine_pids[r];
    ranks_[r].pidfd = pidfd_of(options.engine_pids[r]);
    if (ranks_[r].pidfd < 0)
      return unavailable("the enginecore of rank " + std::to_string(r) + " (pid " + std::to_string(ranks_[r].pid) +
                         ") is gone: " + std::strerror(errno));
  }
  run_id_ = make_run_id();
  K2_RETURN_IF_ERROR(create_arena("media", false));
  context_ = std::make_unique<zmq::context_t>(1);
  K2_ASSIGN_OR_RETURN(security_, protocol::ControlPlaneSecurity::load(options.control_plane_key_file));
  K2_ASSIGN_OR_RETURN(zmq::socket_t router, protocol::make_socket(*context_, zmq::socket_type::router));
  K2_ASSIGN_OR_RETURN(zmq::socket_t pull, protocol::make_socket(*context_, zmq::socket_type::pull));
  K2_RETURN_IF_ERROR(security_->secure_server(*context_, router, "requests"));
  K2_RETURN_IF_ERROR(security_->secure_server(*context_, pull, "outputs"));
  K2_RETURN_IF_ERROR(protocol::bind_endpoint(router, options.input_address));
  K2_RETURN_IF_ERROR(protocol::bind_endpoint(pull, options.output_address));
  if (!options.tcp_input_address.empty()) {
    K2_RETURN_IF_ERROR(protocol::bind_endpoint(router, options.tcp_input_address));
    K2_RETURN_IF_ERROR(protocol::bind_endpoint(pull, options.tcp_output_address));
  }
  router_.emplace(std::move(router));
  pull_.emplace(std::move(pull));
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0) return io_error(std::string("eventfd: ") + std::strerror(errno));
  K2_RETURN_IF_ERROR(await_ready(options.ready_timeout));
  run_io_thread();
  spdlog::info("attached to {} enginecore{}: max_model_len {}", size_, size_ == 1 ? "" : "s",
               capacities_.max_model_len);
  return Status::ok_status();
}

// Every rank's DEALER sends its ReadyMsg first; API server 0 only starts us once all ranks
// are READY, so what is missing here is a connection that never came.
Status ZmqEngineClient::await_ready(std::chrono::milliseconds timeout) {
  capacities_ = fresh_capacities();
  const auto deadline = Clock::now() + timeout;
  size_t joined = 0;
  while (joined < size_) {
    if (Clock::now() > deadline) return unavailable("not every enginecore connected to this API server in time");
    for (uint32_t r = 0; r < size_; ++r) {
      pollfd p{ranks_[r].pidfd, POLLIN, 0};
      if (ranks_[r].local && ::poll(&p, 1, 0) > 0)
        return unavailable("the enginecore of rank " + std::to_string(r) + " exited");
    }
    K2_ASSIGN_OR_RETURN(std::optional<protocol::Received> got, protocol::receive_valid(*router_, 100ms, /*routed=*/true));
    if (!got) continue;
    auto* ready = std::get_if<protocol::ReadyMsg>(&got->message);
    if (ready == nullptr || ready->rank >= size_ || ranks_[ready->rank].alive) {
      spdlog::warn("attached client: dropped an unexpected message while waiting for the engines");
      continue;
    }
    take_ready(ready->rank, got->routing_id, *ready);
    ++joined;
  }
  return Status::ok_status();
}

void ZmqEngineClient::run_io_thread() {
  healthy_ = true;
  last_heartbeat_sent_ = Clock::now();
  io_thread_ = std::thread([this] { io_loop(); });
}

// How logs and errors name a rank's engine ("the enginecore" when it is the only one).
std::string ZmqEngineClient::engine_name(uint32_t rank) const {
  return size_ == 1 ? "the enginecore" : "the enginecore of rank " + std::to_string(first_rank_ + rank);
}

std::string ZmqEngineClient::rank_name(uint32_t rank) const {
  return size_ == 1 ? "the enginecore" : "rank " + std::to_string(first_rank_ + rank);
}

}  // namespace k2::frontend
