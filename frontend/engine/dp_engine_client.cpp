#include "frontend/engine/dp_engine_client.h"

#include <signal.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "enginecore/protocol/dp_transport.h"
#include "enginecore/protocol/token_payload.h"
#include "shm/segment.h"

namespace k2::frontend {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr uint64_t kPromptArenaId = 1;
constexpr size_t kPromptArenaBytes = size_t{256} << 20;
constexpr uint64_t kMediaArenaId = 2;
constexpr size_t kMediaArenaBytes = size_t{1} << 30;
constexpr int64_t kWaitingWeight = 4;  // vLLM's DPLB score: waiting * 4 + running
constexpr auto kStartupProgressInterval = std::chrono::seconds(10);  // "still waiting for ranks" lines

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

void drain_eventfd(int fd) {
  uint64_t value = 0;
  while (::read(fd, &value, sizeof(value)) == static_cast<ssize_t>(sizeof(value))) {
  }
}

// `previous_load`: the rank's last expert-load totals (sent only when they change).
openai::EngineStats to_stats(const protocol::SchedulerStats& st,
                             std::shared_ptr<const openai::ExpertLoadTotals> previous_load) {
  return openai::EngineStats{st.num_running,          st.num_waiting,       st.kv_cache_usage,
                             st.prefix_cache_queries, st.prefix_cache_hits, st.num_preemptions,
                             st.mm_cache_queries,     st.mm_cache_hits,
                             openai::expert_load_after(std::move(previous_load), st.expert_load)};
}

}  // namespace

Result<std::unique_ptr<DpEngineClient>> DpEngineClient::start(const DpEngineClientOptions& options) {
  std::unique_ptr<DpEngineClient> client(new DpEngineClient());
  Status s = client->launch(options);
  if (!s.ok()) {
    client->shutdown();
    return s;
  }
  return client;
}

Status DpEngineClient::bind_sockets(const DpEngineClientOptions& options) {
  const EngineConfig& cfg = options.config;
  K2_ASSIGN_OR_RETURN(addresses_.ipc_input, run_dir_->ipc_address("input"));
  K2_ASSIGN_OR_RETURN(addresses_.ipc_output, run_dir_->ipc_address("output"));
  K2_ASSIGN_OR_RETURN(addresses_.ipc_coordinator, run_dir_->ipc_address("coordinator"));
  context_ = std::make_unique<zmq::context_t>(1);
  K2_ASSIGN_OR_RETURN(security_, protocol::ControlPlaneSecurity::load(options.control_plane_key_file));
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
  return Status::ok_status();
}

