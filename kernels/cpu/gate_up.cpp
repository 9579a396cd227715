#include "kernels/cpu/gate_up.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/check.h"
#include "kernels/cpu/linear_impl.h"
#include "kernels/cpu/linear_mt.h"
#include "kernels/ref/dense.h"

namespace k2::cpu {
namespace {

// Block pairs per body call: 12 blocks, a multiple of every AVX-512 tile width (4, 2, 3),
// so no chunk ends in a narrow tail tile; the scratch tile is rows × 192 floats.
constexpr int64_t kPairsPerChunk = 6;

// Copies `blocks` blocks of `stride` units from a and b alternately into dst.
template <class T>
void interleave(T* dst, const T* a, const T* b, int64_t blocks, int64_t stride) {
  const size_t bytes = static_cast<size_t>(stride) * sizeof(T);
  for (int64_t i = 0; i < blocks; ++i) {
    std::memcpy(dst + (2 * i) * stride, a + i * stride, bytes);
    std::memcpy(dst + (2 * i + 1) * stride, b + i * stride, bytes);
  }
}

// Runs body over block pairs [p0, p0 + count) in chunks, then SiLU-mul into h's columns.
template <class Staged, class Weights, class Body>
void pairs_task(const Staged& x, const Weights& w, Body body, int64_t width, int64_t p0, int64_t count, float* h,
                int64_t h_stride) {
  thread_local std::vector<float> tile;  // [rows, 2 · 16 · kPairsPerChunk]
  const int64_t rows = x.rows, tile_w = 2 * kBlockN * kPairsPerChunk;
  tile.resize(static_cast<size_t>(rows * tile_w));
  for (int64_t p = p0; p < p0 + count; p += kPairsPerChunk) {
    const int64_t n = std::min(kPairsPerChunk, p0 + count - p);
    body(x, slice_blocks(w, 2 * p, 2 * n), tile.data(), tile_w);
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t j = 0; j < n; ++j) {
        const int64_t col = (p + j) * kBlockN, valid = std::min(kBlockN, width - col);
        const float* g = tile.data() + r * tile_w + 2 * j * kBlockN;
        ref::silu_mul(g, g + kBlockN, valid, h + r * h_stride + col);
      }
    }
  }
}

template <class Staged, class Weights, class Body>
void run_pairs(ThreadPool* pool, const Staged& x, const Weights& w, Body body, int64_t width, int64_t pair_bytes,
               float* h, int64_t h_stride) {
  const int64_t pairs = w.n_blocks() / 2;
  const BlockPlan plan = plan_blocks(pairs, pair_bytes, pool != nullptr ? pool->size() : 1);
  if (plan.n_tasks <= 1) return pairs_task(x, w, body, width, 0, pairs, h, h_stride);
  pool->parallel_for(plan.n_tasks, [&](int64_t task, int) {
    const int64_t first = task * plan.blocks_per_task;
    pairs_task(x, w, body, width, first, std::min(plan.blocks_per_task, pairs - first), h, h_stride);
  });
}

void check_args(int64_t x_stride, int64_t rows, int64_t in, int64_t out, int64_t width, int64_t h_stride) {
  detail::check_linear_args(x_stride, rows, in, out, out);
  K2_KERNEL_CHECK(width > 0 && out == 2 * ceil_div(width, kBlockN) * kBlockN,
                  "gate_up: weights are not an interleaved gate/up pair of this width");
  K2_KERNEL_CHECK(h_stride >= width, "gate_up: h stride too small");
}

}  // namespace

PackedBf16 interleave_blocks(const PackedBf16& a, const PackedBf16& b) {
  const Bf16Weights va = a.view(), vb = b.view();
  K2_KERNEL_CHECK(va.out == vb.out && va.in == vb.in && va.out > 0, "interleave_blocks: shapes differ");
  PackedBf16 p;
  p.view_.out = 2 * va.n_blocks() * kBlockN;
  p.view_.in = va.in;
  p.bytes_ = 2 * a.bytes_;
  p.mem_ = aligned_bytes(p.bytes_);
  auto* dst = reinterpret_cast<uint16_t*>(p.mem_.get());
  interleave(dst, va.data, vb.data, va.n_blocks(), va.block_elems());
  p.view_.data = dst;
  return p;
}

