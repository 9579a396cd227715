#include "enginecore/protocol/dp_transport.h"

#include <zmq.h>

#include <zmq_addon.hpp>

#include <atomic>
#include <cstdlib>
#include <cstring>

#include "enginecore/protocol/zmq_channel.h"

namespace k2::protocol {
namespace {

using Clock = std::chrono::steady_clock;
constexpr std::chrono::milliseconds kMonitorPoll{100};

std::string describe_client_failure(uint16_t event, uint32_t value) {
  switch (event) {
    case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
      return "the server's authenticator refused this node's key (ZAP status " + std::to_string(value) + ")";
    case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
      if (value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH)
        return "security mechanism mismatch (one side uses CURVE keys, the other none)";
      if (value == ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC) return "cryptographic failure (another key)";
      return "protocol error " + std::to_string(value);
    default:
      // A CURVE server closes the connection without a word when the client's HELLO does not
      // open with its key.
      return "the server closed the connection during the security handshake (another key, or none)";
  }
}

}  // namespace

Result<DpPorts> dp_ports(int64_t rpc_port) {
  if (rpc_port <= 0 || rpc_port + 2 > 65535)
    return invalid_argument("--data-parallel-rpc-port must leave room for two more ports (P+1, P+2) below 65536");
  const int p = static_cast<int>(rpc_port);
  return DpPorts{p, p + 1, p + 2};
}

Result<DpPorts> api_server_ports(int64_t rpc_port, int64_t index) {
  const int64_t requests = rpc_port + 2 + 2 * index;
  if (rpc_port <= 0 || index < 1 || requests + 1 > 65535)
    return invalid_argument("--data-parallel-rpc-port P must leave room below 65536 for the ports of every API "
                            "server (P + 2 + 2k, P + 3 + 2k for API server k)");
  return DpPorts{static_cast<int>(requests), static_cast<int>(requests + 1), 0};
}

std::chrono::seconds engine_ready_timeout() {
  constexpr std::chrono::seconds kDefault{600};
  const char* text = std::getenv("VLLM_ENGINE_READY_TIMEOUT_S");
  if (text == nullptr) return kDefault;
  char* end = nullptr;
  const long long value = std::strtoll(text, &end, 10);
  return end != text && *end == '\0' && value > 0 ? std::chrono::seconds(value) : kDefault;
}

Result<std::unique_ptr<ControlPlaneSecurity>> ControlPlaneSecurity::load(const std::string& key_file) {
  if (key_file.empty()) return std::unique_ptr<ControlPlaneSecurity>(new ControlPlaneSecurity(std::nullopt));
  K2_RETURN_IF_ERROR(curve_available());
  K2_ASSIGN_OR_RETURN(CurveKeys keys, load_key_file(key_file));
  return std::unique_ptr<ControlPlaneSecurity>(new ControlPlaneSecurity(std::move(keys)));
}

ControlPlaneSecurity::~ControlPlaneSecurity() = default;

Status ControlPlaneSecurity::secure_server(zmq::context_t& context, zmq::socket_t& socket, std::string_view label) {
  if (!keys_) return Status::ok_status();
  std::lock_guard lock(mutex_);
  if (authenticator_ && context_ != &context)
    return internal_error("the control plane's server sockets must share one zmq context");
  if (!authenticator_) {
    K2_ASSIGN_OR_RETURN(authenticator_, CurveAuthenticator::start(context, *keys_));
    context_ = &context;
  }
  K2_RETURN_IF_ERROR(make_curve_server(socket, *keys_));
  return authenticator_->watch(socket, label);
}

Status ControlPlaneSecurity::secure_client(zmq::socket_t& socket) const {
  if (!keys_) return Status::ok_status();
  return make_curve_client(socket, *keys_);
}

uint64_t ControlPlaneSecurity::refused() const {
  std::lock_guard lock(mutex_);
  return authenticator_ ? authenticator_->refused() : 0;
}

Status connect_and_await_handshake(zmq::context_t& context, zmq::socket_t& socket, const std::string& address,
                                   std::chrono::milliseconds timeout) {
  static std::atomic<uint64_t> next_monitor{0};
  const std::string endpoint = "inproc://k2serve-control-client-" + std::to_string(next_monitor++);
  constexpr int kEvents = ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                          ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH;
  if (zmq_socket_monitor(socket.handle(), endpoint.c_str(), kEvents) != 0)
    return io_error("monitoring a control-plane socket: " + std::string(zmq_strerror(zmq_errno())));
  struct StopMonitor {
    zmq::socket_t& socket;
    ~StopMonitor() { zmq_socket_monitor(socket.handle(), nullptr, 0); }
  } stop_monitor{socket};
  try {
    zmq::socket_t monitor(context, zmq::socket_type::pair);
    monitor.set(zmq::sockopt::linger, 0);
    monitor.connect(endpoint);
    K2_RETURN_IF_ERROR(connect_endpoint(socket, address));
    const auto deadline = Clock::now() + timeout;
    int failures = 0;
    while (Clock::now() < deadline) {
      zmq::pollitem_t item{monitor.handle(), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, kMonitorPoll);
      if (!(item.revents & ZMQ_POLLIN)) continue;
      std::vector<zmq::message_t> event;
      if (!zmq::recv_multipart(monitor, std::back_inserter(event), zmq::recv_flags::dontwait)) continue;
      if (event.empty() || event[0].size() != 6) continue;
      uint16_t id = 0;
      uint32_t value = 0;
      std::memcpy(&id, event[0].data(), sizeof id);
      std::memcpy(&value, static_cast<const char*>(event[0].data()) + 2, sizeof value);
      if (id == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) return Status::ok_status();
      ++failures;
      // After a protocol error (say, a mechanism mismatch) libzmq does not reconnect at all.
      const bool final = id == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH || id == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL;
      if (final || failures >= kControlHandshakeFailuresToGiveUp)
        return invalid_argument(address + " refused this node's control-plane connection (" +
                                describe_client_failure(id, value) + "; " + std::to_string(failures) +
                                " failed handshakes): every node of the deployment must use the same "
                                "--control-plane-key-file (made once with `k2serve keygen`), or none");
    }
  } catch (const zmq::error_t& e) {
    return io_error("connecting to " + address + ": " + e.what());
  }
  return unavailable("no answer from " + address + " in " +
                     std::to_string(std::chrono::duration_cast<std::chrono::seconds>(timeout).count()) + " s");
}

}  // namespace k2::protocol
