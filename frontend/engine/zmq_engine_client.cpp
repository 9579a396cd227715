// ZmqEngineClient at work: requests in, outputs out, rank deaths, shutdown. The startup is
// in zmq_engine_startup.cpp.
#include "frontend/engine/zmq_engine_client.h"

#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <span>
#include <spdlog/spdlog.h>

#include "enginecore/protocol/token_payload.h"
#include "shm/segment.h"

namespace k2::frontend {
namespace {

using namespace std::chrono_literals;

constexpr int64_t kWaitingWeight = 4;  // vLLM's DPLB score: waiting * 4 + running
// A lone engine exits by itself after its EngineDead: give it time. Among several ranks the
// I/O thread must not hold up the live ranks' outputs: a dead one is killed at once.
constexpr auto kLoneEngineExitGrace = 5000ms;
constexpr auto kRankKillWait = 1000ms;
constexpr auto kShutdownGrace = 10000ms;

void drain_eventfd(int fd) {
  uint64_t value = 0;
  while (::read(fd, &value, sizeof(value)) == static_cast<ssize_t>(sizeof(value))) {
  }
}

}  // namespace

ZmqEngineClient::~ZmqEngineClient() { shutdown(); }

Result<uint32_t> ZmqEngineClient::pick_rank(bool needs_local) {
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

Status ZmqEngineClient::add_request(openai::GenerateRequest request, openai::OutputCallback on_output) {
  K2_ASSIGN_OR_RETURN(protocol::AddRequest add, to_add_request(request));
  std::vector<ShmHandle> media_blocks;
  if (!request.media.empty()) {
    K2_ASSIGN_OR_RETURN(add.media, place_media(request.media, media_blocks));
  }
  std::unique_lock lock(mu_);
  Status refused;
  Result<uint32_t> rank = pick_rank(!request.media.empty());
  if (!healthy_) {
    refused = unavailable((size_ == 1 ? "the engine is not running: " : "a data-parallel rank is down: ") + dead_reason_);
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
  if (target.local && prompt_arena_) {
    // Large prompts travel through the prompt arena to engines on this node; a full arena
    // sends them inline.
    if (Result<protocol::TokenIds> placed = protocol::place_tokens(add.prompt.ids, &*prompt_arena_); placed.ok()) {
      add.prompt = std::move(placed).value();
      if (add.prompt.location == protocol::DataLocation::kShm) ++num_prompts_in_shm_;
    } else {
      spdlog::debug("request {}: prompt sent inline ({})", add.request_id, placed.status().to_string());
    }
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

Result<std::vector<protocol::MediaItem>> ZmqEngineClient::place_media(const std::vector<openai::MediaInput>& media,
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

void ZmqEngineClient::free_media(const std::vector<ShmHandle>& blocks) {
  if (!media_arena_) return;
  for (const auto& h : blocks) {
    if (Status s = media_arena_->free(h); !s.ok()) spdlog::warn("{}: media block not freed: {}", log_name_, s.to_string());
  }
}

void ZmqEngineClient::abort(const std::string& request_id) {
  {
    std::lock_guard lock(mu_);
    auto it = in_flight_.find(request_id);
    if (it == in_flight_.end()) return;
    send_queue_.emplace_back(it->second.rank, protocol::AbortRequests{{request_id}});
  }
  wake();
}

openai::EngineStats ZmqEngineClient::stats() const {
  std::vector<openai::EngineStats> ranks;
  std::lock_guard lock(mu_);
  for (const Rank& r : ranks_) ranks.push_back(r.stats);
  return sum_stats(ranks);
}

std::vector<DpRankStatus> ZmqEngineClient::rank_status() const {
  std::lock_guard lock(mu_);
  std::vector<DpRankStatus> out;
  for (const Rank& r : ranks_)
    out.push_back(DpRankStatus{first_rank_ + r.rank, r.local, r.alive, r.stats, r.routed, r.finished, r.in_flight, r.pid});
  return out;
}

size_t ZmqEngineClient::num_in_flight() const {
  std::lock_guard lock(mu_);
  return in_flight_.size();
}

bool ZmqEngineClient::drain(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  return drained_.wait_for(lock, timeout, [this] { return in_flight_.empty(); });
}

std::string ZmqEngineClient::dead_reason() const {
  std::lock_guard lock(mu_);
  return dead_reason_;
}

std::vector<pid_t> ZmqEngineClient::worker_pids() const {
  std::vector<pid_t> out;
  for (const Rank& r : ranks_) out.insert(out.end(), r.worker_pids.begin(), r.worker_pids.end());
  return out;
}

std::vector<std::string> ZmqEngineClient::shm_segments() const {
  std::vector<std::string> out;
  for (const Rank& r : ranks_) out.insert(out.end(), r.segments.begin(), r.segments.end());
  return out;
}

void ZmqEngineClient::wake() {
  const uint64_t one = 1;
  if (wake_fd_ >= 0) (void)!::write(wake_fd_, &one, sizeof(one));
}

void ZmqEngineClient::io_loop() {
  while (!stopping_.load()) {
    // Dead ranks' pidfds stay readable: only the live ones are watched.
    std::vector<zmq::pollitem_t> items = {{nullptr, wake_fd_, ZMQ_POLLIN, 0}, {pull_->handle(), 0, ZMQ_POLLIN, 0}};
    for (Rank& r : ranks_) {
      bool alive;
      {
        std::lock_guard lock(mu_);
        alive = r.alive;
      }
      const int fd = r.pidfd >= 0 ? r.pidfd : r.process.pidfd();
      if (alive && r.local && fd >= 0) items.push_back({nullptr, fd, ZMQ_POLLIN, 0});
    }
    try {
      zmq::poll(items.data(), items.size(), 100ms);
    } catch (const zmq::error_t& e) {
      if (e.num() != EINTR) {
        all_ranks_died(std::string("poll failed: ") + e.what());
        return;
      }
    }
    if (items[0].revents & ZMQ_POLLIN) drain_eventfd(wake_fd_);
    receive_outputs();
    send_queued();
    check_ranks();
  }
}

void ZmqEngineClient::send_queued() {
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
      rank_died(rank, "cannot reach " + rank_name(rank) + ": " + s.to_string());
  }
}

void ZmqEngineClient::receive_outputs() {
  while (true) {
    auto got = protocol::receive_valid(*pull_, 0ms, /*routed=*/false);
    if (!got.ok()) {
      all_ranks_died("output socket failed: " + got.status().to_string());
      return;
    }
    if (!*got) return;
    if (auto* outputs = std::get_if<protocol::EngineOutputs>(&(*got)->message)) {
      dispatch(*outputs);
    } else if (auto* beat = std::get_if<protocol::DpControl>(&(*got)->message)) {
      std::lock_guard lock(mu_);
      if (beat->rank < size_) ranks_[beat->rank].last_seen = Clock::now();
    } else if (auto* dead = std::get_if<protocol::EngineDead>(&(*got)->message)) {
      if (auto rank = rank_of(dead->engine_index))
        rank_died(*rank, (size_ == 1 ? std::string("the engine") : rank_name(*rank)) + " died: " + dead->reason);
    } else {
      spdlog::warn("{}: dropped an unexpected {}", log_name_,
                   protocol::message_type_name(protocol::message_type((*got)->message)));
    }
  }
}

void ZmqEngineClient::dispatch(protocol::EngineOutputs& outputs) {
  std::vector<std::pair<std::shared_ptr<openai::OutputCallback>, openai::EngineOutput>> calls;
  {
    std::lock_guard lock(mu_);
    const std::optional<uint32_t> index = rank_of(outputs.engine_index);
    if (!index) return;
    Rank& rank = ranks_[*index];
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
        ++ranks_[it->second.rank].finished;
        --ranks_[it->second.rank].in_flight;
        in_flight_.erase(it);
      }
    }
    if (in_flight_.empty()) drained_.notify_all();
  }
  for (auto& [callback, output] : calls) (*callback)(std::move(output));
}

// A lone engine is rank 0 whatever index it reports; otherwise nullopt for an unknown rank.
std::optional<uint32_t> ZmqEngineClient::rank_of(uint32_t engine_index) const {
  if (size_ == 1) return 0;
  if (engine_index < size_) return engine_index;
  return std::nullopt;
}

// Whether a local rank's enginecore is gone; `how`: its wait status where we reaped it.
bool ZmqEngineClient::rank_exited(Rank& rank, std::string& how) {
  if (rank.pidfd >= 0) {
    pollfd p{rank.pidfd, POLLIN, 0};
    return ::poll(&p, 1, 0) > 0;
  }
  if (auto st = rank.process.try_wait()) {
    how = " (" + describe_wait_status(*st) + ")";
    return true;
  }
  return false;
}

// Local ranks: their pidfd; remote ranks: their heartbeats (and ours to them, so a headless
// engine notices a dead API server).
void ZmqEngineClient::check_ranks() {
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
      if (std::string how; rank_exited(r, how)) rank_died(i, engine_name(i) + " exited" + how);
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

void ZmqEngineClient::all_ranks_died(const std::string& reason) {
  for (uint32_t r = 0; r < size_; ++r) rank_died(r, reason);
}

void ZmqEngineClient::rank_died(uint32_t rank, const std::string& reason) {
  Failed failed;
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
  spdlog::error("{}: {}; /health now answers 503{}", log_name_, reason,
                waves_ ? "; the other ranks' requests fail too (MoE ranks step together)" : "");
  fail(std::move(failed), reason);
  Rank& r = ranks_[rank];
  if (!owns_engines_ || !r.local) return;
  if (size_ > 1) r.process.signal(SIGKILL);
  (void)r.process.terminate(size_ > 1 ? kRankKillWait : kLoneEngineExitGrace);
  remove_segments(r);
}

// Workers die with their enginecore (PR_SET_PDEATHSIG) and create no segment after startup,
// so the names can go now, even while a dying worker still maps its segment.
void ZmqEngineClient::remove_segments(const Rank& rank) {
  for (const auto& name : rank.segments) ::shm_unlink(name.c_str());
  if (rank.pid > 0) (void)remove_segments_of(rank.pid);
  for (pid_t pid : rank.worker_pids) (void)remove_segments_of(pid);
}

void ZmqEngineClient::fail(Failed failed, const std::string& reason) {
  for (auto& [id, f] : failed) {
    free_media(f.media_blocks);
    openai::EngineOutput out;
    out.finish_reason = openai::FinishReason::kError;
    out.error = reason;
    (*f.callback)(std::move(out));
  }
}

void ZmqEngineClient::stop_owned_ranks() {
  const bool was_healthy = healthy_.exchange(false);
  for (Rank& r : ranks_)
    if (r.local && r.pid > 0) r.process.signal(SIGTERM);
  for (Rank& r : ranks_) {
    if (!r.local || r.pid <= 0) continue;
    const int st = r.process.terminate(kShutdownGrace);
    if (WIFSIGNALED(st) || WEXITSTATUS(st) != 0)
      spdlog::log(was_healthy ? spdlog::level::warn : spdlog::level::info, "{}: {} ended with {}", log_name_,
                  engine_name(r.rank), describe_wait_status(st));
    remove_segments(r);
  }
}

void ZmqEngineClient::shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  stopping_ = true;
  wake();
  if (io_thread_.joinable()) io_thread_.join();
  if (owns_engines_) stop_owned_ranks();
  healthy_ = false;
  for (Rank& r : ranks_) {
    if (r.pidfd >= 0) ::close(r.pidfd);
    r.pidfd = -1;
  }
  const char* reason = !owns_engines_ ? "the API server was shut down"
                       : size_ == 1   ? "the engine was shut down"
                                      : "the engines were shut down";
  Failed left;
  {
    std::lock_guard lock(mu_);
    if (dead_reason_.empty()) dead_reason_ = reason;
    left.swap(in_flight_);
    send_queue_.clear();
    drained_.notify_all();
  }
  fail(std::move(left), reason);
  router_.reset();
  pull_.reset();
  coordinator_.reset();
  security_.reset();  // its authenticator before the context it serves
  context_.reset();
  if (wake_fd_ >= 0) ::close(wake_fd_);
  wake_fd_ = -1;
}

}  // namespace k2::frontend
