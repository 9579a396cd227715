// Feed-forward blocks of the DeepSeek-V3 family on the float32 path: the dense SwiGLU MLP
// of the first layers, and the MoE block (sigmoid router with correction bias,
// group-limited top-k, renormalisation, routed scaling, shared experts).
//
// Each type owns its weights (Linear: float32 or packed); forward() is const and
// thread-compatible (the MoE's per-expert token counters are atomics).
//
// Sharded (Shard, workers/parallel/shard.h), each rank holds part of the block and forward()
// returns that rank's partial sum; the model adds the ranks' partial sums with one
// all-reduce. Tensor parallel: every MLP (dense, each routed expert, the shared expert) keeps
// rows [r·W/N, (r+1)·W/N) of gate/up and the same columns of down. Expert parallel: rank r
// keeps routed experts [r·E/N, (r+1)·E/N) whole (the router stays whole and replicated, so
// every rank makes the same choices) and a tensor-parallel slice of the shared expert. Expert
// parallel across data-parallel ranks (Shard::experts_across_dp): the same, over the expert-
// parallel group of every DP rank's workers; moe_dispatch.h then runs forward_routed() over the
// rows of all DP ranks and add_shared() over the rank's own. The router stays float32 in every
// mode: expert choice is where a rounding difference would change the output most.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kernels/ref/router.h"
#include "shm/status.h"
#include "workers/loader/model_config.h"
#include "workers/models/forward_batch.h"
#include "workers/models/linear.h"
#include "workers/models/weight_loader.h"
#include "workers/parallel/shard.h"

namespace k2 {

// down(silu(gate(x)) · up(x)) of width `width` (this rank's slice of it when sharded).
class Mlp {
 public:
  // `shard` splits the width (its size must divide it; checked by the model).
  static Result<Mlp> load(WeightLoader& loader, const std::string& prefix, int64_t hidden, int64_t width,
                          WeightLayout layout, const Shard& shard = {});
  // x: [rows, hidden] -> out: [rows, hidden] (overwritten). With row_scale ([rows]), row r
  // of the result is scaled by row_scale[r] (a routed expert's weight, applied to down's
  // output inside the expert's task while it is still in cache, so the combine is a plain sum).
  void forward(const float* x, int64_t rows, float* out, const float* row_scale = nullptr) const;
  size_t bytes() const { return gate_up_.bytes() + down_.bytes(); }

 private:
  int64_t hidden_ = 0, width_ = 0;
  GateUpLinear gate_up_;  // gate and up [width, hidden], one pass (fused SiLU-mul)
  Linear down_;           // [hidden, width]
};

class Moe {
 public:
  static Result<Moe> load(WeightLoader& loader, const std::string& prefix, const ModelConfig& config,
                          const WeightLayouts& layouts, const Shard& shard = {});
  // x: [rows, hidden] -> out: [rows, hidden] (overwritten, not x): this rank's routed experts plus
  // the shared experts. Fills `trace` when not null. count_load false: the rows are left out
  // of tokens_per_expert() (an idle data-parallel rank's dummy forward).
  void forward(const float* x, int64_t rows, float* out, RouterTrace* trace, bool count_load = true) const;
  // The same without the shared experts (the routed experts of this rank only).
  void forward_routed(const float* x, int64_t rows, float* out, RouterTrace* trace, bool count_load = true) const;
  // out[rows, hidden] += the shared experts' output (this rank's slice); nothing without them.
  void add_shared(const float* x, int64_t rows, float* out) const;
  int64_t hidden() const { return hidden_; }
  int64_t top_k() const { return router_.top_k; }
  // Weight bytes every call reads (router, shared experts) and those of one routed expert.
  size_t always_read_bytes() const;
  size_t expert_bytes() const { return experts_.empty() ? 0 : experts_[0].bytes(); }
  // Every weight byte held (all local experts).
  size_t resident_bytes() const { return always_read_bytes() + experts_.size() * expert_bytes(); }
  // The routed experts this rank computes: [first_expert(), first_expert() + num_experts()).
  int64_t num_experts() const { return static_cast<int64_t>(experts_.size()); }
  int64_t first_expert() const { return first_expert_; }
  // Token rows routed to each local expert since load (load-balance statistics).
  std::vector<uint64_t> tokens_per_expert() const;

 private:
  void run(const float* x, int64_t rows, float* out, RouterTrace* trace, bool count_load, bool with_shared) const;

  int64_t hidden_ = 0;
  ref::RouterParams router_;
  TensorF32 gate_;  // router [E, hidden]
  TensorF32 bias_;  // e_score_correction_bias [E]
  int64_t first_expert_ = 0;
  std::vector<Mlp> experts_;  // the local experts, from first_expert_ on
  std::unique_ptr<std::atomic<uint64_t>[]> routed_tokens_;  // [experts_.size()]
  std::vector<Mlp> shared_;  // empty or one MLP of width moe_intermediate_size × n_shared_experts
};

}  // namespace k2
