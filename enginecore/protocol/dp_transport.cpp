#include "enginecore/protocol/dp_transport.h"

namespace k2::protocol {

Result<DpPorts> dp_ports(int64_t rpc_port) {
  if (rpc_port <= 0 || rpc_port + 2 > 65535)
    return invalid_argument("--data-parallel-rpc-port must leave room for two more ports (P+1, P+2) below 65536");
  const int p = static_cast<int>(rpc_port);
  return DpPorts{p, p + 1, p + 2};
}

Status secure_control_socket(zmq::socket_t& socket, ControlRole role, const std::string& key_file) {
  (void)socket;
  (void)role;
  if (key_file.empty()) return Status::ok_status();
  return unimplemented("--control-plane-key-file: CURVE is not wired into the data-parallel sockets yet");
}

}  // namespace k2::protocol
