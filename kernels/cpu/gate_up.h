// The fused first half of a SwiGLU MLP (dense MLP, shared expert, each routed expert):
// h = silu(x · Gᵀ) ⊙ (x · Uᵀ) in one pass over one weight matrix.
//
// Layout: gate G and up U ([width, in] each) are packed once, at load, into ONE matrix of
// 2 · ceil(width / 16) blocks with their 16-output blocks interleaved — G block 0, U block 0,
// G block 1, U block 1, ... (interleave_blocks) — so a kernel call streams both weights
// together, stages the activations once, and each pair of blocks yields 16 outputs of h
// straight from an L1-sized scratch tile (SiLU-mul applied there, never a [rows, 2·width]
// intermediate in memory). Works for every packed format (bf16, int8, int4): the blocks are
// the formats' own, so an INT4 checkpoint's experts interleave without a float round trip.
//
// Numerics: each g and u is summed by the format's linear kernel body of the chosen ISA, in
// the same order as the unfused call, and the SiLU-mul is ref::silu_mul, so the result equals
// linear(G) + linear(U) + ref::silu_mul of the same ISA bit for bit.
//
// Pure functions; thread-safe on disjoint outputs (scratch is per thread). The interleaved
// Packed* own their memory like any Packed*.
#pragma once

#include <cstdint>

#include "kernels/cpu/isa.h"
#include "kernels/cpu/ops.h"
#include "kernels/cpu/packed.h"
#include "kernels/cpu/packed_fp8.h"
#include "kernels/cpu/thread_pool.h"

namespace k2::cpu {

// [a block 0, b block 0, a block 1, ...]: a and b must have the same out and in (and group).
// The result's out is 2 · a.n_blocks() · 16 (partial last blocks stay zero-padded).
PackedBf16 interleave_blocks(const PackedBf16& a, const PackedBf16& b);
PackedInt8 interleave_blocks(const PackedInt8& a, const PackedInt8& b);
PackedInt4 interleave_blocks(const PackedInt4& a, const PackedInt4& b);
PackedFp8 interleave_blocks(const PackedFp8& a, const PackedFp8& b);

// h[r, j] = silu(g[r, j]) · u[r, j] for r < rows, j < width, where w = interleave_blocks(G, U)
// of two [width, w.in] matrices. x: [rows, w.in] (x_stride), h: [rows, width] (h_stride).
// With a pool, pairs of blocks are split over its threads (a nested call runs inline).
// (`act` as for CpuOps::linear_bf16 / linear_bf16_f32act and linear_int4 / linear_int4_f32act.)
void gate_up_silu_bf16(ThreadPool* pool, const float* x, int64_t x_stride, int64_t rows, const Bf16Weights& w,
                       int64_t width, float* h, int64_t h_stride, Isa isa = active_isa(),
                       ActivationPrecision act = ActivationPrecision::kReduced);
void gate_up_silu_int8(ThreadPool* pool, const float* x, int64_t x_stride, int64_t rows, const Int8Weights& w,
                       int64_t width, float* h, int64_t h_stride, Isa isa = active_isa());
void gate_up_silu_int4(ThreadPool* pool, const float* x, int64_t x_stride, int64_t rows, const Int4Weights& w,
                       int64_t width, float* h, int64_t h_stride, Isa isa = active_isa(),
                       ActivationPrecision act = ActivationPrecision::kReduced);
// FP8-block weights, float32 activations (as CpuOps::linear_fp8).
void gate_up_silu_fp8(ThreadPool* pool, const float* x, int64_t x_stride, int64_t rows, const Fp8Weights& w,
                      int64_t width, float* h, int64_t h_stride, Isa isa = active_isa());

}  // namespace k2::cpu
