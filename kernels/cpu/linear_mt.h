// Threaded linear layers: one matrix split by output blocks over a ThreadPool.
//
// The activations are prepared once on the calling thread (rounded to bf16, quantised to
// int8 or kept in float32, exactly as the single-thread kernels do), then each task computes a run of
// whole 16-output blocks (slice_blocks) with the kernel of `isa`. Results are identical,
// bit for bit, to the single-thread cpu_ops_for(isa) kernel on the same arguments.
//
// Task size: about kTasksPerThread tasks per pool thread (dynamic claiming balances a
// slow or descheduled thread at that granularity), at least kMinTaskBytes of weights per
// task (so the per-task cost stays under ~1% of its streaming time), in multiples of
// kBlocksPerTaskGrain blocks (the AVX-512 kernels' widest tile). A matrix that makes one
// task runs on the calling thread without waking the pool.
//
// Stateless; thread-safe as far as the pool is (calls on one pool are serialised).
#pragma once

#include <cstdint>

#include "kernels/cpu/isa.h"
#include "kernels/cpu/ops.h"
#include "kernels/cpu/packed.h"
#include "kernels/cpu/thread_pool.h"

namespace k2::cpu {

inline constexpr int64_t kTasksPerThread = 8;
inline constexpr int64_t kMinTaskBytes = int64_t{64} << 10;
inline constexpr int64_t kBlocksPerTaskGrain = 4;

struct BlockPlan {
  int64_t blocks_per_task = 0;
  int64_t n_tasks = 0;
};
// How n_blocks blocks of block_bytes each are cut into tasks for `threads` threads.
BlockPlan plan_blocks(int64_t n_blocks, int64_t block_bytes, int threads);

// Same contracts as CpuOps::linear_* (ops.h), computed by pool's threads.
// (`act` picks linear_bf16 or linear_bf16_f32act, linear_int4 or linear_int4_f32act.)
void linear_bf16_mt(ThreadPool& pool, const float* x, int64_t x_stride, int64_t rows, const Bf16Weights& w, float* y,
                    int64_t y_stride, Isa isa = active_isa(), ActivationPrecision act = ActivationPrecision::kReduced);
void linear_fp8_mt(ThreadPool& pool, const float* x, int64_t x_stride, int64_t rows, const Fp8Weights& w, float* y,
                   int64_t y_stride, Isa isa = active_isa());
void linear_int8_mt(ThreadPool& pool, const float* x, int64_t x_stride, int64_t rows, const Int8Weights& w, float* y,
                    int64_t y_stride, Isa isa = active_isa());
void linear_int4_mt(ThreadPool& pool, const float* x, int64_t x_stride, int64_t rows, const Int4Weights& w, float* y,
                    int64_t y_stride, Isa isa = active_isa(), ActivationPrecision act = ActivationPrecision::kReduced);

}  // namespace k2::cpu
