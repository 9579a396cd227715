#include "frontend/engine/attached_engine_client.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <span>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "enginecore/protocol/token_payload.h"
#include "shm/segment.h"

namespace k2::frontend {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr uint64_t kMediaArenaId = 2;
constexpr size_t kMediaArenaBytes = size_t{1} << 30;
constexpr int64_t kWaitingWeight = 4;  // as DpEngineClient (vLLM's DPLB score)

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

void drain_eventfd(int fd) {
  uint64_t value = 0;
  while (::read(fd, &value, sizeof(value)) == static_cast<ssize_t>(sizeof(value))) {
  }
}

int pidfd_of(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

}  // namespace

Result<std::unique_ptr<AttachedEngineClient>> AttachedEngineClient::start(const AttachedEngineClientOptions& options) {
  std::unique_ptr<AttachedEngineClient> client(new AttachedEngineClient());
  Status s = client->attach(options);
  if (!s.ok()) {
    client->shutdown();
    return s;
  }
  return client;
}

Status AttachedEngineClient::attach(const AttachedEngineClientOptions& options) {
  if (options.engine_pids.empty()) return invalid_argument("no engine to attach to");
  ranks_.resize(options.engine_pids.size());
  for (size_t r = 0; r < ranks_.size(); ++r) {
    ranks_[r].pid = options.engine_pids[r];
    ranks_[r].pidfd = pidfd_of(options.engine_pids[r]);
    if (ranks_[r].pidfd < 0)
      return unavailable("the enginecore of rank " + std::to_string(r) + " (pid " + std::to_string(ranks_[r].pid) +
                         ") is gone: " + std::strerror(errno));
  }
  ArenaOptions arena;
  arena.run_id = make_run_id();
  arena.name = "media";
  arena.arena_id = kMediaArenaId;
  arena.bytes = kMediaArenaBytes;
  K2_ASSIGN_OR_RETURN(Arena media, Arena::create(arena));
  media_arena_.emplace(std::move(media));
  context_ = std::make_unique<zmq::context_t>(1);
  K2_ASSIGN_OR_RETURN(zmq::socket_t router, protocol::make_socket(*context_, zmq::socket_type::router));
  K2_RETURN_IF_ERROR(protocol::bind_endpoint(router, options.input_address));
  K2_ASSIGN_OR_RETURN(zmq::socket_t pull, protocol::make_socket(*context_, zmq::socket_type::pull));
  K2_RETURN_IF_ERROR(protocol::bind_endpoint(pull, options.output_address));
  router_.emplace(std::move(router));
  pull_.emplace(std::move(pull));
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0) return io_error(std::string("eventfd: ") + std::strerror(errno));
  K2_RETURN_IF_ERROR(await_ready(options.ready_timeout));
  healthy_ = true;
  io_thread_ = std::thread([this] { io_loop(); });
  spdlog::info("attached to {} enginecore{}: max_model_len {}", ranks_.size(), ranks_.size() == 1 ? "" : "s",
               capacities_.max_model_len);
  return Status::ok_status();
}

// Every rank's DEALER sends its ReadyMsg first; API server 0 only starts us once all ranks
// are READY, so what is missing here is a connection that never came.
Status AttachedEngineClient::await_ready(std::chrono::milliseconds timeout) {
  capacities_ = EngineCapacities{};
  capacities_.max_model_len = UINT32_MAX;
  const auto deadline = Clock::now() + timeout;
  size_t joined = 0;
  while (joined < ranks_.size()) {
    if (Clock::now() > deadline) return unavailable("not every enginecore connected to this API server in time");
    for (size_t r = 0; r < ranks_.size(); ++r) {
      pollfd p{ranks_[r].pidfd, POLLIN, 0};
      if (::poll(&p, 1, 0) > 0) return unavailable("the enginecore of rank " + std::to_string(r) + " exited");
    }
    K2_ASSIGN_OR_RETURN(std::optional<protocol::Received> got, protocol::receive_valid(*router_, 100ms, /*routed=*/true));
    if (!got) continue;
    auto* ready = std::get_if<protocol::ReadyMsg>(&got->message);
    if (ready == nullptr || ready->rank >= ranks_.size() || ranks_[ready->rank].alive) {
      spdlog::warn("attached client: dropped an unexpected message while waiting for the engines");
      continue;
    }
    Rank& rank = ranks_[ready->rank];
    rank.identity = got->routing_id;
    rank.alive = true;
    ++joined;
    capacities_.max_model_len = std::min(capacities_.max_model_len, ready->max_model_len);
    capacities_.num_kv_blocks += ready->num_kv_blocks;
    capacities_.block_size = ready->block_size;
    capacities_.max_num_seqs = ready->max_num_seqs;
    capacities_.max_num_batched_tokens = ready->max_num_batched_tokens;
    nlohmann::json facts = nlohmann::json::parse(ready->config_json, nullptr, false);
    if (!facts.is_object()) continue;
    if (ready->rank == 0) {
      for (const auto& e : facts.value("eos_token_ids", nlohmann::json::array()))
        if (e.is_number_integer()) capacities_.eos_token_ids.push_back(e.get<int32_t>());
    }
    if (facts.value("dp_waves", false)) waves_ = true;
  }
  return Status::ok_status();
}

