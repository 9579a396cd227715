#include "workers/models/moe.h"

#include <algorithm>
#include <mutex>
#include <optional>

#include "kernels/cpu/linear_f32.h"
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
  K2_ASSIGN_OR_RETURN(Linear gate, w.linear_rows(prefix + "gate_proj", width, hidden, first, m.width_, layout));
  K2_ASSIGN_OR_RETURN(Linear up, w.linear_rows(prefix + "up_proj", width, hidden, first, m.width_, layout));
  K2_ASSIGN_OR_RETURN(m.gate_up_, GateUpLinear::from(std::move(gate), std::move(up)));
  K2_ASSIGN_OR_RETURN(m.down_, w.linear_columns(prefix + "down_proj", hidden, width, first, m.width_, layout));
  return m;
}

void Mlp::forward(const float* x, int64_t rows, float* out, const float* row_scale) const {
  thread_local std::vector<float> h;  // [rows, width]; reused: no page faults per call
  h.resize(static_cast<size_t>(rows * width_));
  gate_up_.forward(x, rows, h.data());
  down_.forward(h.data(), rows, out);
  if (row_scale == nullptr) return;
  // Scaled on the cache-hot output (the same float products the weighted sum would take).
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t i = 0; i < hidden_; ++i) out[r * hidden_ + i] *= row_scale[r];
  }
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
  // Expert parallel: whole experts, a contiguous range per rank of the expert-parallel group
  // (which may span data-parallel ranks). Tensor parallel: a slice of each.
  const Shard experts = shard.experts();
  const bool whole = experts.expert_parallel && experts.sharded();
  if (whole && !experts.divides(c.n_routed_experts)) {
    return invalid_argument("config n_routed_experts " + std::to_string(c.n_routed_experts) + " does not divide by the " +
                            shard.describe());
  }
  m.first_expert_ = whole ? experts.first(c.n_routed_experts) : 0;
  const int64_t local = whole ? experts.count(c.n_routed_experts) : c.n_routed_experts;
  for (int64_t e = m.first_expert_; e < m.first_expert_ + local; ++e) {
    K2_ASSIGN_OR_RETURN(Mlp expert, Mlp::load(w, prefix + "experts." + std::to_string(e) + ".", c.hidden_size,
                                              c.moe_intermediate_size, layouts.experts, whole ? Shard{} : experts));
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

void Moe::forward(const float* x, int64_t rows, float* out, RouterTrace* trace, bool count_load) const {
  run(x, rows, out, trace, count_load, /*with_shared=*/true);
}

void Moe::forward_routed(const float* x, int64_t rows, float* out, RouterTrace* trace, bool count_load) const {
  run(x, rows, out, trace, count_load, /*with_shared=*/false);
}

void Moe::add_shared(const float* x, int64_t rows, float* out) const {
  if (shared_.empty()) return;
  thread_local std::vector<float> y;  // [rows, hidden]
  y.resize(static_cast<size_t>(rows * hidden_));
  shared_[0].forward(x, rows, y.data());
  ref::axpy(1.0f, y.data(), rows * hidden_, out);
}

namespace {

// The routed experts' outputs summed into `out` in task (= expert) order as the tasks finish:
// task t's rows are added once tasks 0..t-1 have been, so every row's sum has the same order
// whatever the schedule (results do not depend on the thread count), while only the outputs
// of tasks that finished ahead of an earlier one are held (a few, not every routed row: a
// 1024-token prefill at top-8 would otherwise hold 8192 rows of hidden floats).
class ExpertSum {
 public:
  // order[first + i]: the slot (row * k + j) of row i of the task whose rows start at `first`.
  ExpertSum(float* out, int64_t d, int64_t k, const int64_t* order, int64_t tasks)
      : out_(out), d_(d), k_(k), order_(order), pending_(static_cast<size_t>(tasks)) {}

  // An output buffer for `rows` rows (a finished task's, reused).
  std::vector<float> buffer(int64_t rows) {
    std::vector<float> b;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!spare_.empty()) {
        b = std::move(spare_.back());
        spare_.pop_back();
      }
    }
    b.resize(static_cast<size_t>(rows * d_));
    return b;
  }

  // Task t's output y ([rows, d], its rows starting at `first` in the order).
  void add(int64_t t, int64_t first, std::vector<float> y) {
    std::lock_guard<std::mutex> lock(mu_);
    pending_[static_cast<size_t>(t)] = Finished{first, std::move(y)};
    for (; next_ < static_cast<int64_t>(pending_.size()) && pending_[static_cast<size_t>(next_)]; ++next_) {
      Finished& f = *pending_[static_cast<size_t>(next_)];
      const int64_t n = static_cast<int64_t>(f.y.size()) / d_;
      for (int64_t i = 0; i < n; ++i)
        ref::axpy(1.0f, f.y.data() + i * d_, d_, out_ + (order_[f.first + i] / k_) * d_);
      spare_.push_back(std::move(f.y));
      pending_[static_cast<size_t>(next_)].reset();
    }
  }

 private:
  struct Finished {
    int64_t first;
    std::vector<float> y;
  };
  float* out_;
  int64_t d_, k_;
  const int64_t* order_;
  std::mutex mu_;
  std::vector<std::optional<Finished>> pending_;
  std::vector<std::vector<float>> spare_;
  int64_t next_ = 0;
};

}  // namespace

