#include "enginecore/client_router.h"

#include <algorithm>

namespace k2::engine {

std::string ClientRouter::engine_id(uint32_t client, const std::string& id) const {
  if (num_clients_ == 1) return id;
  return std::to_string(client) + ":" + id;
}

void ClientRouter::on_add(uint32_t client, protocol::AddRequest& add) {
  client = std::min(client, num_clients_ - 1);
  add.client_index = client;
  add.request_id = engine_id(client, add.request_id);
  request_client_[add.request_id] = client;
}

void ClientRouter::on_abort(uint32_t client, protocol::AbortRequests& abort) const {
  for (std::string& id : abort.request_ids) id = engine_id(client, id);
}

void ClientRouter::on_utility(uint32_t client, protocol::Utility& call) {
  client = std::min(client, num_clients_ - 1);
  const uint64_t id = next_call_id_++;
  calls_[id] = {client, call.call_id};
  call.call_id = id;
  call.client_index = client;
}

std::vector<protocol::EngineOutputs> ClientRouter::split(protocol::EngineOutputs outputs) {
  std::vector<protocol::EngineOutputs> out(num_clients_);
  for (auto& o : out) {
    o.engine_index = outputs.engine_index;
    // Expert-load totals ride only in the first stats after a change (the receiver keeps the
    // last ones); every API server serves its own /metrics, so each gets a copy.
    o.scheduler_stats = outputs.scheduler_stats;
    o.timestamp = outputs.timestamp;
  }
  for (protocol::RequestOutput& r : outputs.outputs) {
    uint32_t client = 0;
    std::string id = std::move(r.request_id);
    if (auto it = request_client_.find(id); it != request_client_.end()) {
      client = it->second;
      if (r.finish_reason != protocol::FinishReason::kNone) request_client_.erase(it);
    }
    const std::string prefix = engine_id(client, "");
    r.request_id = id.starts_with(prefix) ? id.substr(prefix.size()) : std::move(id);
    if (r.finish_reason != protocol::FinishReason::kNone) out[client].finished_requests.push_back(r.request_id);
    out[client].outputs.push_back(std::move(r));
  }
  if (outputs.utility_output) {
    uint32_t client = 0;
    if (auto it = calls_.find(outputs.utility_output->call_id); it != calls_.end()) {
      client = it->second.first;
      outputs.utility_output->call_id = it->second.second;
      calls_.erase(it);
    }
    out[client].utility_output = std::move(outputs.utility_output);
  }
  return out;
}

}  // namespace k2::engine
