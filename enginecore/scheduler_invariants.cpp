// Scheduler::check_invariants: the whole-state consistency check that tests run after
// every step. Kept apart from scheduler.cpp, whose hot path it is not.
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "enginecore/scheduler.h"

namespace k2::engine {

namespace {

Status check_request_blocks(const Request& request, const KvBlockManager& kv, std::vector<int32_t>& refs) {
  const RequestBlocks& blocks = request.blocks();
  std::unordered_set<BlockId> seen;
  for (BlockId b : blocks.block_table) {
    if (b <= kNullBlock || b >= static_cast<BlockId>(refs.size())) {
      return internal_error("request " + request.id() + " holds invalid block " + std::to_string(b));
    }
    if (!seen.insert(b).second) {
      return internal_error("request " + request.id() + " holds block " + std::to_string(b) + " twice");
    }
    ++refs[static_cast<size_t>(b)];
  }
  const auto table_size = static_cast<int32_t>(blocks.block_table.size());
  if (blocks.num_hashed_blocks > table_size || blocks.num_sent_blocks > table_size) {
    return internal_error("request " + request.id() + " counts more blocks than it holds");
  }
  if (request.status() == RequestStatus::kRunning) {
    if (table_size != kv.blocks_needed(request.num_computed_tokens())) {
      return internal_error("request " + request.id() + " holds " + std::to_string(table_size) +
                            " blocks for " + std::to_string(request.num_computed_tokens()) + " tokens");
    }
    if (blocks.num_sent_blocks != table_size) {
      return internal_error("request " + request.id() + " has blocks the workers were not told about");
    }
  } else if (table_size != 0 || request.num_computed_tokens() != 0) {
    return internal_error("queued request " + request.id() + " holds blocks or progress");
  }
  return {};
}

// Queued requests hold no encoder outputs; a running one holds every item its computed
// tokens reach into but do not pass (the next chunk reads its rows).
Status check_request_media(const Request& request) {
  const std::vector<MediaSpan>& media = request.media();
  const bool running = request.status() == RequestStatus::kRunning;
  for (size_t i = 0; i < media.size(); ++i) {
    if (!running && request.media_encoded(i)) {
      return internal_error("queued request " + request.id() + " counts media item " + std::to_string(i) + " as encoded");
    }
    const bool straddles = media[i].offset < request.num_computed_tokens() && media[i].end() > request.num_computed_tokens();
    if (running && straddles && !request.media_encoded(i)) {
      return internal_error("request " + request.id() + " is inside media item " + std::to_string(i) +
                            ", which was never encoded");
    }
  }
  return {};
}

// The encoder budget's count of holders per content equals the requests' media flags.
Status check_media_holders(const std::unordered_map<std::string, std::unique_ptr<Request>>& requests,
                           const EncoderBudget& encoder) {
  std::unordered_map<BlockHash, int32_t, BlockHashHasher> holders;
  for (const auto& [id, request] : requests) {
    for (size_t i = 0; i < request->media().size(); ++i) {
      if (request->media_encoded(i)) ++holders[request->media()[i].hash];
    }
  }
  if (holders.size() != encoder.num_held_hashes()) {
    return internal_error("the encoder budget counts " + std::to_string(encoder.num_held_hashes()) +
                          " held contents, the requests hold " + std::to_string(holders.size()));
  }
  for (const auto& [hash, n] : holders) {
    if (encoder.num_holders(hash) != n) return internal_error("the encoder budget miscounts a content's holders");
  }
  return {};
}

}  // namespace

Status Scheduler::check_invariants() const {
  if (running_.size() > static_cast<size_t>(config_.max_num_seqs)) return internal_error("max_num_seqs exceeded");
  if (running_.size() + waiting_.size() != requests_.size()) {
    return internal_error("requests " + std::to_string(requests_.size()) + " != running " +
                          std::to_string(running_.size()) + " + waiting " + std::to_string(waiting_.size()));
  }
  std::unordered_set<const Request*> queued;
  for (const Request* r : running_) {
    if (r->status() != RequestStatus::kRunning || !queued.insert(r).second) {
      return internal_error("running list holds " + r->id() + " wrongly");
    }
  }
  for (const Request* r : waiting_) {
    const bool waiting = r->status() == RequestStatus::kWaiting || r->status() == RequestStatus::kPreempted;
    if (!waiting || !queued.insert(r).second) return internal_error("waiting queue holds " + r->id() + " wrongly");
  }
  std::vector<int32_t> refs(static_cast<size_t>(kv_.pool().num_blocks()), 0);
  for (const auto& [id, request] : requests_) {
    if (!queued.contains(request.get())) return internal_error("request " + id + " is in no queue");
    if (request->num_tokens() > config_.max_model_len) return internal_error("request " + id + " exceeds max_model_len");
    K2_RETURN_IF_ERROR(check_request_blocks(*request, kv_, refs));
    K2_RETURN_IF_ERROR(check_request_media(*request));
  }
  K2_RETURN_IF_ERROR(check_media_holders(requests_, encoder_));
  return kv_.pool().check_consistency(refs);
}

}  // namespace k2::engine
