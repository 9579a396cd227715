#include "kernels/cpu/linear_mt.h"

#include <algorithm>

#include "kernels/cpu/linear_impl.h"

namespace k2::cpu {
namespace {

// Runs body(staged, slice, y + first column) over the plan's tasks.
template <class Staged, class Weights, class Body>
void run_blocks(ThreadPool& pool, const Staged& x, const Weights& w, int64_t block_bytes, float* y, int64_t y_stride,
                Body body) {
  const BlockPlan plan = plan_blocks(w.n_blocks(), block_bytes, pool.size());
  if (plan.n_tasks <= 1) {
    body(x, w, y, y_stride);
    return;
  }
  pool.parallel_for(plan.n_tasks, [&](int64_t task, int) {
    const int64_t first = task * plan.blocks_per_task;
    const int64_t count = std::min(plan.blocks_per_task, w.n_blocks() - first);
    body(x, slice_blocks(w, first, count), y + first * kBlockN, y_stride);
  });
}

}  // namespace

BlockPlan plan_blocks(int64_t n_blocks, int64_t block_bytes, int threads) {
  if (threads <= 1 || n_blocks <= 1) return BlockPlan{n_blocks, n_blocks > 0 ? 1 : 0};
  int64_t per_task = ceil_div(n_blocks, threads * kTasksPerThread);
  per_task = std::max(per_task, ceil_div(kMinTaskBytes, std::max<int64_t>(block_bytes, 1)));
  per_task = ceil_div(per_task, kBlocksPerTaskGrain) * kBlocksPerTaskGrain;
  per_task = std::min(per_task, n_blocks);
  return BlockPlan{per_task, ceil_div(n_blocks, per_task)};
}

void linear_bf16_mt(ThreadPool& pool, const float* x, int64_t x_stride, int64_t rows, const Bf16Weights& w, float* y,
                    int64_t y_stride, Isa isa, ActivationPrecision act) {
  detail::check_linear_args(x_stride, rows, w.in, w.out, y_stride);
  if (rows == 0) return;
  const detail::LinearBodies bodies = detail::linear_bodies_for(isa);
  if (act == ActivationPrecision::kFloat32) {
    const detail::StagedBf16 staged = detail::stage_f32_activations(x, x_stride, rows, w.in, w.k_pairs() * 2);
    return run_blocks(pool, staged, w, w.block_elems() * 2, y, y_stride, bodies.bf16_f32act);
  }
  const detail::StagedBf16 staged =
      detail::stage_bf16_activations(x, x_stride, rows, w.in, w.k_pairs() * 2, bodies.bf16_widen);
  run_blocks(pool, staged, w, w.block_elems() * 2, y, y_stride, bodies.bf16);
}

void linear_fp8_mt(ThreadPool& pool, const float* x, int64_t x_stride, int64_t rows, const Fp8Weights& w, float* y,
                   int64_t y_stride, Isa isa) {
  detail::check_linear_args(x_stride, rows, w.in, w.out, y_stride);
  if (rows == 0) return;
  const detail::StagedBf16 staged = detail::stage_f32_activations(x, x_stride, rows, w.in, w.in);
  run_blocks(pool, staged, w, w.block_bytes() + w.block_scales() * 4, y, y_stride, detail::linear_bodies_for(isa).fp8);
}

void linear_int8_mt(ThreadPool& pool, const float* x, int64_t x_stride, int64_t rows, const Int8Weights& w, float* y,
                    int64_t y_stride, Isa isa) {
  detail::check_linear_args(x_stride, rows, w.in, w.out, y_stride);
  const detail::LinearBodies bodies = detail::linear_bodies_for(isa);
  const detail::StagedInt8 staged =
      detail::stage_int8_activations(x, x_stride, rows, w.in, w.k_quads() * 4, bodies.int8_vnni);
  run_blocks(pool, staged, w, w.block_bytes(), y, y_stride, bodies.int8);
}

void linear_int4_mt(ThreadPool& pool, const float* x, int64_t x_stride, int64_t rows, const Int4Weights& w, float* y,
                    int64_t y_stride, Isa isa, ActivationPrecision act) {
  detail::check_linear_args(x_stride, rows, w.in, w.out, y_stride);
  if (rows == 0) return;
  const detail::LinearBodies bodies = detail::linear_bodies_for(isa);
  if (act == ActivationPrecision::kFloat32) {
    const detail::StagedBf16 staged = detail::stage_f32_activations(x, x_stride, rows, w.in, w.in);
    return run_blocks(pool, staged, w, w.block_bytes() + w.block_scales() * 2, y, y_stride, bodies.int4_f32act);
  }
  const detail::StagedInt4 staged = detail::stage_int4_activations(x, x_stride, rows, w.in, w.group);
  run_blocks(pool, staged, w, w.block_bytes() + w.block_scales() * 2, y, y_stride, bodies.int4);
}

}  // namespace k2::cpu
