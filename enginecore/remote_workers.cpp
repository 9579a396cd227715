#include "enginecore/remote_workers.h"

#include <algorithm>

#include <spdlog/spdlog.h>

#include "enginecore/protocol/zmq_channel.h"

namespace k2::engine {

using Clock = std::chrono::steady_clock;

Result<std::unique_ptr<RemoteWorkers>> RemoteWorkers::start(zmq::context_t& context,
                                                            protocol::ControlPlaneSecurity& security,
                                                            const TpNodes& nodes, zmq::socket_t& router,
                                                            zmq::socket_t& results) {
  K2_RETURN_IF_ERROR(protocol::bind_endpoint(router, nodes.handshake_address()));
  K2_ASSIGN_OR_RETURN(std::string results_endpoint, protocol::bind_any_port(results, nodes.master_addr));
  K2_ASSIGN_OR_RETURN(protocol::PlanFanout fanout, protocol::PlanFanout::bind(context, security, nodes.master_addr));
  K2_ASSIGN_OR_RETURN(zmq::socket_t heartbeats, protocol::make_socket(context, zmq::socket_type::pull));
  K2_RETURN_IF_ERROR(security.secure_server(context, heartbeats, "worker heartbeats"));
  K2_ASSIGN_OR_RETURN(std::string heartbeat_endpoint, protocol::bind_any_port(heartbeats, nodes.master_addr));
  std::unique_ptr<RemoteWorkers> remote(new RemoteWorkers(nodes, std::move(fanout), std::move(heartbeats)));
  remote->results_endpoint_ = std::move(results_endpoint);
  remote->heartbeat_endpoint_ = std::move(heartbeat_endpoint);
  remote->last_heard_.assign(static_cast<size_t>(nodes.tp), Clock::now());
  spdlog::info("tensor parallelism over {} nodes: ranks {}..{} here, {} on other nodes joining {}; plans on {}",
               nodes.nnodes, 0, nodes.per_node - 1, remote->remote_count(), nodes.handshake_address(),
               remote->fanout_.endpoint());
  if (security.curve())
    spdlog::warn("--control-plane-key-file: the engine's sockets to the other nodes use CURVE, but the tensor-parallel "
                 "group's Gloo connections and its rendezvous store ({}) are not authenticated (Debian's Gloo has no "
                 "TLS): keep them on a network only the deployment's nodes reach", nodes.store_address());
  return remote;
}

void RemoteWorkers::address(uint32_t rank, protocol::EngineConfigMsg& msg) const {
  msg.coordinator_address = nodes_.store_address();
  if (!is_remote(rank)) return;
  msg.input_addresses = {fanout_.endpoint()};
  msg.output_addresses = {results_endpoint_, heartbeat_endpoint_};
}

Status RemoteWorkers::await_subscriptions(std::chrono::milliseconds timeout) {
  K2_RETURN_IF_ERROR(fanout_.wait_for_readers(remote_count(), timeout));
  last_heard_.assign(last_heard_.size(), Clock::now());
  watching_ = true;
  return Status::ok_status();
}

Status RemoteWorkers::publish(const protocol::Frames& frames, const protocol::StepPlan& plan) {
  std::vector<std::span<const std::byte>> parts;
  for (const auto& f : frames) parts.emplace_back(reinterpret_cast<const std::byte*>(f.data()), f.size());
  const std::vector<protocol::FanoutMedia> media = media_to_ship(plan);
  return fanout_.publish(parts, media);
}

std::vector<protocol::FanoutMedia> RemoteWorkers::media_to_ship(const protocol::StepPlan& plan) {
  std::vector<protocol::FanoutMedia> media;
  for (const protocol::ScheduledRequest& r : plan.requests) {
    for (uint32_t i : r.encode_media) {
      if (i >= r.media.size()) continue;  // the workers refuse the plan themselves
      const protocol::MediaItem& item = r.media[i];
      auto same = [&](const protocol::FanoutMedia& m) { return m.hash_low == item.hash_low && m.hash_high == item.hash_high; };
      if (std::any_of(media.begin(), media.end(), same)) continue;
      Result<std::span<const std::byte>> bytes = pixels_of(item);
      if (!bytes.ok() || bytes->empty() || bytes->size() % sizeof(float) != 0) {
        spdlog::warn("request {}: media item {} not shipped to the other nodes: {}", r.request_id, i,
                     bytes.ok() ? "its block is not whole float32s" : bytes.status().to_string());
        continue;
      }
      media.push_back(protocol::FanoutMedia{item.hash_low, item.hash_high, *bytes});
    }
  }
  return media;
}

Result<std::span<const std::byte>> RemoteWorkers::pixels_of(const protocol::MediaItem& item) {
  K2_ASSIGN_OR_RETURN(std::span<std::byte> bytes, media_arenas_.view(item.arena, item.pixels));
  return std::span<const std::byte>(bytes);
}

Status RemoteWorkers::tick() {
  K2_RETURN_IF_ERROR(fanout_.heartbeat_if_due());
  while (true) {
    K2_ASSIGN_OR_RETURN(std::optional<protocol::Received> got,
                        protocol::receive_valid(heartbeats_, std::chrono::milliseconds(0), /*routed=*/false));
    if (!got) break;
    const auto* beat = std::get_if<protocol::DpControl>(&got->message);
    if (beat == nullptr || beat->kind != protocol::DpControlKind::kHeartbeat || beat->rank >= last_heard_.size()) {
      spdlog::warn("dropped an unexpected message on the worker heartbeat socket");
      continue;
    }
    last_heard_[beat->rank] = Clock::now();
  }
  if (!watching_) return Status::ok_status();
  const auto now = Clock::now();
  for (uint32_t r = 0; r < last_heard_.size(); ++r) {
    if (!is_remote(r) || now - last_heard_[r] < protocol::kDpPeerTimeout) continue;
    return unavailable("worker " + std::to_string(r) + " on node " + std::to_string(nodes_.node_of(r)) +
                       " has been silent for " + std::to_string(protocol::kDpPeerTimeout.count() / 1000) +
                       " s (its node died or was cut off)");
  }
  return Status::ok_status();
}

}  // namespace k2::engine
