// Feed-forward blocks of the DeepSeek-V3 family on the float32 path: the dense SwiGLU MLP
// of the first layers, and the MoE block (sigmoid router with correction bias,
// group-limited top-k, renormalisation, routed scaling, shared experts).
//
// Each type owns its weights (Linear: float32 or packed); forward() is const and
// thread-compatible. The router stays float32 in every mode: expert choice is where a
// rounding difference would change the output most.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/ref/router.h"
#include "shm/status.h"
#include "workers/loader/model_config.h"
#include "workers/models/forward_batch.h"
#include "workers/models/linear.h"
#include "workers/models/weight_loader.h"

namespace k2 {

// down(silu(gate(x)) · up(x)) of width `width`.
class Mlp {
 public:
  static Result<Mlp> load(WeightLoader& loader, const std::string& prefix, int64_t hidden, int64_t width,
                          WeightLayout layout);
  // x: [rows, hidden] -> out: [rows, hidden] (overwritten).
  void forward(const float* x, int64_t rows, float* out) const;
  size_t bytes() const { return gate_.bytes() + up_.bytes() + down_.bytes(); }

 private:
  int64_t hidden_ = 0, width_ = 0;
  Linear gate_, up_;  // [width, hidden]
  Linear down_;       // [hidden, width]
};

class Moe {
 public:
  static Result<Moe> load(WeightLoader& loader, const std::string& prefix, const ModelConfig& config,
                          const WeightLayouts& layouts);
  // x: [rows, hidden] -> out: [rows, hidden] (overwritten). Fills `trace` when not null.
  void forward(const float* x, int64_t rows, float* out, RouterTrace* trace) const;
  // Weight bytes every call reads (router, shared experts) and those of one routed expert.
  size_t always_read_bytes() const;
  size_t expert_bytes() const { return experts_.empty() ? 0 : experts_[0].bytes(); }
  // Every weight byte held (all experts).
  size_t resident_bytes() const { return always_read_bytes() + experts_.size() * expert_bytes(); }
  int64_t num_experts() const { return static_cast<int64_t>(experts_.size()); }

 private:
  int64_t hidden_ = 0;
  ref::RouterParams router_;
  TensorF32 gate_;  // router [E, hidden]
  TensorF32 bias_;  // e_score_correction_bias [E]
  std::vector<Mlp> experts_;
  std::vector<Mlp> shared_;  // empty or one MLP of width moe_intermediate_size × n_shared_experts
};

}  // namespace k2