Status DpEngineClient::spawn_local(const DpEngineClientOptions& options) {
  const std::filesystem::path binary = options.enginecore_binary.empty() ? self_exe_dir() / "k2serve-enginecore"
                                                                         : options.enginecore_binary;
  for (uint32_t i = 0; i < num_local_; ++i) {
    Rank& r = ranks_[first_local_ + i];
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

Result<protocol::EngineConfigMsg> DpEngineClient::config_for(const protocol::Hello& hello,
                                                             const std::string& config_json,
                                                             const ShmHandle& vocabulary,
                                                             const std::string& vocabulary_inline) {
  const bool local = hello.rank >= first_local_ && hello.rank < first_local_ + num_local_;
  if (local != hello.local)
    return invalid_argument("rank " + std::to_string(hello.rank) + " joined as a " +
                            (hello.local ? "local" : "remote") + " engine but is expected " +
                            (local ? "on this node" : "on another node (--headless)"));
  spdlog::info("rank {} said hello ({}, pid {})", hello.rank, local ? "local" : "remote", hello.pid);
  // Rank 0's engine binds it when the model needs waves (MoE); the others connect.
  const std::string coordinator = multi_node_ ? addresses_.tcp_coordinator : addresses_.ipc_coordinator;
  if (local) {
    std::vector<std::string> inputs{addresses_.ipc_input}, outputs{addresses_.ipc_output};
    inputs.insert(inputs.end(), extra_inputs_.begin(), extra_inputs_.end());
    outputs.insert(outputs.end(), extra_outputs_.begin(), extra_outputs_.end());
    return protocol::EngineConfigMsg{config_json, run_id_, inputs, outputs, hello.rank,
                                     prompt_arena_->name(), vocabulary, coordinator, ""};
  }
  return protocol::EngineConfigMsg{config_json, run_id_, {addresses_.tcp_input}, {addresses_.tcp_output}, hello.rank,
                                   "", ShmHandle{}, coordinator, vocabulary_inline};
}

Status DpEngineClient::launch(const DpEngineClientOptions& options) {
  const EngineConfig& cfg = options.config;
  size_ = static_cast<uint32_t>(cfg.data_parallel_size);
  num_local_ = static_cast<uint32_t>(cfg.data_parallel_size_local.value_or(cfg.data_parallel_size));
  first_local_ = 0;  // the API server's node holds ranks [0, size_local)
  multi_node_ = num_local_ < size_;
  if (multi_node_ && !options.extra_inputs.empty())
    return unimplemented("--api-server-count > 1 with ranks on other nodes is not implemented yet");
  extra_inputs_ = options.extra_inputs;
  extra_outputs_ = options.extra_outputs;
  if (num_local_ == 0) return unimplemented("--data-parallel-size-local 0 (an API-only head node) is not supported yet");
  if (auto removed = cleanup_stale_segments(); removed.ok() && *removed > 0)
    spdlog::info("removed {} shm segments of dead processes", *removed);
  K2_ASSIGN_OR_RETURN(protocol::RunDir dir, protocol::RunDir::create());
  run_dir_.emplace(std::move(dir));
  run_id_ = make_run_id();
  ArenaOptions arena;
  arena.run_id = run_id_;
  arena.name = "prompts";
  arena.arena_id = kPromptArenaId;
  arena.bytes = kPromptArenaBytes;
  K2_ASSIGN_OR_RETURN(Arena prompts, Arena::create(arena));
  prompt_arena_.emplace(std::move(prompts));
  arena.name = "media";
  arena.arena_id = kMediaArenaId;
  arena.bytes = kMediaArenaBytes;
  K2_ASSIGN_OR_RETURN(Arena media, Arena::create(arena));
  media_arena_.emplace(std::move(media));
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
    ranks_[r].local = r >= first_local_ && r < first_local_ + num_local_;
  }
  K2_RETURN_IF_ERROR(bind_sockets(options));
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0) return io_error(std::string("eventfd: ") + std::strerror(errno));
  K2_RETURN_IF_ERROR(spawn_local(options));
  if (multi_node_)
    spdlog::info("waiting for {} remote ranks at {} ({} local{})", size_ - num_local_, addresses_.tcp_input, num_local_,
                 security_->curve() ? ", CURVE control plane" : "");
  K2_ASSIGN_OR_RETURN(std::vector<protocol::HandshakePeer> peers, handshake(options, vocabularies, vocabulary_inline));
  K2_RETURN_IF_ERROR(take_ready(peers));
  healthy_ = true;
  last_heartbeat_sent_ = Clock::now();
  io_thread_ = std::thread([this] { io_loop(); });
  spdlog::info("{} data-parallel ranks ready ({} on this node{}): {} KV blocks in all, max_model_len {}", size_,
               num_local_, waves_ ? ", MoE request waves" : "", capacities_.num_kv_blocks, capacities_.max_model_len);
  return Status::ok_status();
}