AttachedEngineClient::~AttachedEngineClient() { shutdown(); }

Result<uint32_t> AttachedEngineClient::pick_rank() {
  const uint32_t size = static_cast<uint32_t>(ranks_.size());
  std::optional<uint32_t> best;
  int64_t best_score = 0;
  for (uint32_t i = 0; i < size; ++i) {
    const uint32_t r = (next_scan_ + i) % size;
    const Rank& rank = ranks_[r];
    if (!rank.alive) continue;
    const int64_t score = (rank.stats.num_waiting + rank.sent_since_stats) * kWaitingWeight + rank.stats.num_running;
    if (!best || score < best_score) {
      best = r;
      best_score = score;
    }
  }
  next_scan_ = (next_scan_ + 1) % size;
  if (!best) return unavailable("no live enginecore");
  return *best;
}

Status AttachedEngineClient::add_request(openai::GenerateRequest request, openai::OutputCallback on_output) {
  K2_ASSIGN_OR_RETURN(protocol::SamplingParams params, to_protocol_params(request.sampling));
  if (request.prompt_ids.empty()) return invalid_argument("the prompt is empty");
  protocol::AddRequest add;
  add.request_id = request.request_id;
  add.prompt = protocol::inline_tokens(std::move(request.prompt_ids));
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
  Result<uint32_t> rank = pick_rank();
  if (!healthy_) {
    refused = unavailable("the engine is not running: " + dead_reason_);
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

Result<std::vector<protocol::MediaItem>> AttachedEngineClient::place_media(const std::vector<openai::MediaInput>& media,
                                                                            std::vector<ShmHandle>& blocks) {
  std::vector<protocol::MediaItem> items;
  for (const auto& m : media) {
    if (!m.pixel_values) return invalid_argument("a media item has no pixel values");
    Result<ShmHandle> h = media_arena_->store(std::as_bytes(std::span<const float>(*m.pixel_values)));
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

void AttachedEngineClient::free_media(const std::vector<ShmHandle>& blocks) {
  for (const auto& h : blocks) {
    if (Status s = media_arena_->free(h); !s.ok()) spdlog::warn("attached client: media block not freed: {}", s.to_string());
  }
}

void AttachedEngineClient::abort(const std::string& request_id) {
  {
    std::lock_guard lock(mu_);
    auto it = in_flight_.find(request_id);
    if (it == in_flight_.end()) return;
    send_queue_.emplace_back(it->second.rank, protocol::AbortRequests{{request_id}});
  }
  wake();
}

openai::EngineStats AttachedEngineClient::stats() const {
  std::lock_guard lock(mu_);
  openai::EngineStats sum;
  for (const Rank& r : ranks_) {
    sum.num_running += r.stats.num_running;
    sum.num_waiting += r.stats.num_waiting;
    sum.kv_cache_usage += r.stats.kv_cache_usage / static_cast<double>(ranks_.size());
    sum.prefix_cache_queries += r.stats.prefix_cache_queries;
    sum.prefix_cache_hits += r.stats.prefix_cache_hits;
    sum.num_preemptions += r.stats.num_preemptions;
    sum.mm_cache_queries += r.stats.mm_cache_queries;
    sum.mm_cache_hits += r.stats.mm_cache_hits;
    sum.expert_load = openai::sum_expert_load(sum.expert_load, r.stats.expert_load);
  }
  return sum;
}

std::vector<DpRankStatus> AttachedEngineClient::rank_status() const {
  std::lock_guard lock(mu_);
  std::vector<DpRankStatus> out;
  for (uint32_t i = 0; i < ranks_.size(); ++i) {
    const Rank& r = ranks_[i];
    out.push_back(DpRankStatus{i, true, r.alive, r.stats, r.routed, r.finished, r.in_flight, r.pid});
  }
  return out;
}

size_t AttachedEngineClient::num_in_flight() const {
  std::lock_guard lock(mu_);
  return in_flight_.size();
}

std::string AttachedEngineClient::dead_reason() const {
  std::lock_guard lock(mu_);
  return dead_reason_;
}

void AttachedEngineClient::wake() {
  const uint64_t one = 1;
  if (wake_fd_ >= 0) (void)!::write(wake_fd_, &one, sizeof(one));
}

void AttachedEngineClient::io_loop() {
  while (!stopping_.load()) {
    std::vector<zmq::pollitem_t> items = {{nullptr, wake_fd_, ZMQ_POLLIN, 0}, {pull_->handle(), 0, ZMQ_POLLIN, 0}};
    std::vector<uint32_t> watched;
    {
      std::lock_guard lock(mu_);
      for (uint32_t r = 0; r < ranks_.size(); ++r) {
        if (!ranks_[r].alive) continue;
        items.push_back({nullptr, ranks_[r].pidfd, ZMQ_POLLIN, 0});
        watched.push_back(r);
      }
    }
    try {
      zmq::poll(items.data(), items.size(), 100ms);
    } catch (const zmq::error_t& e) {
      if (e.num() != EINTR) {
        for (uint32_t r = 0; r < ranks_.size(); ++r) rank_died(r, std::string("poll failed: ") + e.what());
        return;
      }
    }
    if (items[0].revents & ZMQ_POLLIN) drain_eventfd(wake_fd_);
    receive_outputs();
    send_queued();
    for (size_t i = 0; i < watched.size(); ++i) {
      if (items[2 + i].revents & ZMQ_POLLIN)
        rank_died(watched[i], "the enginecore of rank " + std::to_string(watched[i]) + " exited");
    }
  }
}

void AttachedEngineClient::send_queued() {
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

void AttachedEngineClient::receive_outputs() {
  while (true) {
    auto got = protocol::receive_valid(*pull_, 0ms, /*routed=*/false);
    if (!got.ok()) {
      for (uint32_t r = 0; r < ranks_.size(); ++r) rank_died(r, "output socket failed: " + got.status().to_string());
      return;
    }
    if (!*got) return;
    if (auto* outputs = std::get_if<protocol::EngineOutputs>(&(*got)->message)) {
      dispatch(*outputs);
    } else if (auto* dead = std::get_if<protocol::EngineDead>(&(*got)->message)) {
      if (dead->engine_index < ranks_.size())
        rank_died(dead->engine_index, "rank " + std::to_string(dead->engine_index) + " died: " + dead->reason);
    }
  }
}

void AttachedEngineClient::dispatch(protocol::EngineOutputs& outputs) {
  std::vector<std::pair<std::shared_ptr<openai::OutputCallback>, openai::EngineOutput>> calls;
  {
    std::lock_guard lock(mu_);
    if (outputs.engine_index >= ranks_.size()) return;
    Rank& rank = ranks_[outputs.engine_index];
    if (outputs.scheduler_stats) {
      const auto& st = *outputs.scheduler_stats;
      rank.stats = openai::EngineStats{st.num_running,          st.num_waiting,       st.kv_cache_usage,
                                       st.prefix_cache_queries, st.prefix_cache_hits, st.num_preemptions,
                                       st.mm_cache_queries,     st.mm_cache_hits,
                                       openai::expert_load_after(rank.stats.expert_load, st.expert_load)};
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
  }
  for (auto& [callback, output] : calls) (*callback)(std::move(output));
}

void AttachedEngineClient::rank_died(uint32_t rank, const std::string& reason) {
  std::unordered_map<std::string, InFlight> failed;
  {
    std::lock_guard lock(mu_);
    Rank& r = ranks_[rank];
    if (!r.alive) return;
    r.alive = false;
    healthy_ = false;
    if (dead_reason_.empty()) dead_reason_ = reason;
    // With waves the other ranks would block in their next all-reduce with the dead one.
    const bool all = waves_ || ranks_.size() == 1;
    for (auto it = in_flight_.begin(); it != in_flight_.end();) {
      if (all || it->second.rank == rank) {
        ranks_[it->second.rank].in_flight--;
        failed.insert(std::move(*it));
        it = in_flight_.erase(it);
      } else {
        ++it;
      }
    }
  }
  spdlog::error("attached client: {}; /health now answers 503", reason);
  fail(std::move(failed), reason);
}

void AttachedEngineClient::fail(std::unordered_map<std::string, InFlight> failed, const std::string& reason) {
  for (auto& [id, f] : failed) {
    if (media_arena_) free_media(f.media_blocks);
    openai::EngineOutput out;
    out.finish_reason = openai::FinishReason::kError;
    out.error = reason;
    (*f.callback)(std::move(out));
  }
}

void AttachedEngineClient::shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  stopping_ = true;
  wake();
  if (io_thread_.joinable()) io_thread_.join();
  healthy_ = false;
  std::unordered_map<std::string, InFlight> left;
  {
    std::lock_guard lock(mu_);
    if (dead_reason_.empty()) dead_reason_ = "the API server was shut down";
    left.swap(in_flight_);
    send_queue_.clear();
  }
  fail(std::move(left), "the API server was shut down");
  for (Rank& r : ranks_) {
    if (r.pidfd >= 0) ::close(r.pidfd);
    r.pidfd = -1;
  }
  router_.reset();
  pull_.reset();
  context_.reset();
  if (wake_fd_ >= 0) ::close(wake_fd_);
  wake_fd_ = -1;
}

}  // namespace k2::frontend
