// ZeroMQ plumbing shared by the frontend, enginecore and workers: a private run directory
// for ipc:// endpoints, socket construction with k2serve's defaults, send/receive of codec
// messages with poll timeouts, and the startup handshake (HELLO -> config -> READY, as vLLM
// V1's engine handshake).
//
// Sockets are not thread-safe (a ZeroMQ rule): use each from one thread. RunDir owns its
// directory and removes it (with the socket files in it) on destruction. The functions here
// keep no state and never throw: ZeroMQ errors become Status values.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <zmq.hpp>

#include "enginecore/protocol/codec.h"
#include "enginecore/protocol/messages.h"
#include "shm/status.h"

namespace k2::protocol {

// A 0700 directory under $XDG_RUNTIME_DIR (or /tmp) holding this run's ipc:// sockets, so
// other users cannot connect to them.
class RunDir {
 public:
  static Result<RunDir> create();
  RunDir(RunDir&& other) noexcept : path_(std::exchange(other.path_, {})) {}
  RunDir& operator=(RunDir&& other) noexcept;
  RunDir(const RunDir&) = delete;
  RunDir& operator=(const RunDir&) = delete;
  ~RunDir();

  const std::string& path() const { return path_; }
  // "ipc://<dir>/<name>"; an error if the path exceeds the unix socket limit.
  Result<std::string> ipc_address(std::string_view name) const;

 private:
  explicit RunDir(std::string path) : path_(std::move(path)) {}
  std::string path_;
};

// "tcp://host:port"; IPv6 literals are bracketed.
std::string tcp_address(const std::string& host, int port);

// The DEALER identity of an engine rank: two bytes, little-endian (as vLLM).
std::string rank_identity(uint32_t rank);

struct SocketOptions {
  std::optional<std::string> routing_id;  // DEALER identity
  int linger_ms = 0;                      // PUSH sockets that must flush on exit: a few seconds
  int send_hwm = 0;                       // 0 = unbounded, as vLLM
  int recv_hwm = 0;
};

// ROUTER sockets are made ROUTER_MANDATORY so sending to a gone peer is an error, not a drop.
Result<zmq::socket_t> make_socket(zmq::context_t& context, zmq::socket_type type, const SocketOptions& options = {});

// Binds ipc:// or tcp:// endpoints; a tcp wildcard host (*, 0.0.0.0, ::) only when
// allow_all_interfaces is set (the operator asked for it).
Status bind_endpoint(zmq::socket_t& socket, const std::string& address, bool allow_all_interfaces = false);
Status connect_endpoint(zmq::socket_t& socket, const std::string& address);
// Binds tcp://host:* (a port the kernel picks) and returns the endpoint bound, with its port.
Result<std::string> bind_any_port(zmq::socket_t& socket, const std::string& host);

// Sends one message; `routing_id` non-empty prepends the ROUTER envelope frame.
Status send(zmq::socket_t& socket, const Message& message, std::string_view routing_id = {},
            const EncodeOptions& options = {});

struct Received {
  std::string routing_id;  // ROUTER sockets only
  Message message;
};

// Waits up to `timeout` for one multipart message. Returns nullopt on timeout, an error
// value for a malformed message (which is consumed) or a socket failure (kIo). `routed`:
// the socket is a ROUTER, so the first frame is the sender's identity.
Result<std::optional<Received>> receive(zmq::socket_t& socket, std::chrono::milliseconds timeout, bool routed,
                                        const DecodeLimits& limits = {});

// As receive(), but malformed messages are logged and dropped and waiting goes on until a
// valid message or the deadline; only socket failures are errors.
Result<std::optional<Received>> receive_valid(zmq::socket_t& socket, std::chrono::milliseconds timeout, bool routed,
                                              const DecodeLimits& limits = {});

// ---------------------------------------------------------------- handshake

// Peer side (enginecore to frontend, worker to enginecore), on a DEALER socket: send Hello
// and wait for the parent's configuration; then initialize; then handshake_ready().
Result<EngineConfigMsg> handshake_hello(zmq::socket_t& dealer, const Hello& hello, std::chrono::milliseconds timeout);
Status handshake_ready(zmq::socket_t& dealer, const ReadyMsg& ready);

struct HandshakePeer {
  std::string routing_id;
  Hello hello;
  ReadyMsg ready;
};

struct HandshakeOptions {
  uint32_t expected_peers = 1;
  ProcessKind expected_kind = ProcessKind::kEngineCore;
  std::chrono::milliseconds hello_timeout{std::chrono::minutes(5)};   // all HELLOs
  std::chrono::milliseconds ready_timeout{std::chrono::minutes(10)};  // each READY after its config
  // Called between polls; a non-ok Status (a child died) ends the handshake at once.
  std::function<Status()> peers_alive;
};

// Parent side, on a ROUTER socket: answers each peer's Hello with config_for(hello) and
// returns once every expected peer is READY, ordered by rank. Ranks must be unique and below
// expected_peers; a peer speaking another protocol version fails the handshake.
Result<std::vector<HandshakePeer>> handshake_serve(
    zmq::socket_t& router, const HandshakeOptions& options,
    const std::function<Result<EngineConfigMsg>(const Hello&)>& config_for);

}  // namespace k2::protocol
