// The parent side of the startup handshake (declared in zmq_channel.h).
#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>

#include "enginecore/protocol/zmq_channel.h"

namespace k2::protocol {
namespace {

using Clock = std::chrono::steady_clock;
constexpr std::chrono::milliseconds kPollSlice{100};

struct PeerState {
  Hello hello;
  Clock::time_point config_sent;
  std::optional<ReadyMsg> ready;
};

class HandshakeServer {
 public:
  HandshakeServer(zmq::socket_t& router, const HandshakeOptions& options,
                  const std::function<Result<EngineConfigMsg>(const Hello&)>& config_for)
      : router_(router), options_(options), config_for_(config_for), rank_taken_(options.expected_peers, false) {}

  Result<std::vector<HandshakePeer>> run() {
    const auto hello_deadline = Clock::now() + options_.hello_timeout;
    while (num_ready_ < options_.expected_peers) {
      if (options_.peers_alive) K2_RETURN_IF_ERROR(options_.peers_alive().with_context("handshake"));
      K2_RETURN_IF_ERROR(check_deadlines(hello_deadline));
      auto got = receive(router_, kPollSlice, /*routed=*/true);
      if (!got.ok()) {
        if (got.status().code() == Code::kUnimplemented || got.status().code() == Code::kIo)
          return got.status().with_context("handshake");
        spdlog::warn("handshake: dropped a malformed message: {}", got.status().to_string());
        continue;
      }
      if (*got) K2_RETURN_IF_ERROR(on_message(**got));
    }
    std::vector<HandshakePeer> out;
    for (auto& [id, p] : peers_) out.push_back(HandshakePeer{id, p.hello, *p.ready});
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.hello.rank < b.hello.rank; });
    return out;
  }

 private:
  Status check_deadlines(Clock::time_point hello_deadline) const {
    auto now = Clock::now();
    if (peers_.size() < options_.expected_peers && now > hello_deadline)
      return unavailable("handshake: " + std::to_string(peers_.size()) + " of " +
                         std::to_string(options_.expected_peers) + " peers said hello in time");
    for (const auto& [id, p] : peers_) {
      if (!p.ready && now - p.config_sent > options_.ready_timeout)
        return unavailable("handshake: rank " + std::to_string(p.hello.rank) + " did not become ready in time");
    }
    return Status::ok_status();
  }

  Status on_message(Received& got) {
    if (auto* hello = std::get_if<Hello>(&got.message)) return on_hello(got.routing_id, *hello);
    if (auto* ready = std::get_if<ReadyMsg>(&got.message)) return on_ready(got.routing_id, *ready);
    spdlog::warn("handshake: dropped an unexpected {}", message_type_name(message_type(got.message)));
    return Status::ok_status();
  }

  Status on_hello(const std::string& id, const Hello& hello) {
    if (hello.version != kProtocolVersion)
      return unimplemented("handshake: peer speaks protocol " + std::to_string(hello.version));
    if (hello.kind != options_.expected_kind) {
      spdlog::warn("handshake: dropped a hello from an unexpected process kind");
      return Status::ok_status();
    }
    if (peers_.count(id) != 0) {
      spdlog::warn("handshake: duplicate hello from rank {}", hello.rank);
      return Status::ok_status();
    }
    if (hello.rank >= options_.expected_peers || rank_taken_[hello.rank])
      return invalid_argument("handshake: unexpected or duplicate rank " + std::to_string(hello.rank));
    K2_ASSIGN_OR_RETURN(EngineConfigMsg config, config_for_(hello));
    K2_RETURN_IF_ERROR(send(router_, config, id));
    rank_taken_[hello.rank] = true;
    peers_[id] = PeerState{hello, Clock::now(), std::nullopt};
    return Status::ok_status();
  }

  Status on_ready(const std::string& id, const ReadyMsg& ready) {
    auto it = peers_.find(id);
    if (it == peers_.end() || it->second.ready) {
      spdlog::warn("handshake: dropped a READY from a peer that did not say hello");
      return Status::ok_status();
    }
    if (ready.rank != it->second.hello.rank)
      return invalid_argument("handshake: rank " + std::to_string(it->second.hello.rank) + " reported ready as rank " +
                              std::to_string(ready.rank));
    it->second.ready = ready;
    ++num_ready_;
    return Status::ok_status();
  }

  zmq::socket_t& router_;
  const HandshakeOptions& options_;
  const std::function<Result<EngineConfigMsg>(const Hello&)>& config_for_;
  std::map<std::string, PeerState> peers_;
  std::vector<bool> rank_taken_;
  uint32_t num_ready_ = 0;
};

}  // namespace

Result<std::vector<HandshakePeer>> handshake_serve(
    zmq::socket_t& router, const HandshakeOptions& options,
    const std::function<Result<EngineConfigMsg>(const Hello&)>& config_for) {
  if (options.expected_peers == 0) return invalid_argument("handshake with no peers");
  return HandshakeServer(router, options, config_for).run();
}

}  // namespace k2::protocol
