#include "enginecore/tp_roll_call.h"

namespace k2::engine {

TpRollCall::TpRollCall(const TpNodes& nodes, std::chrono::seconds timeout, Clock::time_point start)
    : nodes_(nodes), timeout_(timeout), start_(start), last_progress_(start), joined_(static_cast<size_t>(nodes.tp)) {}

void TpRollCall::joined(uint32_t rank) {
  if (rank < joined_.size()) joined_[rank] = true;
}

bool TpRollCall::complete() const {
  for (bool j : joined_)
    if (!j) return false;
  return true;
}

std::string TpRollCall::missing() const {
  std::string out;
  for (int64_t node = 0; node < nodes_.nnodes; ++node) {
    std::string ranks;
    for (int64_t r = node * nodes_.per_node; r < (node + 1) * nodes_.per_node; ++r) {
      if (joined_[static_cast<size_t>(r)]) continue;
      ranks += (ranks.empty() ? "" : ", ") + std::to_string(r);
    }
    if (ranks.empty()) continue;
    const bool several = ranks.find(',') != std::string::npos;
    out += (out.empty() ? "" : ", ") + std::string("node ") + std::to_string(node) + " (worker rank" +
           (several ? "s " : " ") + ranks + ")";
  }
  return out;
}

std::optional<std::string> TpRollCall::progress(Clock::time_point now) {
  if (complete() || now - last_progress_ < kProgressInterval) return std::nullopt;
  last_progress_ = now;
  const auto waited = std::chrono::duration_cast<std::chrono::seconds>(now - start_).count();
  return "tensor-parallel group across nodes: still waiting for " + missing() + " after " + std::to_string(waited) +
         " s (gives up after VLLM_ENGINE_READY_TIMEOUT_S = " + std::to_string(timeout_.count()) + " s)";
}

Status TpRollCall::check(Clock::time_point now) const {
  if (complete() || now - start_ < timeout_) return Status::ok_status();
  return unavailable(missing() + " never joined the tensor-parallel group within VLLM_ENGINE_READY_TIMEOUT_S = " +
                     std::to_string(timeout_.count()) + " s (start them with --node-rank and --headless, reaching " +
                     nodes_.handshake_address() + ")");
}

}  // namespace k2::engine