// Every rank's HELLO -> config -> READY. Meanwhile local ranks are watched through their
// pidfds and remote ones through their heartbeats (which start right after their config),
// remote ranks get ours, and the ranks still missing are logged now and then and named when
// the wait ends.
Result<std::vector<protocol::HandshakePeer>> DpEngineClient::handshake(const DpEngineClientOptions& options,
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
    if (Clock::now() - last_progress >= kStartupProgressInterval) {
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
  if (!peers.ok())
    return peers.status().with_context("data-parallel ranks " + rank_list(false) + " never joined (joined: " +
                                       rank_list(true) + ")");
  return peers;
}

// During the handshake: a local rank that exited, a remote one that reported its death or
// went silent, ends the startup; joined remote ranks get our heartbeat.
Status DpEngineClient::watch_startup() {
  for (Rank& r : ranks_) {
    if (!r.local) continue;
    if (auto st = r.process.try_wait())
      return unavailable("the enginecore of rank " + std::to_string(r.rank) + " exited during startup (" +
                         describe_wait_status(*st) + ")");
  }
  if (!multi_node_) return Status::ok_status();
  while (true) {
    auto got = protocol::receive_valid(*pull_, std::chrono::milliseconds(0), /*routed=*/false);
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
std::string DpEngineClient::rank_list(bool joined) const {
  std::string out = "[";
  for (const Rank& r : ranks_) {
    if (r.joined != joined) continue;
    if (out.size() > 1) out += ", ";
    out += std::to_string(r.rank);
  }
  return out + "]";
}

Status DpEngineClient::take_ready(const std::vector<protocol::HandshakePeer>& peers) {
  capacities_ = EngineCapacities{};
  capacities_.max_model_len = UINT32_MAX;
  for (const auto& p : peers) {
    Rank& r = ranks_[p.hello.rank];
    r.identity = p.routing_id;
    r.alive = true;
    r.last_seen = Clock::now();
    r.segments = p.ready.shm_segments;
    capacities_.max_model_len = std::min(capacities_.max_model_len, p.ready.max_model_len);
    capacities_.num_kv_blocks += p.ready.num_kv_blocks;
    capacities_.block_size = p.ready.block_size;
    capacities_.max_num_seqs = p.ready.max_num_seqs;
    capacities_.max_num_batched_tokens = p.ready.max_num_batched_tokens;
    nlohmann::json facts = nlohmann::json::parse(p.ready.config_json, nullptr, false);
    if (!facts.is_object()) continue;
    for (const auto& w : facts.value("worker_pids", nlohmann::json::array()))
      if (w.is_number_integer()) r.worker_pids.push_back(w.get<pid_t>());
    if (p.hello.rank == 0) {
      for (const auto& e : facts.value("eos_token_ids", nlohmann::json::array()))
        if (e.is_number_integer()) capacities_.eos_token_ids.push_back(e.get<int32_t>());
    }
    if (facts.value("dp_waves", false)) waves_ = true;
  }
  return Status::ok_status();
}

DpEngineClient::~DpEngineClient() { shutdown(); }

Result<uint32_t> DpEngineClient::pick_rank(bool needs_local) {
  std::optional<uint32_t> best;
  int64_t best_score = 0;
  for (uint32_t i = 0; i < size_; ++i) {
    const uint32_t r = (next_scan_ + i) % size_;
    const Rank& rank = ranks_[r];
    if (!rank.alive || (needs_local && !rank.local)) continue;
    const int64_t waiting = rank.stats.num_waiting + rank.sent_since_stats;
    const int64_t score = waiting * kWaitingWeight + rank.stats.num_running;
    if (!best || score < best_score) {
      best = r;
      best_score = score;
    }
  }
  next_scan_ = (next_scan_ + 1) % size_;
  if (!best) return unavailable(needs_local ? "no live data-parallel rank on this node" : "no live data-parallel rank");
  return *best;
}

Status DpEngineClient::add_request(openai::GenerateRequest request, openai::OutputCallback on_output) {
  K2_ASSIGN_OR_RETURN(protocol::SamplingParams params, to_protocol_params(request.sampling));
  if (request.prompt_ids.empty()) return invalid_argument("the prompt is empty");
  protocol::AddRequest add;
  add.request_id = request.request_id;
  add.params = std::move(params);
  add.arrival_time = now_seconds();
  add.priority = request.priority;
  add.cache_salt = request.cache_salt.value_or("");
  add.group_id = request.group_id.value_or("");
  if (request.structured) {
    add.structured = protocol::StructuredOutputParams{request.structured->json_schema, request.structured->json_object,
                                                      request.structured->reasoning_end_token_id};
  }
  std::vector<ShmHandle> media_blocks;
  if (!request.media.empty()) {
    K2_ASSIGN_OR_RETURN(add.media, place_media(request.media, media_blocks));
  }
  std::unique_lock lock(mu_);
  Status refused;
  Result<uint32_t> rank = pick_rank(!request.media.empty());
  if (!healthy_) {
    refused = unavailable("a data-parallel rank is down: " + dead_reason_);
  } else if (!rank.ok()) {
    refused = rank.status();
  } else if (in_flight_.contains(add.request_id)) {
    refused = invalid_argument("request id " + add.request_id + " is already in flight");
  }
  if (!refused.ok()) {
    lock.unlock();
    free_media(media_blocks);
    return refused;
  }
  Rank& target = ranks_[*rank];
  add.prompt = protocol::inline_tokens(std::move(request.prompt_ids));
  if (target.local) {
    // Large prompts travel through the prompt arena to engines on this node.
    Result<protocol::TokenIds> placed = protocol::place_tokens(add.prompt.ids, &*prompt_arena_);
    if (placed.ok()) add.prompt = std::move(placed).value();
  }
  ++target.sent_since_stats;
  ++target.routed;
  ++target.in_flight;
  in_flight_[add.request_id] =
      InFlight{std::make_shared<openai::OutputCallback>(std::move(on_output)), *rank, std::move(media_blocks)};
  send_queue_.emplace_back(*rank, std::move(add));
  lock.unlock();
  wake();
  return Status::ok_status();
}

Result<std::vector<protocol::MediaItem>> DpEngineClient::place_media(const std::vector<openai::MediaInput>& media,
                                                                      std::vector<ShmHandle>& blocks) {
  std::vector<protocol::MediaItem> items;
  for (const auto& m : media) {
    if (!m.pixel_values) return invalid_argument("a media item has no pixel values");
    const std::span<const std::byte> bytes = std::as_bytes(std::span<const float>(*m.pixel_values));
    Result<ShmHandle> h = media_arena_->store(bytes);
    if (!h.ok()) {
      free_media(blocks);
      blocks.clear();
      return unavailable("no room for the request's media in shared memory: " + h.status().message());
    }
    blocks.push_back(*h);
    items.push_back(protocol::MediaItem{media_arena_->name(), *h, m.grid_t, m.grid_h, m.grid_w, m.hash_low,
                                        m.hash_high, static_cast<uint32_t>(m.offset),
                                        static_cast<uint32_t>(m.num_tokens)});
  }
  return items;
}

void DpEngineClient::free_media(const std::vector<ShmHandle>& blocks) {
  for (const auto& h : blocks) {
    if (Status s = media_arena_->free(h); !s.ok()) spdlog::warn("dp client: media block not freed: {}", s.to_string());
  }
}

void DpEngineClient::abort(const std::string& request_id) {
  {
    std::lock_guard lock(mu_);
    auto it = in_flight_.find(request_id);
    if (it == in_flight_.end()) return;
    send_queue_.emplace_back(it->second.rank, protocol::AbortRequests{{request_id}});
  }
  wake();
}

openai::EngineStats DpEngineClient::stats() const {
  std::lock_guard lock(mu_);
  openai::EngineStats sum;
  for (const Rank& r : ranks_) {
    sum.num_running += r.stats.num_running;
    sum.num_waiting += r.stats.num_waiting;
    sum.kv_cache_usage += r.stats.kv_cache_usage / std::max<double>(1, static_cast<double>(ranks_.size()));
    sum.prefix_cache_queries += r.stats.prefix_cache_queries;
    sum.prefix_cache_hits += r.stats.prefix_cache_hits;
    sum.num_preemptions += r.stats.num_preemptions;
    sum.mm_cache_queries += r.stats.mm_cache_queries;
    sum.mm_cache_hits += r.stats.mm_cache_hits;
    sum.expert_load = openai::sum_expert_load(sum.expert_load, r.stats.expert_load);
  }
  return sum;
}

std::vector<DpRankStatus> DpEngineClient::rank_status() const {
  std::lock_guard lock(mu_);
  std::vector<DpRankStatus> out;
  for (const Rank& r : ranks_)
    out.push_back(DpRankStatus{r.rank, r.local, r.alive, r.stats, r.routed, r.finished, r.in_flight, r.pid});
  return out;
}

size_t DpEngineClient::num_in_flight() const {
  std::lock_guard lock(mu_);
  return in_flight_.size();
}

bool DpEngineClient::drain(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  return drained_.wait_for(lock, timeout, [this] { return in_flight_.empty(); });
}

std::string DpEngineClient::dead_reason() const {
  std::lock_guard lock(mu_);
  return dead_reason_;
}

void DpEngineClient::wake() {
  const uint64_t one = 1;
  if (wake_fd_ >= 0) (void)!::write(wake_fd_, &one, sizeof(one));
}

void DpEngineClient::io_loop() {
  while (!stopping_.load()) {
    std::vector<zmq::pollitem_t> items = {{nullptr, wake_fd_, ZMQ_POLLIN, 0}, {pull_->handle(), 0, ZMQ_POLLIN, 0}};
    for (Rank& r : ranks_) {
      bool alive;
      {
        std::lock_guard lock(mu_);
        alive = r.alive;
      }
      if (alive && r.local && r.process.pidfd() >= 0) items.push_back({nullptr, r.process.pidfd(), ZMQ_POLLIN, 0});
    }
    try {
      zmq::poll(items.data(), items.size(), 100ms);
    } catch (const zmq::error_t& e) {
      if (e.num() != EINTR) {
        spdlog::error("dp client: poll failed: {}", e.what());
        for (uint32_t r = 0; r < size_; ++r) rank_died(r, std::string("poll failed: ") + e.what());
        return;
      }
    }
    if (items[0].revents & ZMQ_POLLIN) drain_eventfd(wake_fd_);
    receive_outputs();
    send_queued();
    check_ranks();
  }
}

void DpEngineClient::send_queued() {
  std::deque<std::pair<uint32_t, protocol::Message>> batch;
  {
    std::lock_guard lock(mu_);
    batch.swap(send_queue_);
  }
  for (const auto& [rank, m] : batch) {
    std::string identity;
    {
      std::lock_guard lock(mu_);
      if (!ranks_[rank].alive) continue;  // its requests were failed already
      identity = ranks_[rank].identity;
    }
    if (Status s = protocol::send(*router_, m, identity); !s.ok())
      rank_died(rank, "cannot reach rank " + std::to_string(rank) + ": " + s.to_string());
  }
}

void DpEngineClient::receive_outputs() {
  while (true) {
    auto got = protocol::receive_valid(*pull_, 0ms, /*routed=*/false);
    if (!got.ok()) {
      for (uint32_t r = 0; r < size_; ++r) rank_died(r, "output socket failed: " + got.status().to_string());
      return;
    }
    if (!*got) return;
    if (auto* outputs = std::get_if<protocol::EngineOutputs>(&(*got)->message)) {
      dispatch(*outputs);
    } else if (auto* beat = std::get_if<protocol::DpControl>(&(*got)->message)) {
      std::lock_guard lock(mu_);
      if (beat->rank < size_) ranks_[beat->rank].last_seen = Clock::now();
    } else if (auto* dead = std::get_if<protocol::EngineDead>(&(*got)->message)) {
      if (dead->engine_index < size_) rank_died(dead->engine_index, "rank " + std::to_string(dead->engine_index) + " died: " + dead->reason);
    }
  }
}

void DpEngineClient::dispatch(protocol::EngineOutputs& outputs) {
  std::vector<std::pair<std::shared_ptr<openai::OutputCallback>, openai::EngineOutput>> calls;
  {
    std::lock_guard lock(mu_);
    if (outputs.engine_index >= size_) return;
    Rank& rank = ranks_[outputs.engine_index];
    rank.last_seen = Clock::now();
    if (outputs.scheduler_stats) {
      rank.stats = to_stats(*outputs.scheduler_stats, rank.stats.expert_load);
      rank.sent_since_stats = 0;
    }
    for (const auto& o : outputs.outputs) {
      auto it = in_flight_.find(o.request_id);
      if (it == in_flight_.end()) continue;
      calls.emplace_back(it->second.callback, to_engine_output(o, outputs.timestamp));
      if (o.finish_reason != protocol::FinishReason::kNone) {
        free_media(it->second.media_blocks);
        ++rank.finished;
        --rank.in_flight;
        in_flight_.erase(it);
      }
    }
    if (in_flight_.empty()) drained_.notify_all();
  }
  for (auto& [callback, output] : calls) (*callback)(std::move(output));
}

// Local ranks: their pidfd; remote ranks: their heartbeats (and ours to them, so a headless
// engine notices a dead API server).
void DpEngineClient::check_ranks() {
  const auto now = Clock::now();
  const bool beat = now - last_heartbeat_sent_ >= protocol::kDpHeartbeatInterval;
  if (beat) last_heartbeat_sent_ = now;
  for (uint32_t i = 0; i < size_; ++i) {
    Rank& r = ranks_[i];
    std::string identity;
    Clock::time_point seen;
    {
      std::lock_guard lock(mu_);
      if (!r.alive) continue;
      identity = r.identity;
      seen = r.last_seen;
    }
    if (r.local) {
      if (auto st = r.process.try_wait())
        rank_died(i, "the enginecore of rank " + std::to_string(i) + " exited (" + describe_wait_status(*st) + ")");
      continue;
    }
    if (now - seen > protocol::kDpPeerTimeout) {
      rank_died(i, "remote rank " + std::to_string(i) + " is silent (no heartbeat for " +
                       std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(now - seen).count()) +
                       " ms): its node is gone");
      continue;
    }
    if (beat) {
      const protocol::DpControl heartbeat{protocol::DpControlKind::kHeartbeat, i, 0, 0, false, -1};
      if (Status s = protocol::send(*router_, heartbeat, identity); !s.ok())
        rank_died(i, "cannot reach remote rank " + std::to_string(i) + ": " + s.to_string());
    }
  }
}

void DpEngineClient::rank_died(uint32_t rank, const std::string& reason) {
  std::unordered_map<std::string, InFlight> failed;
  {
    std::lock_guard lock(mu_);
    Rank& r = ranks_[rank];
    if (!r.alive) return;
    r.alive = false;
    healthy_ = false;
    if (dead_reason_.empty()) dead_reason_ = reason;
    // With waves the other ranks would block in their next all-reduce with the dead one.
    for (auto it = in_flight_.begin(); it != in_flight_.end();) {
      if (waves_ || it->second.rank == rank) {
        ranks_[it->second.rank].in_flight--;
        failed.insert(std::move(*it));
        it = in_flight_.erase(it);
      } else {
        ++it;
      }
    }
    if (in_flight_.empty()) drained_.notify_all();
  }
  spdlog::error("dp client: {}; /health now answers 503{}", reason,
                waves_ ? "; the other ranks' requests fail too (MoE ranks step together)" : "");
  fail(std::move(failed), reason);
  Rank& r = ranks_[rank];
  if (r.local) {
    r.process.signal(SIGKILL);
    (void)r.process.terminate(1000ms);
    for (const auto& name : r.segments) ::shm_unlink(name.c_str());
    if (r.pid > 0) (void)remove_segments_of(r.pid);
    for (pid_t pid : r.worker_pids) (void)remove_segments_of(pid);
  }
}

void DpEngineClient::fail(std::unordered_map<std::string, InFlight> failed, const std::string& reason) {
  for (auto& [id, f] : failed) {
    if (media_arena_) free_media(f.media_blocks);
    openai::EngineOutput out;
    out.finish_reason = openai::FinishReason::kError;
    out.error = reason;
    (*f.callback)(std::move(out));
  }
}

void DpEngineClient::shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  stopping_ = true;
  wake();
  if (io_thread_.joinable()) io_thread_.join();
  healthy_ = false;
  for (Rank& r : ranks_)
    if (r.local && r.pid > 0) r.process.signal(SIGTERM);
  for (Rank& r : ranks_) {
    if (!r.local || r.pid <= 0) continue;
    const int st = r.process.terminate(10000ms);
    if (WIFSIGNALED(st) || WEXITSTATUS(st) != 0)
      spdlog::info("dp client: the enginecore of rank {} ended with {}", r.rank, describe_wait_status(st));
    for (const auto& name : r.segments) ::shm_unlink(name.c_str());
    (void)remove_segments_of(r.pid);
    for (pid_t pid : r.worker_pids) (void)remove_segments_of(pid);
  }
  std::unordered_map<std::string, InFlight> left;
  {
    std::lock_guard lock(mu_);
    if (dead_reason_.empty()) dead_reason_ = "the engines were shut down";
    left.swap(in_flight_);
    send_queue_.clear();
    drained_.notify_all();
  }
  fail(std::move(left), "the engines were shut down");
  router_.reset();
  pull_.reset();
  security_.reset();  // its authenticator before the context it serves
  context_.reset();
  if (wake_fd_ >= 0) ::close(wake_fd_);
  wake_fd_ = -1;
}

}  // namespace k2::frontend
