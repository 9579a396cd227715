#include "workers/models/moe_dispatch.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "workers/parallel/all_gather.h"

namespace k2 {
namespace {

// Row counts are small integers, exact in float; anything else means the group disagrees.
Result<std::vector<int64_t>> exchange_row_counts(const Shard& shard, Communicator& experts, int64_t rows,
                                                 bool dummy) {
  std::vector<float> counts(static_cast<size_t>(shard.dp_size), 0.0f);
  if (shard.rank == 0 && !dummy) counts[static_cast<size_t>(shard.dp_rank)] = static_cast<float>(rows);
  K2_RETURN_IF_ERROR(experts.all_reduce_sum(counts));
  std::vector<int64_t> first_row(counts.size() + 1, 0);  // of each DP rank in the gathered rows
  for (size_t i = 0; i < counts.size(); ++i) {
    const float c = counts[i];
    if (!(c >= 0.0f && c < 16777216.0f) || std::floor(c) != c) {
      return internal_error("expert dispatch: data-parallel rank " + std::to_string(i) + " announced " +
                            std::to_string(c) + " rows");
    }
    first_row[i + 1] = first_row[i] + static_cast<int64_t>(c);
  }
  const int64_t mine = first_row[static_cast<size_t>(shard.dp_rank) + 1] - first_row[static_cast<size_t>(shard.dp_rank)];
  if (mine != (dummy ? 0 : rows)) {
    return internal_error("expert dispatch: this rank sent " + std::to_string(rows) + " rows, the group counted " +
                          std::to_string(mine));
  }
  return first_row;
}

void slice_trace(const RouterTrace& all, int64_t first, int64_t rows, int64_t k, RouterTrace& out) {
  auto part = [](const auto& v, int64_t begin, int64_t n) {
    return std::vector(v.begin() + begin, v.begin() + begin + n);
  };
  out.idx = part(all.idx, first * k, rows * k);
  out.weights = part(all.weights, first * k, rows * k);
  out.gap = part(all.gap, first, rows);
  out.group_gap = part(all.group_gap, first, rows);
}

}  // namespace

Status moe_forward_across_dp(const Moe& moe, const Shard& shard, Communicator& experts, const float* x, int64_t rows,
                             bool dummy, float* out, RouterTrace* trace) {
  const Shard group = shard.experts();
  if (!shard.experts_across_dp() || experts.size() != group.size || experts.rank() != group.rank) {
    return invalid_argument("expert dispatch needs the expert-parallel group of " + shard.describe());
  }
  const int64_t d = moe.hidden();
  K2_ASSIGN_OR_RETURN(std::vector<int64_t> first_row, exchange_row_counts(shard, experts, rows, dummy));
  const int64_t total = first_row.back();
  const int64_t mine = first_row[static_cast<size_t>(shard.dp_rank)];
  std::fill(out, out + rows * d, 0.0f);
  if (total > 0) {  // every worker sees the same total: all skip together
    std::vector<float> gathered(static_cast<size_t>(total * d));
    if (!dummy) std::copy_n(x, rows * d, gathered.data() + mine * d);
    std::vector<size_t> offsets;
    std::vector<int> owners;
    for (int r = 0; r < shard.dp_size; ++r) {
      offsets.push_back(static_cast<size_t>(first_row[static_cast<size_t>(r)] * d));
      owners.push_back(r * shard.size);  // the DP rank's TP rank 0
    }
    offsets.push_back(static_cast<size_t>(total * d));
    K2_RETURN_IF_ERROR(all_gather_segments(experts, gathered, offsets, owners));
    std::vector<float> partial(gathered.size());
    RouterTrace routes;
    moe.forward_routed(gathered.data(), total, partial.data(), trace != nullptr ? &routes : nullptr);
    K2_RETURN_IF_ERROR(experts.all_reduce_sum(partial));
    // Complete on every TP rank; the TP all-reduce adds the ranks' outputs, so only one keeps it.
    if (shard.rank == 0 && !dummy) std::copy_n(partial.data() + mine * d, rows * d, out);
    if (trace != nullptr && !dummy) slice_trace(routes, mine, rows, moe.top_k(), *trace);
  }
  moe.add_shared(x, rows, out);
  return Status::ok_status();
}

}  // namespace k2
