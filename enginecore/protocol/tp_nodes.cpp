#include "enginecore/protocol/tp_nodes.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "enginecore/protocol/zmq_channel.h"

namespace k2 {

std::string TpNodes::handshake_address() const {
  return protocol::tcp_address(master_addr, static_cast<int>(master_port));
}

std::string TpNodes::store_address() const {
  return protocol::tcp_address(master_addr, static_cast<int>(master_port + 1));
}

Result<TpNodes> tp_nodes_of(const EngineConfig& cfg) {
  TpNodes t;
  t.tp = cfg.tensor_parallel_size;
  t.per_node = t.tp;
  t.master_addr = cfg.master_addr;
  t.master_port = cfg.master_port;
  const int64_t nnodes = cfg.nnodes.value_or(1);
  if (nnodes <= 1) return t;
  if (cfg.data_parallel_size > 1)
    return unimplemented("--nnodes " + std::to_string(nnodes) + " with --data-parallel-size > 1: a tensor-parallel "
                         "group across nodes runs one engine; spread data-parallel ranks with --headless "
                         "--data-parallel-start-rank instead");
  if (t.tp % nnodes != 0)
    return invalid_argument("--tensor-parallel-size " + std::to_string(t.tp) + " does not divide over --nnodes " +
                            std::to_string(nnodes));
  t.nnodes = nnodes;
  t.node_rank = cfg.node_rank.value_or(0);
  if (t.node_rank < 0 || t.node_rank >= nnodes)
    return invalid_argument("--node-rank must be in [0, --nnodes " + std::to_string(nnodes) + ")");
  t.per_node = t.tp / nnodes;
  if (t.master_port < 1 || t.master_port + 1 > 65535)
    return invalid_argument("--master-port must leave room for one more port (P+1) below 65536");
  return t;
}

Result<std::string> local_address_toward(const std::string& master_addr, int64_t port) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* found = nullptr;
  const std::string service = std::to_string(port);
  if (int rc = ::getaddrinfo(master_addr.c_str(), service.c_str(), &hints, &found); rc != 0)
    return invalid_argument("--master-addr " + master_addr + ": " + ::gai_strerror(rc));
  Status status = unavailable("no route toward " + master_addr);
  std::string local;
  for (addrinfo* a = found; a != nullptr && local.empty(); a = a->ai_next) {
    const int fd = ::socket(a->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) continue;
    sockaddr_storage self{};
    socklen_t len = sizeof(self);
    char text[INET6_ADDRSTRLEN] = {};
    if (::connect(fd, a->ai_addr, a->ai_addrlen) == 0 &&
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&self), &len) == 0) {
      const void* addr = self.ss_family == AF_INET6
                             ? static_cast<const void*>(&reinterpret_cast<sockaddr_in6*>(&self)->sin6_addr)
                             : static_cast<const void*>(&reinterpret_cast<sockaddr_in*>(&self)->sin_addr);
      if (::inet_ntop(self.ss_family, addr, text, sizeof(text)) != nullptr) local = text;
    } else {
      status = unavailable("no route toward " + master_addr + ": " + std::strerror(errno));
    }
    ::close(fd);
  }
  ::freeaddrinfo(found);
  if (local.empty()) return status;
  return local;
}

}  // namespace k2
