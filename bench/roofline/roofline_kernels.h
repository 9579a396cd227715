// The inner loops of the roofline probes, one per instruction kind. Each returns a value
// derived from all its work so the compiler cannot drop it. Only the *_avx512* and *_amx*
// functions contain instructions above the x86-64-v3 baseline (per-function target
// attributes); callers check kernels/cpu/isa.h before calling them.
//
// Pure functions of their arguments; thread-safe. AMX needs the process's XTILEDATA
// permission, which kernels/cpu/isa.h requests when it detects AMX.
#pragma once

#include <cstdint>

namespace k2::bench::roofline {

// Sums `bytes` (a multiple of 512, 64-byte aligned) as 64-bit words.
uint64_t stream_sum_avx512(const uint8_t* p, uint64_t bytes);
uint64_t stream_sum_avx2(const uint8_t* p, uint64_t bytes);

// `iters` rounds of kDotChains (AVX2: kAvx2Chains) independent dependency chains of one
// instruction each: enough in flight to cover the latency of two pipes.
inline constexpr int kDotChains = 16;
// Work of one round: FLOP (or integer OP) counting a multiply-add as two.
inline constexpr double kFp32FmaAvx512Flop = kDotChains * 16 * 2;  // vfmadd231ps zmm
inline constexpr int kAvx2Chains = 12;  // 16 ymm registers: 12 chains + 2 operands
inline constexpr double kFp32FmaAvx2Flop = kAvx2Chains * 8 * 2;    // vfmadd231ps ymm
inline constexpr double kBf16DotFlop = kDotChains * 32 * 2;        // vdpbf16ps zmm: 32 bf16 pairs
inline constexpr double kInt8DotOp = kDotChains * 64 * 2;          // vpdpbusd zmm: 64 u8 x s8 pairs
inline constexpr double kAmxBf16Flop = 4.0 * 16 * 16 * 32 * 2;     // 4 tdpbf16ps on 16x32 x 32x16 tiles

float fp32_fma_avx512(int64_t iters);
float fp32_fma_avx2(int64_t iters);
float bf16_dot_avx512(int64_t iters);
int32_t int8_dot_avx512(int64_t iters);
float amx_bf16(int64_t iters);

}  // namespace k2::bench::roofline
