#include "enginecore/coordinator.h"

#include <spdlog/spdlog.h>

#include "enginecore/protocol/dp_transport.h"
#include "enginecore/protocol/zmq_channel.h"

namespace k2::engine {

using protocol::DpControl;
using protocol::DpControlKind;

void WaveCoordinator::broadcast(Outbox& out, const DpControl& message, int32_t exclude) const {
  for (uint32_t r : joined_)
    if (static_cast<int32_t>(r) != exclude) out.emplace_back(r, message);
}

void WaveCoordinator::start_wave(Outbox& out, int32_t starter) {
  running_ = true;
  DpControl start;
  start.kind = DpControlKind::kStartDpWave;
  start.wave = wave_;
  start.exclude_rank = starter;
  broadcast(out, start, starter);
}

WaveCoordinator::Outbox WaveCoordinator::on_message(uint32_t rank, const DpControl& m) {
  Outbox out;
  if (rank >= num_ranks_) return out;
  switch (m.kind) {
    case DpControlKind::kJoin:
      joined_.insert(rank);
      // A rank that (re)connects while a wave runs must step with the others.
      if (running_) out.emplace_back(rank, DpControl{DpControlKind::kStartDpWave, 0, wave_, 0, false, -1});
      break;
    case DpControlKind::kStartWave:
      joined_.insert(rank);
      if (m.wave > wave_) wave_ = m.wave;
      if (!running_) {
        // The starter is already running this wave, unless it was behind (then it learns
        // the current number too).
        start_wave(out, m.wave == wave_ ? static_cast<int32_t>(rank) : -1);
      } else if (m.wave < wave_) {
        out.emplace_back(rank, DpControl{DpControlKind::kStartDpWave, 0, wave_, 0, false, -1});
      }
      break;
    case DpControlKind::kSync: {
      Round& round = rounds_[{m.wave, m.round}];
      round.ranks.insert(rank);
      round.unfinished = round.unfinished || m.unfinished;
      if (round.ranks.size() < num_ranks_) break;
      DpControl result{DpControlKind::kSyncResult, 0, m.wave, m.round, round.unfinished, -1};
      for (uint32_t r : round.ranks) out.emplace_back(r, result);
      if (!round.unfinished && m.wave == wave_) {
        // Every rank is idle: the wave is over; the next request starts wave + 1.
        running_ = false;
        ++wave_;
        ++waves_completed_;
      }
      rounds_.erase({m.wave, m.round});
      break;
    }
    default:
      spdlog::warn("dp coordinator: dropped an unexpected control message from rank {}", rank);
  }
  return out;
}

Result<std::unique_ptr<DpCoordinator>> DpCoordinator::start(zmq::context_t& context, const std::string& address,
                                                            uint32_t num_ranks,
                                                            protocol::ControlPlaneSecurity& security) {
  K2_ASSIGN_OR_RETURN(zmq::socket_t socket, protocol::make_socket(context, zmq::socket_type::router));
  K2_RETURN_IF_ERROR(security.secure_server(context, socket, "coordinator"));
  K2_RETURN_IF_ERROR(protocol::bind_endpoint(socket, address));
  std::unique_ptr<DpCoordinator> c(new DpCoordinator(std::move(socket), num_ranks));
  c->thread_ = std::thread([raw = c.get()] { raw->run(); });
  spdlog::info("dp coordinator: {} ranks, at {}{}", num_ranks, address, security.curve() ? " (CURVE)" : "");
  return c;
}

DpCoordinator::~DpCoordinator() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

void DpCoordinator::run() {
  using namespace std::chrono_literals;
  while (!stop_.load()) {
    auto got = protocol::receive_valid(socket_, 100ms, /*routed=*/true);
    if (!got.ok()) {
      spdlog::error("dp coordinator: {}", got.status().to_string());
      return;
    }
    if (!*got) continue;
    const auto* m = std::get_if<DpControl>(&(*got)->message);
    const std::string& id = (*got)->routing_id;
    if (m == nullptr || id.size() != 2) {
      spdlog::warn("dp coordinator: dropped a message that is not DP control");
      continue;
    }
    const uint32_t rank = static_cast<uint8_t>(id[0]) | (static_cast<uint32_t>(static_cast<uint8_t>(id[1])) << 8);
    for (const auto& [to, reply] : state_.on_message(rank, *m)) {
      if (Status s = protocol::send(socket_, reply, protocol::rank_identity(to)); !s.ok())
        spdlog::warn("dp coordinator: cannot reach rank {}: {}", to, s.to_string());
    }
  }
}

}  // namespace k2::engine
