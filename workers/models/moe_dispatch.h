// moe_forward_across_dp: one MoE layer of a data-parallel rank whose routed experts are spread
// over the workers of every data-parallel rank (vLLM's EP = TP x DP, Shard::experts_across_dp).
//
// Each DP rank brings a different batch, so the rows travel: with the expert-parallel group's
// all-reduce (deterministic, rank order, bit-identical everywhere; communicator.h),
//   1. every DP rank announces its row count (its TP rank 0 fills its slot of a D-vector);
//   2. the rows of all DP ranks are gathered into [total, hidden] (all_gather_segments, each
//      DP rank's TP rank 0 the owner of its segment); the router is replicated, so every
//      worker routes every row itself, with the same result;
//   3. every worker runs its own experts over the rows that chose them ([total, hidden] of
//      partial sums) and counts them in the expert load: each routed slot is counted once,
//      by the one worker holding its expert;
//   4. the partial sums are all-reduced over the group; each DP rank keeps its rows.
// The result this returns is the TP rank's partial sum (the routed output on TP rank 0 only,
// plus its slice of the shared expert), which the model's tensor-parallel all-reduce then
// completes as for every other layer.
//
// An idle DP rank's dummy forward takes part with zero rows (it must: the collectives pair
// up by order), so nothing is computed or counted for it. A dead peer fails the collectives
// after the communicator's timeout; nothing hangs.
//
// A free function; the collective rules of Communicator apply (every worker of the group
// calls it once per MoE layer of every forward, in the same order).
#pragma once

#include <cstdint>

#include "shm/status.h"
#include "workers/models/forward_batch.h"
#include "workers/models/moe.h"
#include "workers/parallel/communicator.h"
#include "workers/parallel/shard.h"

namespace k2 {

// x: [rows, hidden] (this DP rank's rows, the same on each of its TP ranks) -> out: [rows,
// hidden] (overwritten) as above. `experts` is the expert-parallel group (rank and size of
// shard.experts()). dummy: the rows are a dummy forward's (not dispatched; out is then only
// the shared expert's). trace: the router choices of this DP rank's rows.
Status moe_forward_across_dp(const Moe& moe, const Shard& shard, Communicator& experts, const float* x, int64_t rows,
                             bool dummy, float* out, RouterTrace* trace);

}  // namespace k2
