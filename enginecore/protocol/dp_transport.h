// Where the sockets of a data-parallel deployment live, and how its control plane is
// secured.
//
// One deployment (a master API server, its local enginecores, and headless nodes' engines)
// uses three well-known ports from --data-parallel-rpc-port P on --data-parallel-address:
//   P      the master's request ROUTER, which is also where engines handshake (HELLO ->
//          EngineConfigMsg -> READY) and then receive AddRequest / AbortRequests;
//   P + 1  the master's output PULL (EngineOutputs, EngineDead, heartbeats);
//   P + 2  the DP coordinator's ROUTER (request waves; bound by the engine of rank 0, or by
//          the master's API server when it runs no rank: --data-parallel-size-local 0), also
//          for hybrid and external ranks with --enable-expert-parallel (dp_setup.h).
// With --enable-expert-parallel across nodes, P + 3 is the expert-parallel group's Gloo
// rendezvous store (workers/expert_group.h), served by DP rank 0's first worker.
// With --api-server-count N, API server k (1..N-1) binds its request ROUTER on P + 2 + 2k and
// its output PULL on P + 3 + 2k (P + 4, P + 5 for the second one): remote engines are told
// every API server's addresses in the handshake, before servers 1..N-1 exist, so the ports
// are fixed like the others instead of picked by the servers.
// Engines on the master's node use ipc:// endpoints of the same sockets, in the frontend's
// run directory.
//
// With --control-plane-key-file every one of those sockets speaks CURVE (curve_auth.h), on
// ipc:// as on tcp://: a socket's security mechanism covers all its endpoints, and keeping
// one socket per role (one poll set, one routing table that learns local and remote ranks
// alike) is simpler than a second socket per role for the local engines, which hold the key
// file anyway. The cost on ipc:// is one handshake per connection and per-message
// encryption, small next to a model step. Without a key file nothing changes (vLLM's
// unauthenticated sockets).
//
// ControlPlaneSecurity: one per process, loads the key file once and owns the CURVE
// authenticator (ZAP handler) of the one zmq context that holds its server sockets; it must
// be destroyed before that context and after that context's sockets. Its methods are
// thread-safe (a socket itself belongs to the thread that uses it). The free functions are
// stateless.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include <zmq.hpp>

#include "enginecore/protocol/curve_auth.h"
#include "shm/status.h"

namespace k2::protocol {

struct DpPorts {
  int requests = 0;
  int outputs = 0;
  int coordinator = 0;
};
Result<DpPorts> dp_ports(int64_t rpc_port);
// API server `index` (>= 1)'s request and output ports (`coordinator` unused).
Result<DpPorts> api_server_ports(int64_t rpc_port, int64_t index);

// A remote engine sends a heartbeat (DpControl kHeartbeat) on its output socket this often;
// the master declares it dead after kDpPeerTimeout without one (reported within 5 s of a
// node's death), and a headless engine gives up on a master it has not heard from in
// kDpMasterTimeout.
inline constexpr std::chrono::milliseconds kDpHeartbeatInterval{1000};
inline constexpr std::chrono::milliseconds kDpPeerTimeout{3000};
inline constexpr std::chrono::milliseconds kDpMasterTimeout{15000};

// How long a deployment waits for the ranks and nodes started by hand (data-parallel ranks,
// a tensor-parallel group's other nodes) before giving up: VLLM_ENGINE_READY_TIMEOUT_S, as
// vLLM (default 600 s; a value that is not a positive integer is the default).
std::chrono::seconds engine_ready_timeout();

// A client whose security handshake failed this many times in a row, without one success,
// is being refused by its server (another key, or none): it gives up instead of retrying
// until its startup timeout.
inline constexpr int kControlHandshakeFailuresToGiveUp = 5;

class ControlPlaneSecurity {
 public:
  // `key_file` is --control-plane-key-file: "" = unauthenticated (vLLM's behaviour);
  // otherwise the file is read and checked here, once for the whole process.
  static Result<std::unique_ptr<ControlPlaneSecurity>> load(const std::string& key_file);
  ~ControlPlaneSecurity();
  ControlPlaneSecurity(const ControlPlaneSecurity&) = delete;
  ControlPlaneSecurity& operator=(const ControlPlaneSecurity&) = delete;

  bool curve() const { return keys_.has_value(); }

  // Before bind: makes `socket` a CURVE server and starts the authenticator of `context`
  // on first use (one context per process: another one is an error), which then also logs
  // peers of `socket` that fail the handshake, under `label`. No-op without keys.
  Status secure_server(zmq::context_t& context, zmq::socket_t& socket, std::string_view label);
  // Before connect: makes `socket` a CURVE client with the deployment keys. No-op without keys.
  Status secure_client(zmq::socket_t& socket) const;

  // Peers refused so far by the authenticator (0 without keys or server sockets).
  uint64_t refused() const;

 private:
  explicit ControlPlaneSecurity(std::optional<CurveKeys> keys) : keys_(std::move(keys)) {}

  const std::optional<CurveKeys> keys_;
  mutable std::mutex mutex_;  // guards the two below
  zmq::context_t* context_ = nullptr;
  std::unique_ptr<CurveAuthenticator> authenticator_;
};

// Connects the client `socket` (of `context`) to `address` and waits until its ZMTP security
// handshake with the server succeeded, so that a node the server refuses learns it within
// seconds instead of queueing messages that are never delivered. Fails (kInvalidArgument: a
// configuration error) after kControlHandshakeFailuresToGiveUp failures in a row, or one
// authentication refusal or protocol error (libzmq gives up on those itself), saying what to check; kUnavailable when no server answered in `timeout`.
// Must be called from the socket's thread.
Status connect_and_await_handshake(zmq::context_t& context, zmq::socket_t& socket, const std::string& address,
                                   std::chrono::milliseconds timeout);

}  // namespace k2::protocol