PackedInt8 interleave_blocks(const PackedInt8& a, const PackedInt8& b) {
  const Int8Weights va = a.view(), vb = b.view();
  K2_KERNEL_CHECK(va.out == vb.out && va.in == vb.in && va.out > 0, "interleave_blocks: shapes differ");
  PackedInt8 p;
  p.view_.out = 2 * va.n_blocks() * kBlockN;
  p.view_.in = va.in;
  const auto pad = [](size_t n) { return (n + 63) / 64 * 64; };
  const size_t data_bytes = pad(static_cast<size_t>(p.view_.n_blocks() * p.view_.block_bytes()));
  const size_t side_bytes = pad(static_cast<size_t>(p.view_.out) * 4);
  p.bytes_ = data_bytes + 2 * side_bytes;
  p.mem_ = aligned_bytes(p.bytes_);
  auto* data = reinterpret_cast<int8_t*>(p.mem_.get());
  auto* scales = reinterpret_cast<float*>(p.mem_.get() + data_bytes);
  auto* sums = reinterpret_cast<int32_t*>(p.mem_.get() + data_bytes + side_bytes);
  interleave(data, va.data, vb.data, va.n_blocks(), va.block_bytes());
  // Padding outputs of a partial last block: scale 0 and sum 0, as the packer leaves them.
  std::vector<float> sa(static_cast<size_t>(va.n_blocks() * kBlockN)), sb(sa.size());
  std::vector<int32_t> ra(sa.size()), rb(sa.size());
  std::copy_n(va.scales, va.out, sa.begin());
  std::copy_n(vb.scales, vb.out, sb.begin());
  std::copy_n(va.row_sums, va.out, ra.begin());
  std::copy_n(vb.row_sums, vb.out, rb.begin());
  interleave(scales, sa.data(), sb.data(), va.n_blocks(), kBlockN);
  interleave(sums, ra.data(), rb.data(), va.n_blocks(), kBlockN);
  p.view_.data = data;
  p.view_.scales = scales;
  p.view_.row_sums = sums;
  return p;
}

PackedInt4 interleave_blocks(const PackedInt4& a, const PackedInt4& b) {
  const Int4Weights va = a.view(), vb = b.view();
  K2_KERNEL_CHECK(va.out == vb.out && va.in == vb.in && va.group == vb.group && va.out > 0,
                  "interleave_blocks: shapes differ");
  PackedInt4 p;
  Int4Weights& v = p.view_;
  v.out = 2 * va.n_blocks() * kBlockN;
  v.in = va.in;
  v.group = va.group;
  const size_t data_bytes = (static_cast<size_t>(v.n_blocks() * v.block_bytes()) + 63) / 64 * 64;
  p.bytes_ = data_bytes + static_cast<size_t>(v.n_blocks() * v.block_scales()) * sizeof(uint16_t);
  p.mem_ = aligned_bytes(p.bytes_);
  auto* data = reinterpret_cast<uint8_t*>(p.mem_.get());
  auto* scales = reinterpret_cast<uint16_t*>(p.mem_.get() + data_bytes);
  interleave(data, va.data, vb.data, va.n_blocks(), va.block_bytes());
  interleave(scales, va.scales, vb.scales, va.n_blocks(), va.block_scales());
  v.data = data;
  v.scales = scales;
  return p;
}

