#include "enginecore/dp_wave.h"

#include <atomic>
#include <cstring>
#include <iterator>
#include <vector>

#include <spdlog/spdlog.h>
#include <zmq_addon.hpp>

#include "enginecore/protocol/dp_transport.h"
#include "enginecore/protocol/zmq_channel.h"

namespace k2::engine {

using protocol::DpControl;
using protocol::DpControlKind;
using namespace std::chrono_literals;

Result<std::unique_ptr<DpWave>> DpWave::connect(zmq::context_t& context, const std::string& address, uint32_t rank,
                                                const protocol::ControlPlaneSecurity& security, bool watch) {
  protocol::SocketOptions options;
  options.routing_id = protocol::rank_identity(rank);
  K2_ASSIGN_OR_RETURN(zmq::socket_t socket, protocol::make_socket(context, zmq::socket_type::dealer, options));
  K2_RETURN_IF_ERROR(security.secure_client(socket));
  std::unique_ptr<DpWave> w(new DpWave(std::move(socket), address, rank));
  if (watch) {
    static std::atomic<uint64_t> next_monitor{0};
    const std::string endpoint = "inproc://k2serve-dp-wave-" + std::to_string(next_monitor++);
    // A silent peer (its node unplugged) drops the connection too, as protocol::kDpPeerTimeout says.
    w->socket_.set(zmq::sockopt::heartbeat_ivl, static_cast<int>(protocol::kDpHeartbeatInterval.count()));
    w->socket_.set(zmq::sockopt::heartbeat_timeout, static_cast<int>(protocol::kDpPeerTimeout.count()));
    if (zmq_socket_monitor(w->socket_.handle(), endpoint.c_str(), ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED) != 0)
      return io_error("monitoring the coordinator connection: " + std::string(zmq_strerror(zmq_errno())));
    try {
      w->monitor_.emplace(context, zmq::socket_type::pair);
      w->monitor_->set(zmq::sockopt::linger, 0);
      w->monitor_->connect(endpoint);
    } catch (const zmq::error_t& e) {
      return io_error(std::string("monitoring the coordinator connection: ") + e.what());
    }
  }
  K2_RETURN_IF_ERROR(protocol::connect_endpoint(w->socket_, address));
  K2_RETURN_IF_ERROR(protocol::send(w->socket_, DpControl{DpControlKind::kJoin, rank, 0, 0, false, -1}));
  return w;
}

Status DpWave::check_coordinator() {
  if (!monitor_) return Status::ok_status();
  std::vector<zmq::message_t> event;
  while (zmq::recv_multipart(*monitor_, std::back_inserter(event), zmq::recv_flags::dontwait)) {
    uint16_t id = 0;
    if (!event.empty() && event[0].size() == 6) std::memcpy(&id, event[0].data(), sizeof id);
    event.clear();
    if (id == ZMQ_EVENT_CONNECTED) connected_ = true;
    // Before the first connection rank 0 may simply not be up yet (zmq retries).
    if (id == ZMQ_EVENT_DISCONNECTED && connected_)
      return unavailable("lost the data-parallel coordinator at " + address_ +
                         " (data-parallel rank 0 is gone; the ranks share the experts and stop together)");
  }
  return Status::ok_status();
}

Status DpWave::start_if_idle() {
  if (running_) return Status::ok_status();
  running_ = true;
  steps_ = 0;
  round_ = 0;
  spdlog::debug("rank {}: starting wave {}", rank_, wave_);
  return protocol::send(socket_, DpControl{DpControlKind::kStartWave, rank_, wave_, 0, false, -1});
}

void DpWave::on_message(const DpControl& m) {
  switch (m.kind) {
    case DpControlKind::kStartDpWave:
      if (m.wave < wave_ || (running_ && m.wave == wave_)) return;  // stale, or already in it
      wave_ = m.wave;
      running_ = true;
      steps_ = 0;
      round_ = 0;
      return;
    case DpControlKind::kSyncResult:
      if (!sync_pending_ || m.wave != wave_ || m.round != round_) return;
      sync_pending_ = false;
      ++round_;
      if (!m.unfinished) {
        running_ = false;
        ++wave_;
        steps_ = 0;
        round_ = 0;
      }
      return;
    default:
      spdlog::warn("rank {}: dropped an unexpected DP control message", rank_);
  }
}

Status DpWave::drain() {
  while (true) {
    K2_ASSIGN_OR_RETURN(std::optional<protocol::Received> got, protocol::receive_valid(socket_, 0ms, false));
    if (!got) return Status::ok_status();
    if (const auto* m = std::get_if<DpControl>(&got->message)) on_message(*m);
  }
}

bool DpWave::count_step() {
  if (!running_) return false;
  return ++steps_ % kSyncInterval == 0;
}

Status DpWave::begin_sync(bool has_unfinished) {
  sync_pending_ = true;
  return protocol::send(socket_, DpControl{DpControlKind::kSync, rank_, wave_, round_, has_unfinished, -1});
}

}  // namespace k2::engine
