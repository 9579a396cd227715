// Scheduler::check_invariants: the whole-state consistency check that tests run after
// every step. Kept apart from scheduler.cpp, whose hot path it is not.
#include <string>
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
  }
  return kv_.pool().check_consistency(refs);
}

}  // namespace k2::engine
