// Absorbed MLA decode over the paged latent cache, restructured for the CPU: each cached
// latent row is read once per sequence (not once per head), its dot products with every
// head's query are formed together, and the softmax-weighted sum runs as per-row axpys into
// every head's output. Same contract and shapes as ref::mla_decode_paged; the sums run in
// 16 float lanes, so results differ from the reference only by float reassociation.
//
// Also the naive (prefill) form with the same lane sums, the same contract as
// ref::mla_attention_naive; callers split a long chunk's queries across threads by q_offset.
//
// Pure functions; thread-safe on disjoint outputs (scratch is per thread).
#pragma once

#include <cstdint>

#include "kernels/cpu/isa.h"
#include "kernels/ref/mla.h"

namespace k2::cpu {

using MlaDecodeFn = void (*)(const float* q_abs, int64_t batch, const ref::PagedLatentView& cache,
                             const int32_t* block_tables, int64_t block_table_stride, const int64_t* kv_lens,
                             const ref::MlaDims& dims, float scale, float* out);

// The variant for `isa` (AVX-512 registers from kAvx512 up, else the x86-64-v3 baseline).
MlaDecodeFn mla_decode_for(Isa isa);
using MlaNaiveFn = void (*)(const float* q, const float* kv, const float* k_pe, int64_t k_pe_stride,
                            int64_t q_tokens, int64_t kv_tokens, int64_t q_offset, const ref::MlaDims& dims,
                            float scale, float* out);
MlaNaiveFn mla_naive_for(Isa isa);
// mla_naive_for(active_isa()).
void mla_attention_naive(const float* q, const float* kv, const float* k_pe, int64_t k_pe_stride, int64_t q_tokens,
                         int64_t kv_tokens, int64_t q_offset, const ref::MlaDims& dims, float scale, float* out);

// mla_decode_for(active_isa()).
void mla_decode_paged(const float* q_abs, int64_t batch, const ref::PagedLatentView& cache,
                      const int32_t* block_tables, int64_t block_table_stride, const int64_t* kv_lens,
                      const ref::MlaDims& dims, float scale, float* out);

// The same over a bf16 latent cache: rows are widened to float32 exactly (once per step and
// sequence, in cache), then the float32 arithmetic above runs, so a bf16 cache only changes
// the rounding of the stored rows.
using MlaDecodeBf16Fn = void (*)(const float* q_abs, int64_t batch, const ref::PagedLatentBf16View& cache,
                                 const int32_t* block_tables, int64_t block_table_stride, const int64_t* kv_lens,
                                 const ref::MlaDims& dims, float scale, float* out);
MlaDecodeBf16Fn mla_decode_bf16_for(Isa isa);
void mla_decode_paged_bf16(const float* q_abs, int64_t batch, const ref::PagedLatentBf16View& cache,
                           const int32_t* block_tables, int64_t block_table_stride, const int64_t* kv_lens,
                           const ref::MlaDims& dims, float scale, float* out);

// The same over an fp8 cache (ref::PagedLatentFp8View): rows dequantised once per step and
// sequence exactly as ref::dequantize_fp8_kv_row does, then the float32 arithmetic above.
using MlaDecodeFp8Fn = void (*)(const float* q_abs, int64_t batch, const ref::PagedLatentFp8View& cache,
                                const int32_t* block_tables, int64_t block_table_stride, const int64_t* kv_lens,
                                const ref::MlaDims& dims, float scale, float* out);
MlaDecodeFp8Fn mla_decode_fp8_for(Isa isa);
void mla_decode_paged_fp8(const float* q_abs, int64_t batch, const ref::PagedLatentFp8View& cache,
                          const int32_t* block_tables, int64_t block_table_stride, const int64_t* kv_lens,
                          const ref::MlaDims& dims, float scale, float* out);

}  // namespace k2::cpu
