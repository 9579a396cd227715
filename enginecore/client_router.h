// ClientRouter: the enginecore's side of several API servers sharing it (--api-server-count,
// vLLM's client_index). Every API server has its own input socket and output socket; the
// engine core sees one request namespace. The router
//   - makes request ids unique across API servers: with more than one, the ids of API server
//     k get the prefix "k:" inside the engine (with one they are untouched: exactly the
//     single-client wire protocol), and lose it again on the way out;
//   - remembers which API server each request and each utility call came from, and splits
//     one EngineOutputs of the core into one per API server, each with only its own
//     requests (ids as that API server sent them) and its own utility answer;
//   - gives the scheduler stats to every API server (each balances data-parallel ranks by
//     the queue lengths it sees), even to one without outputs in this batch.
// Owns only its maps. Not thread-safe: the engine loop's one thread uses it.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "enginecore/protocol/messages.h"

namespace k2::engine {

class ClientRouter {
 public:
  explicit ClientRouter(uint32_t num_clients) : num_clients_(num_clients == 0 ? 1 : num_clients) {}

  uint32_t num_clients() const { return num_clients_; }

  // A request that arrived on API server `client`'s socket: records it and rewrites its id
  // (and client_index, whatever the sender put there) to the engine's.
  void on_add(uint32_t client, protocol::AddRequest& add);
  // The engine's ids of the requests `client` asks to abort (ids it never sent are kept as
  // they are: the core ignores unknown ids).
  void on_abort(uint32_t client, protocol::AbortRequests& abort) const;
  // A utility call from `client`: its call_id becomes a fresh engine-wide one.
  void on_utility(uint32_t client, protocol::Utility& call);

  // One EngineOutputs per API server, in client order: index k goes to API server k's
  // output socket. Each carries the stats and timestamp; finished requests are forgotten.
  std::vector<protocol::EngineOutputs> split(protocol::EngineOutputs outputs);

  size_t num_tracked_requests() const { return request_client_.size(); }

 private:
  std::string engine_id(uint32_t client, const std::string& id) const;

  uint32_t num_clients_;
  std::unordered_map<std::string, uint32_t> request_client_;  // engine id -> API server
  // engine call id -> (API server, its call id)
  std::unordered_map<uint64_t, std::pair<uint32_t, uint64_t>> calls_;
  uint64_t next_call_id_ = 1;
};

}  // namespace k2::engine
