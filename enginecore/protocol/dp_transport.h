// Where the sockets of a data-parallel deployment live, and the one place a tcp:// control
// socket is secured.
//
// One deployment (a master API server, its local enginecores, and headless nodes' engines)
// uses three well-known ports from --data-parallel-rpc-port P on --data-parallel-address:
//   P      the master's request ROUTER, which is also where engines handshake (HELLO ->
//          EngineConfigMsg -> READY) and then receive AddRequest / AbortRequests;
//   P + 1  the master's output PULL (EngineOutputs, EngineDead, heartbeats);
//   P + 2  the DP coordinator's ROUTER (request waves; bound by the engine of rank 0).
// Engines on the master's node use ipc:// sockets in the frontend's run directory instead.
//
// Stateless functions; thread-safe.
#pragma once

#include <chrono>
#include <string>

#include <zmq.hpp>

#include "shm/status.h"

namespace k2::protocol {

struct DpPorts {
  int requests = 0;
  int outputs = 0;
  int coordinator = 0;
};
Result<DpPorts> dp_ports(int64_t rpc_port);

// A remote engine sends a heartbeat (DpControl kHeartbeat) on its output socket this often;
// the master declares it dead after kDpPeerTimeout without one (reported within 5 s of a
// node's death), and a headless engine gives up on a master it has not heard from in
// kDpMasterTimeout.
inline constexpr std::chrono::milliseconds kDpHeartbeatInterval{1000};
inline constexpr std::chrono::milliseconds kDpPeerTimeout{3000};
inline constexpr std::chrono::milliseconds kDpMasterTimeout{15000};

enum class ControlRole { kServer, kClient };

// Every tcp:// socket of the control plane goes through here once, before bind/connect.
// `key_file` is --control-plane-key-file ("" = unauthenticated, as vLLM). CURVE
// (enginecore/protocol/curve_auth.h) is applied here when a key file is given; until it is
// wired a key file is refused rather than silently ignored.
Status secure_control_socket(zmq::socket_t& socket, ControlRole role, const std::string& key_file);

}  // namespace k2::protocol