void Moe::run(const float* x, int64_t rows, float* out, RouterTrace* trace, bool count_load, bool with_shared) const {
  const int64_t n_exp = router_.num_experts, k = router_.top_k, d = hidden_;
  // Router: sigmoid scores, biased selection, weights [rows, k].
  std::vector<float> logits(static_cast<size_t>(rows * n_exp));  // [rows, E]
  // == ref::linear, bit for bit. Rows are independent, so a batch's rows are split over the
  // pool (at batch 32 the serial router was ~10% of a decode step).
  constexpr int64_t kRouterRows = 4;
  parallel_tasks((rows + kRouterRows - 1) / kRouterRows, [&](int64_t t) {
    const int64_t r0 = t * kRouterRows, n = std::min(kRouterRows, rows - r0);
    cpu::linear_f32_exact(x + r0 * d, d, gate_.data.data(), d, n, d, n_exp, logits.data() + r0 * n_exp, n_exp);
  });
  std::vector<int32_t> idx(static_cast<size_t>(rows * k));
  std::vector<float> weights(idx.size()), gap(static_cast<size_t>(rows)), group_gap(gap.size());
  ref::moe_route(logits.data(), bias_.data.data(), rows, router_, idx.data(), weights.data(), gap.data(),
                 group_gap.data());

  // Routed experts over the rows that chose them, each expert's weights streamed once per
  // call (gate+up in one fused pass, the routing weight applied to down's output in the
  // task). The experts used (and the shared one) are independent tasks: with a thread pool
  // they run side by side, one thread each, without a barrier per expert; the outputs are
  // then summed in expert order, so the result does not depend on the schedule.
  // Only this rank's experts (all of them unless expert parallel); `used` holds global ids.
  std::vector<int64_t> count(static_cast<size_t>(n_exp) + 1, 0);  // slots per expert, then offsets
  for (int64_t s = 0; s < rows * k; ++s) ++count[static_cast<size_t>(idx[s]) + 1];
  std::vector<int64_t> used, offset;  // per task: expert id, first slot in `order`
  int64_t routed = 0;
  for (int64_t e = first_expert_; e < first_expert_ + num_experts(); ++e) {
    const int64_t m = count[static_cast<size_t>(e) + 1];
    if (m == 0) continue;
    used.push_back(e);
    offset.push_back(routed);
    routed += m;
    if (count_load) {
      routed_tokens_[static_cast<size_t>(e - first_expert_)].fetch_add(static_cast<uint64_t>(m),
                                                                       std::memory_order_relaxed);
    }
  }
  offset.push_back(routed);
  // order[offset[t] + i]: the i-th slot (row * k + j) of task t's expert, rows ascending.
  std::vector<int64_t> order(static_cast<size_t>(routed)), next(offset.begin(), offset.end() - 1);
  std::vector<int64_t> task_of(static_cast<size_t>(n_exp), -1);
  for (size_t t = 0; t < used.size(); ++t) task_of[static_cast<size_t>(used[t])] = static_cast<int64_t>(t);
  for (int64_t s = 0; s < rows * k; ++s) {
    const int64_t t = task_of[static_cast<size_t>(idx[s])];
    if (t >= 0) order[static_cast<size_t>(next[static_cast<size_t>(t)]++)] = s;
  }
  const bool shared = with_shared && !shared_.empty();
  thread_local std::vector<float> shared_buffer;  // [rows, hidden]; reused across calls
  if (shared) shared_buffer.resize(static_cast<size_t>(rows * d));
  float* const y_shared = shared_buffer.data();  // (the tasks' threads have their own thread_locals)
  std::fill(out, out + rows * d, 0.0f);
  ExpertSum sum(out, d, k, order.data(), static_cast<int64_t>(used.size()));
  parallel_tasks(static_cast<int64_t>(used.size()) + (shared ? 1 : 0), [&](int64_t t) {
    if (t == static_cast<int64_t>(used.size())) {  // the shared expert, over every row
      shared_[0].forward(x, rows, y_shared);
      return;
    }
    const int64_t first = offset[static_cast<size_t>(t)], m = offset[static_cast<size_t>(t) + 1] - first;
    thread_local std::vector<float> xe, we;  // [m, hidden], [m]
    xe.resize(static_cast<size_t>(m * d));
    we.resize(static_cast<size_t>(m));
    for (int64_t i = 0; i < m; ++i) {
      const int64_t slot = order[static_cast<size_t>(first + i)];
      std::copy_n(x + (slot / k) * d, d, xe.data() + i * d);
      we[static_cast<size_t>(i)] = weights[static_cast<size_t>(slot)];
    }
    std::vector<float> y = sum.buffer(m);
    experts_[static_cast<size_t>(used[t] - first_expert_)].forward(xe.data(), m, y.data(), we.data());
    sum.add(t, first, std::move(y));
  });
  if (shared) ref::axpy(1.0f, y_shared, rows * d, out);
  if (trace != nullptr) {
    trace->idx = std::move(idx);
    trace->weights = std::move(weights);
    trace->gap = std::move(gap);
    trace->group_gap = std::move(group_gap);
  }
}

}  // namespace k2
