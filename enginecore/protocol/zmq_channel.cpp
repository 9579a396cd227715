#include "enginecore/protocol/zmq_channel.h"

#include <spdlog/spdlog.h>
#include <sys/un.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <zmq_addon.hpp>

namespace k2::protocol {
namespace {

using Clock = std::chrono::steady_clock;

Status zmq_status(const char* what, const std::exception& e) { return io_error(std::string(what) + ": " + e.what()); }

bool is_wildcard_tcp(const std::string& address) {
  if (address.rfind("tcp://", 0) != 0) return false;
  std::string hostport = address.substr(6);
  size_t colon = hostport.rfind(':');
  std::string host = hostport.substr(0, colon);
  return host == "*" || host == "0.0.0.0" || host == "[::]" || host == "::" || host.empty();
}

bool is_decode_error(const Status& s) {
  return s.code() == Code::kCorrupt || s.code() == Code::kUnimplemented || s.code() == Code::kInvalidArgument;
}

}  // namespace

// ---------------------------------------------------------------- run directory

Result<RunDir> RunDir::create() {
  const char* xdg = std::getenv("XDG_RUNTIME_DIR");
  std::error_code ec;
  std::string base = (xdg != nullptr && *xdg != '\0' && std::filesystem::is_directory(xdg, ec)) ? xdg : "/tmp";
  std::string templ = base + "/k2serve-XXXXXX";
  if (::mkdtemp(templ.data()) == nullptr)  // mkdtemp makes it 0700
    return io_error("cannot create a run directory under " + base + ": " + std::strerror(errno));
  return RunDir(templ);
}

RunDir& RunDir::operator=(RunDir&& other) noexcept {
  if (this != &other) {
    RunDir old(std::move(*this));
    path_ = std::exchange(other.path_, {});
  }
  return *this;
}

RunDir::~RunDir() {
  if (path_.empty()) return;
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

Result<std::string> RunDir::ipc_address(std::string_view name) const {
  if (name.empty() || name.find('/') != std::string_view::npos) return invalid_argument("bad ipc socket name");
  std::string path = path_ + "/" + std::string(name);
  if (path.size() >= sizeof(sockaddr_un::sun_path)) return invalid_argument("ipc socket path too long: " + path);
  return "ipc://" + path;
}

std::string tcp_address(const std::string& host, int port) {
  bool v6 = host.find(':') != std::string::npos && host.front() != '[';
  return "tcp://" + (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

std::string rank_identity(uint32_t rank) {
  return std::string{static_cast<char>(rank & 0xff), static_cast<char>((rank >> 8) & 0xff)};
}

// ---------------------------------------------------------------- sockets

Result<zmq::socket_t> make_socket(zmq::context_t& context, zmq::socket_type type, const SocketOptions& options) {
  try {
    zmq::socket_t socket(context, type);
    socket.set(zmq::sockopt::linger, options.linger_ms);
    socket.set(zmq::sockopt::sndhwm, options.send_hwm);
    socket.set(zmq::sockopt::rcvhwm, options.recv_hwm);
    if (options.routing_id) socket.set(zmq::sockopt::routing_id, zmq::buffer(*options.routing_id));
    if (type == zmq::socket_type::router) socket.set(zmq::sockopt::router_mandatory, 1);
    return socket;
  } catch (const std::exception& e) {
    return zmq_status("creating a zmq socket", e);
  }
}

Status bind_endpoint(zmq::socket_t& socket, const std::string& address, bool allow_all_interfaces) {
  if (address.rfind("ipc://", 0) != 0 && address.rfind("tcp://", 0) != 0)
    return invalid_argument("only ipc:// and tcp:// endpoints are supported: " + address);
  if (is_wildcard_tcp(address) && !allow_all_interfaces)
    return invalid_argument("refusing to bind all interfaces (" + address + ") unless asked to");
  try {
    socket.bind(address);
  } catch (const std::exception& e) {
    return zmq_status(("binding " + address).c_str(), e);
  }
  return Status::ok_status();
}

Status connect_endpoint(zmq::socket_t& socket, const std::string& address) {
  try {
    socket.connect(address);
  } catch (const std::exception& e) {
    return zmq_status(("connecting " + address).c_str(), e);
  }
  return Status::ok_status();
}

Result<std::string> bind_any_port(zmq::socket_t& socket, const std::string& host) {
  const std::string wanted = tcp_address(host, 0);
  const std::string address = wanted.substr(0, wanted.rfind(':')) + ":*";
  K2_RETURN_IF_ERROR(bind_endpoint(socket, address));
  try {
    return socket.get(zmq::sockopt::last_endpoint);
  } catch (const std::exception& e) {
    return zmq_status("reading the bound endpoint", e);
  }
}

Status send(zmq::socket_t& socket, const Message& message, std::string_view routing_id, const EncodeOptions& options) {
  Frames frames = encode(message, options);
  try {
    if (!routing_id.empty()) socket.send(zmq::buffer(routing_id), zmq::send_flags::sndmore);
    for (size_t i = 0; i < frames.size(); ++i) {
      auto flags = i + 1 < frames.size() ? zmq::send_flags::sndmore : zmq::send_flags::none;
      if (!socket.send(zmq::buffer(frames[i]), flags)) return unavailable("zmq send would block");
    }
  } catch (const zmq::error_t& e) {
    if (e.num() == EHOSTUNREACH) return unavailable("peer is gone (send to an unknown routing id)");
    return zmq_status("zmq send", e);
  }
  return Status::ok_status();
}

Result<std::optional<Received>> receive(zmq::socket_t& socket, std::chrono::milliseconds timeout, bool routed,
                                        const DecodeLimits& limits) {
  std::vector<zmq::message_t> parts;
  try {
    zmq::pollitem_t item{socket.handle(), 0, ZMQ_POLLIN, 0};
    if (zmq::poll(&item, 1, timeout) == 0) return std::optional<Received>();
    if (!zmq::recv_multipart(socket, std::back_inserter(parts), zmq::recv_flags::dontwait))
      return std::optional<Received>();
  } catch (const std::exception& e) {
    return zmq_status("zmq receive", e);
  }
  Received out;
  size_t first = 0;
  if (routed) {
    if (parts.empty()) return corrupt("routed message without an envelope");
    out.routing_id = parts[0].to_string();
    first = 1;
  }
  if (parts.size() - first > limits.max_frames) return corrupt("message of " + std::to_string(parts.size()) + " frames");
  std::vector<std::string_view> views;
  views.reserve(parts.size() - first);
  for (size_t i = first; i < parts.size(); ++i) views.push_back(parts[i].to_string_view());
  auto decoded = decode(std::span<const std::string_view>(views), limits);
  if (!decoded.ok()) return decoded.status();
  out.message = std::move(decoded).value();
  return std::optional<Received>(std::move(out));
}

Result<std::optional<Received>> receive_valid(zmq::socket_t& socket, std::chrono::milliseconds timeout, bool routed,
                                              const DecodeLimits& limits) {
  const auto deadline = Clock::now() + timeout;
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    auto r = receive(socket, std::max(left, std::chrono::milliseconds(0)), routed, limits);
    if (r.ok() || !is_decode_error(r.status())) return r;
    spdlog::warn("dropped a malformed message: {}", r.status().to_string());
    if (Clock::now() >= deadline) return std::optional<Received>();
  }
}

// ---------------------------------------------------------------- handshake, peer side

Result<EngineConfigMsg> handshake_hello(zmq::socket_t& dealer, const Hello& hello, std::chrono::milliseconds timeout) {
  K2_RETURN_IF_ERROR(send(dealer, hello));
  const auto deadline = Clock::now() + timeout;
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return unavailable("no configuration from the parent within the handshake timeout");
    K2_ASSIGN_OR_RETURN(auto got, receive_valid(dealer, left, false));
    if (!got) continue;
    if (auto* config = std::get_if<EngineConfigMsg>(&got->message)) return std::move(*config);
    spdlog::warn("handshake: dropped a {} while waiting for the configuration",
                 message_type_name(message_type(got->message)));
  }
}

Status handshake_ready(zmq::socket_t& dealer, const ReadyMsg& ready) { return send(dealer, ready); }

}  // namespace k2::protocol