PackedFp8 interleave_blocks(const PackedFp8& a, const PackedFp8& b) {
  const Fp8Weights va = a.view(), vb = b.view();
  K2_KERNEL_CHECK(va.out == vb.out && va.in == vb.in && va.group == vb.group && va.out > 0,
                  "interleave_blocks: shapes differ");
  PackedFp8 p;
  Fp8Weights& v = p.view_;
  v.out = 2 * va.n_blocks() * kBlockN;
  v.in = va.in;
  v.group = va.group;
  const size_t data_bytes = (static_cast<size_t>(v.n_blocks() * v.block_bytes()) + 63) / 64 * 64;
  p.bytes_ = data_bytes + static_cast<size_t>(v.n_blocks() * v.block_scales()) * sizeof(float);
  p.mem_ = aligned_bytes(p.bytes_);
  auto* data = reinterpret_cast<uint8_t*>(p.mem_.get());
  auto* scales = reinterpret_cast<float*>(p.mem_.get() + data_bytes);
  interleave(data, va.data, vb.data, va.n_blocks(), va.block_bytes());
  interleave(scales, va.scales, vb.scales, va.n_blocks(), va.block_scales());
  v.data = data;
  v.scales = scales;
  return p;
}

void gate_up_silu_bf16(ThreadPool* pool, const float* x, int64_t x_stride, int64_t rows, const Bf16Weights& w,
                       int64_t width, float* h, int64_t h_stride, Isa isa, ActivationPrecision act) {
  check_args(x_stride, rows, w.in, w.out, width, h_stride);
  if (rows == 0) return;
  const detail::LinearBodies bodies = detail::linear_bodies_for(isa);
  if (act == ActivationPrecision::kFloat32) {
    const detail::StagedBf16 staged = detail::stage_f32_activations(x, x_stride, rows, w.in, w.k_pairs() * 2);
    return run_pairs(pool, staged, w, bodies.bf16_f32act, width, 2 * w.block_elems() * 2, h, h_stride);
  }
  const detail::StagedBf16 staged =
      detail::stage_bf16_activations(x, x_stride, rows, w.in, w.k_pairs() * 2, bodies.bf16_widen);
  run_pairs(pool, staged, w, bodies.bf16, width, 2 * w.block_elems() * 2, h, h_stride);
}

void gate_up_silu_int8(ThreadPool* pool, const float* x, int64_t x_stride, int64_t rows, const Int8Weights& w,
                       int64_t width, float* h, int64_t h_stride, Isa isa) {
  check_args(x_stride, rows, w.in, w.out, width, h_stride);
  if (rows == 0) return;
  const detail::LinearBodies bodies = detail::linear_bodies_for(isa);
  const detail::StagedInt8 staged =
      detail::stage_int8_activations(x, x_stride, rows, w.in, w.k_quads() * 4, bodies.int8_vnni);
  run_pairs(pool, staged, w, bodies.int8, width, 2 * w.block_bytes(), h, h_stride);
}

void gate_up_silu_int4(ThreadPool* pool, const float* x, int64_t x_stride, int64_t rows, const Int4Weights& w,
                       int64_t width, float* h, int64_t h_stride, Isa isa, ActivationPrecision act) {
  check_args(x_stride, rows, w.in, w.out, width, h_stride);
  if (rows == 0) return;
  const detail::LinearBodies bodies = detail::linear_bodies_for(isa);
  if (act == ActivationPrecision::kFloat32) {
    const detail::StagedBf16 staged = detail::stage_f32_activations(x, x_stride, rows, w.in, w.in);
    return run_pairs(pool, staged, w, bodies.int4_f32act, width, 2 * (w.block_bytes() + w.block_scales() * 2), h,
                     h_stride);
  }
  const detail::StagedInt4 staged = detail::stage_int4_activations(x, x_stride, rows, w.in, w.group);
  run_pairs(pool, staged, w, bodies.int4, width, 2 * (w.block_bytes() + w.block_scales() * 2), h, h_stride);
}

void gate_up_silu_fp8(ThreadPool* pool, const float* x, int64_t x_stride, int64_t rows, const Fp8Weights& w,
                      int64_t width, float* h, int64_t h_stride, Isa isa) {
  check_args(x_stride, rows, w.in, w.out, width, h_stride);
  if (rows == 0) return;
  const detail::StagedBf16 staged = detail::stage_f32_activations(x, x_stride, rows, w.in, w.in);
  run_pairs(pool, staged, w, detail::linear_bodies_for(isa).fp8, width, 2 * (w.block_bytes() + w.block_scales() * 4),
            h, h_stride);
}

}  // namespace k2::cpu
