#include "workers/models/moe.h"

#include <algorithm>

#include "kernels/ref/dense.h"

namespace k2 {

Result<Mlp> Mlp::load(WeightLoader& w, const std::string& prefix, int64_t hidden, int64_t width,
                      WeightLayout layout, const Shard& shard) {
  if (!shard.divides(width)) {
    return invalid_argument(prefix + ": the MLP width " + std::to_string(width) + " does not divide by the " +
                            shard.describe());
  }
  Mlp m;
  m.hidden_ = hidden;
  m.width_ = shard.count(width);
  const int64_t first = shard.first(width);
  K2_ASSIGN_OR_RETURN(m.gate_, w.linear_rows(prefix + "gate_proj", width, hidden, first, m.width_, layout));
  K2_ASSIGN_OR_RETURN(m.up_, w.linear_rows(prefix + "up_proj", width, hidden, first, m.width_, layout));
  K2_ASSIGN_OR_RETURN(m.down_, w.linear_columns(prefix + "down_proj", hidden, width, first, m.width_, layout));
  return m;
}

void Mlp::forward(const float* x, int64_t rows, float* out) const {
  std::vector<float> g(static_cast<size_t>(rows * width_)), u(g.size());  // [rows, width]
  gate_.forward(x, rows, g.data());
  up_.forward(x, rows, u.data());
  ref::silu_mul(g.data(), u.data(), rows * width_, g.data());
  down_.forward(g.data(), rows, out);
}

Result<Moe> Moe::load(WeightLoader& w, const std::string& prefix, const ModelConfig& c,
                      const WeightLayouts& layouts, const Shard& shard) {
  Moe m;
  m.hidden_ = c.hidden_size;
  m.router_ = ref::RouterParams{.num_experts = c.n_routed_experts,
                                .top_k = c.num_experts_per_tok,
                                .n_group = c.n_group,
                                .topk_group = c.topk_group,
                                .renormalize = c.norm_topk_prob,
                                .routed_scaling = static_cast<float>(c.routed_scaling_factor)};
  const ref::RouterParams& r = m.router_;
  if (r.top_k < 1 || r.top_k > r.num_experts || r.n_group < 1 || r.num_experts % r.n_group != 0 ||
      r.topk_group < 1 || r.topk_group > r.n_group || r.top_k > r.topk_group * (r.num_experts / r.n_group)) {
    return invalid_argument(
        "config num_experts_per_tok / n_group / topk_group do not fit n_routed_experts (the kept groups must hold "
        "num_experts_per_tok experts)");
  }
  K2_ASSIGN_OR_RETURN(m.gate_, w.tensor(prefix + "gate.weight", {c.n_routed_experts, c.hidden_size}));
  K2_ASSIGN_OR_RETURN(m.bias_, w.tensor(prefix + "gate.e_score_correction_bias", {c.n_routed_experts}));
  // Expert parallel: whole experts, a contiguous range per rank. Tensor parallel: a slice of each.
  const bool whole = shard.expert_parallel && shard.sharded();
  if (whole && !shard.divides(c.n_routed_experts)) {
    return invalid_argument("config n_routed_experts " + std::to_string(c.n_routed_experts) + " does not divide by the " +
                            shard.describe());
  }
  m.first_expert_ = whole ? shard.first(c.n_routed_experts) : 0;
  const int64_t local = whole ? shard.count(c.n_routed_experts) : c.n_routed_experts;
  for (int64_t e = m.first_expert_; e < m.first_expert_ + local; ++e) {
    K2_ASSIGN_OR_RETURN(Mlp expert, Mlp::load(w, prefix + "experts." + std::to_string(e) + ".", c.hidden_size,
                                              c.moe_intermediate_size, layouts.experts, whole ? Shard{} : shard));
    m.experts_.push_back(std::move(expert));
  }
  m.routed_tokens_ = std::make_unique<std::atomic<uint64_t>[]>(static_cast<size_t>(local));
  if (c.n_shared_experts > 0) {
    K2_ASSIGN_OR_RETURN(Mlp shared, Mlp::load(w, prefix + "shared_experts.", c.hidden_size,
                                              c.moe_intermediate_size * c.n_shared_experts, layouts.dense, shard));
    m.shared_.push_back(std::move(shared));
  }
  return m;
}

std::vector<uint64_t> Moe::tokens_per_expert() const {
  std::vector<uint64_t> counts(experts_.size());
  for (size_t i = 0; i < counts.size(); ++i) counts[i] = routed_tokens_[i].load(std::memory_order_relaxed);
  return counts;
}

size_t Moe::always_read_bytes() const {
  size_t b = (gate_.data.size() + bias_.data.size()) * sizeof(float);
  for (const Mlp& s : shared_) b += s.bytes();
  return b;
}

void Moe::forward(const float* x, int64_t rows, float* out, RouterTrace* trace) const {
  const int64_t n_exp = router_.num_experts, k = router_.top_k, d = hidden_;
  // Router: sigmoid scores, biased selection, weights [rows, k].
  std::vector<float> logits(static_cast<size_t>(rows * n_exp));  // [rows, E]
  ref::linear(x, d, gate_.data.data(), d, rows, d, n_exp, logits.data(), n_exp);
  std::vector<int32_t> idx(static_cast<size_t>(rows * k));
  std::vector<float> weights(idx.size()), gap(static_cast<size_t>(rows)), group_gap(gap.size());
  ref::moe_route(logits.data(), bias_.data.data(), rows, router_, idx.data(), weights.data(), gap.data(),
                 group_gap.data());

  // Routed experts over the rows that chose them, each expert's weights streamed once per
  // call. The experts used (and the shared one) are independent tasks: with a thread pool
  // they run side by side, one thread each, without a barrier per expert; the weighted sum
  // is then taken in expert order, so the result does not depend on the schedule.
  // Only this rank's experts (all of them unless expert parallel); `used` holds global ids.
  std::vector<std::vector<int64_t>> slots(static_cast<size_t>(n_exp));  // per expert: row * k + j
  for (int64_t s = 0; s < rows * k; ++s) slots[static_cast<size_t>(idx[s])].push_back(s);
  std::vector<int64_t> used;
  for (int64_t e = first_expert_; e < first_expert_ + num_experts(); ++e) {
    if (slots[static_cast<size_t>(e)].empty()) continue;
    used.push_back(e);
    routed_tokens_[static_cast<size_t>(e - first_expert_)].fetch_add(slots[static_cast<size_t>(e)].size(),
                                                                     std::memory_order_relaxed);
  }
  const int64_t n_tasks = static_cast<int64_t>(used.size()) + (shared_.empty() ? 0 : 1);
  std::vector<std::vector<float>> ys(static_cast<size_t>(n_tasks));  // per task: [m, hidden]
  parallel_tasks(n_tasks, [&](int64_t t) {
    std::vector<float>& y = ys[static_cast<size_t>(t)];
    if (t == static_cast<int64_t>(used.size())) {  // the shared expert, over every row
      y.resize(static_cast<size_t>(rows * d));
      shared_[0].forward(x, rows, y.data());
      return;
    }
    const std::vector<int64_t>& chosen = slots[static_cast<size_t>(used[t])];
    const int64_t m = static_cast<int64_t>(chosen.size());
    std::vector<float> xe(static_cast<size_t>(m * d));  // [m, hidden]
    for (int64_t i = 0; i < m; ++i) std::copy_n(x + (chosen[i] / k) * d, d, xe.data() + i * d);
    y.resize(xe.size());
    experts_[static_cast<size_t>(used[t] - first_expert_)].forward(xe.data(), m, y.data());
  });
  std::fill(out, out + rows * d, 0.0f);
  for (size_t t = 0; t < used.size(); ++t) {
    const std::vector<int64_t>& chosen = slots[static_cast<size_t>(used[t])];
    for (size_t i = 0; i < chosen.size(); ++i)
      ref::axpy(weights[chosen[i]], ys[t].data() + i * d, d, out + (chosen[i] / k) * d);
  }
  if (!shared_.empty()) ref::axpy(1.0f, ys.back().data(), rows * d, out);
  if (trace != nullptr) {
    trace->idx = std::move(idx);
    trace->weights = std::move(weights);
    trace->gap = std::move(gap);
    trace->group_gap = std::move(group_gap);
  }
}

}  // namespace k2
