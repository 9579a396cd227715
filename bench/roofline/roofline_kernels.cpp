// Only the functions marked K2_AVX512 / K2_AMX carry wider instruction sets; the file is
// compiled for the project baseline like every other (never a raised -march).
#include "bench/roofline/roofline_kernels.h"

#include <immintrin.h>

#include <cstring>

#define K2_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq")))
#define K2_AVX512_BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")))
#define K2_AVX512_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")))
#define K2_AMX __attribute__((target("amx-tile,amx-bf16")))

namespace k2::bench::roofline {
namespace {

// The palette-1 tile configuration (Intel SDM, LDTILECFG).
struct alignas(64) TileConfig {
  uint8_t palette = 0;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

// Horizontal sums through memory: GCC 12's _mm512_reduce_* warn (-Wuninitialized) inside
// their own header, and these run once per probe.
K2_AVX512 uint64_t lanes_sum(__m512i v) {
  alignas(64) uint64_t lanes[8];
  _mm512_store_si512(lanes, v);
  uint64_t s = 0;
  for (uint64_t x : lanes) s += x;
  return s;
}

K2_AVX512 float lanes_sum(__m512 v) {
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, v);
  float s = 0;
  for (float x : lanes) s += x;
  return s;
}

}  // namespace

K2_AVX512 uint64_t stream_sum_avx512(const uint8_t* p, uint64_t bytes) {
  __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
  for (uint64_t i = 0; i < bytes; i += 512) {
    const uint8_t* q = p + i;
    a0 = _mm512_add_epi64(a0, _mm512_load_si512(q));
    a1 = _mm512_add_epi64(a1, _mm512_load_si512(q + 64));
    a2 = _mm512_add_epi64(a2, _mm512_load_si512(q + 128));
    a3 = _mm512_add_epi64(a3, _mm512_load_si512(q + 192));
    a4 = _mm512_add_epi64(a4, _mm512_load_si512(q + 256));
    a5 = _mm512_add_epi64(a5, _mm512_load_si512(q + 320));
    a6 = _mm512_add_epi64(a6, _mm512_load_si512(q + 384));
    a7 = _mm512_add_epi64(a7, _mm512_load_si512(q + 448));
  }
  a0 = _mm512_add_epi64(_mm512_add_epi64(_mm512_add_epi64(a0, a1), _mm512_add_epi64(a2, a3)),
                        _mm512_add_epi64(_mm512_add_epi64(a4, a5), _mm512_add_epi64(a6, a7)));
  return lanes_sum(a0);
}

uint64_t stream_sum_avx2(const uint8_t* p, uint64_t bytes) {
  __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
  for (uint64_t i = 0; i < bytes; i += 128) {
    const __m256i* q = reinterpret_cast<const __m256i*>(p + i);
    a0 = _mm256_add_epi64(a0, _mm256_load_si256(q));
    a1 = _mm256_add_epi64(a1, _mm256_load_si256(q + 1));
    a2 = _mm256_add_epi64(a2, _mm256_load_si256(q + 2));
    a3 = _mm256_add_epi64(a3, _mm256_load_si256(q + 3));
  }
  a0 = _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3));
  alignas(32) uint64_t lanes[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), a0);
  return lanes[0] + lanes[1] + lanes[2] + lanes[3];
}

K2_AVX512 float fp32_fma_avx512(int64_t iters) {
  __m512 acc[kDotChains];
  for (int k = 0; k < kDotChains; ++k) acc[k] = _mm512_set1_ps(0.001f * static_cast<float>(k));
  const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
  for (int64_t i = 0; i < iters; ++i) {
#pragma GCC unroll 16
    for (int k = 0; k < kDotChains; ++k) acc[k] = _mm512_fmadd_ps(acc[k], a, b);
  }
  for (int k = 1; k < kDotChains; ++k) acc[0] = _mm512_add_ps(acc[0], acc[k]);
  return lanes_sum(acc[0]);
}

float fp32_fma_avx2(int64_t iters) {
  __m256 acc[kAvx2Chains];
  for (int k = 0; k < kAvx2Chains; ++k) acc[k] = _mm256_set1_ps(0.001f * static_cast<float>(k));
  const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
  for (int64_t i = 0; i < iters; ++i) {
#pragma GCC unroll 12
    for (int k = 0; k < kAvx2Chains; ++k) acc[k] = _mm256_fmadd_ps(acc[k], a, b);
  }
  for (int k = 1; k < kAvx2Chains; ++k) acc[0] = _mm256_add_ps(acc[0], acc[k]);
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, acc[0]);
  float s = 0;
  for (float v : lanes) s += v;
  return s;
}

K2_AVX512_BF16 float bf16_dot_avx512(int64_t iters) {
  __m512 acc[kDotChains];
  for (int k = 0; k < kDotChains; ++k) acc[k] = _mm512_setzero_ps();
  const __m512bh a = _mm512_cvtne2ps_pbh(_mm512_set1_ps(0.001f), _mm512_set1_ps(0.002f));
  const __m512bh b = _mm512_cvtne2ps_pbh(_mm512_set1_ps(0.003f), _mm512_set1_ps(0.001f));
  for (int64_t i = 0; i < iters; ++i) {
#pragma GCC unroll 16
    for (int k = 0; k < kDotChains; ++k) acc[k] = _mm512_dpbf16_ps(acc[k], a, b);
  }
  for (int k = 1; k < kDotChains; ++k) acc[0] = _mm512_add_ps(acc[0], acc[k]);
  return lanes_sum(acc[0]);
}

K2_AVX512_VNNI int32_t int8_dot_avx512(int64_t iters) {
  __m512i acc[kDotChains];
  for (int k = 0; k < kDotChains; ++k) acc[k] = _mm512_setzero_si512();
  const __m512i a = _mm512_set1_epi8(3), b = _mm512_set1_epi8(-2);
  for (int64_t i = 0; i < iters; ++i) {
#pragma GCC unroll 16
    for (int k = 0; k < kDotChains; ++k) acc[k] = _mm512_dpbusd_epi32(acc[k], a, b);
  }
  for (int k = 1; k < kDotChains; ++k) acc[0] = _mm512_add_epi32(acc[0], acc[k]);
  alignas(64) int32_t lanes[16];
  _mm512_store_si512(lanes, acc[0]);
  int32_t s = 0;
  for (int32_t x : lanes) s |= x;
  return s;
}

K2_AMX float amx_bf16(int64_t iters) {
  TileConfig cfg;
  cfg.palette = 1;
  for (int t = 0; t < 8; ++t) {
    cfg.rows[t] = 16;
    cfg.colsb[t] = 64;
  }
  // GCC 12 at -O3 drops the stores above when the struct only reaches LDTILECFG through the
  // intrinsic (tiles stay unconfigured and the first tile instruction faults); making the
  // address escape into an asm with a memory clobber keeps them (reference/cpu-limits.md §5).
  asm volatile("" : : "r"(&cfg) : "memory");
  _tile_loadconfig(&cfg);
  alignas(64) uint16_t a[16 * 32];
  alignas(64) float c[16 * 16];
  for (uint16_t& v : a) v = 0x3A83;  // bf16 ~0.001
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  _tile_loadd(4, a, 64);
  _tile_loadd(5, a, 64);
  _tile_loadd(6, a, 64);
  _tile_loadd(7, a, 64);
  for (int64_t i = 0; i < iters; ++i) {
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
  }
  float sum = 0;
  _tile_stored(0, c, 64);
  sum += c[0];
  _tile_stored(3, c, 64);
  sum += c[255];
  _tile_release();
  return sum;
}

}  // namespace k2::bench::roofline
