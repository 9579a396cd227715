// Scalar float32 reference for Multi-head Latent Attention (DeepSeek-V2/V3, Kimi-K2).
//
// Two forms that give the same numbers:
// - naive (prefill / chunked prefill): keys and values decompressed per head from the
//   latent with kv_b, causal attention of a chunk of queries over all positions so far;
// - absorbed (decode): kv_b folded into the query and the output, attention runs in the
//   latent space directly over the paged latent cache (MQA with one key of width
//   kv_lora_rank + rope_dim whose first kv_lora_rank values are also the value).
//
// Pure functions on raw pointers; no state; thread-safe on disjoint outputs.
#pragma once

#include <cstdint>

namespace k2::ref {

struct MlaDims {
  int64_t heads = 0;
  int64_t nope_dim = 0;  // qk_nope_head_dim
  int64_t rope_dim = 0;  // qk_rope_head_dim
  int64_t v_dim = 0;     // v_head_dim
  int64_t kv_lora_rank = 0;
  int64_t qk_dim() const { return nope_dim + rope_dim; }
  int64_t latent_dim() const { return kv_lora_rank + rope_dim; }  // one cache row
};

// Naive causal MLA for one sequence.
//   q    [q_tokens, heads, nope+rope]  per head [q_nope | rotated q_pe]
//   kv   [kv_tokens, heads, nope+v]    kv_b(latent): per head [k_nope | v]
//   k_pe [kv_tokens, rope] with row stride k_pe_stride: rotated shared rope key
//   out  [q_tokens, heads, v]
// Query i sits at position q_offset + i and attends to keys 0 .. q_offset + i, so a chunk
// continues from earlier cached positions. Needs q_offset + q_tokens <= kv_tokens.
// score = (q_nope·k_nope + q_pe·k_pe) × scale, softmax in float32.
void mla_attention_naive(const float* q, const float* kv, const float* k_pe, int64_t k_pe_stride,
                         int64_t q_tokens, int64_t kv_tokens, int64_t q_offset, const MlaDims& dims,
                         float scale, float* out);

// A paged latent cache of one layer: num_blocks blocks of block_size rows of
// dims.latent_dim() floats ([c_kv (normalised latent) | rotated k_pe]).
// Position p of a sequence lives in row p % block_size of block block_table[p / block_size].
struct PagedLatentView {
  const float* data = nullptr;
  int64_t num_blocks = 0;
  int64_t block_size = 0;  // a power of two
};

// The same cache with bf16 rows (bits as uint16, round-to-nearest-even of the float row).
struct PagedLatentBf16View {
  const uint16_t* data = nullptr;
  int64_t num_blocks = 0;
  int64_t block_size = 0;  // a power of two
};

// The same cache with fp8 rows (kernels/ref/kv_fp8.h: e4m3 values, per-tile float32 scales),
// each fp8_kv_row_bytes(latent_dim) bytes.
struct PagedLatentFp8View {
  const uint8_t* data = nullptr;
  int64_t num_blocks = 0;
  int64_t block_size = 0;  // a power of two
};

// Absorbed MLA decode over the paged cache, one query token per sequence.
//   q_abs        [batch, heads, kv_lora+rope]: per head [q_nope·W_UK | rotated q_pe]
//   block_tables [batch, block_table_stride] block ids; kv_lens[b] cached positions to
//                attend to (including the query's own row, already written)
//   out          [batch, heads, kv_lora]: softmax-weighted sum of the latent rows (W_UV
//                is applied by the caller)
void mla_decode_paged(const float* q_abs, int64_t batch, const PagedLatentView& cache,
                      const int32_t* block_tables, int64_t block_table_stride, const int64_t* kv_lens,
                      const MlaDims& dims, float scale, float* out);
// The same over a bf16 cache: every row widened to float32 exactly, then the float32 form.
void mla_decode_paged_bf16(const float* q_abs, int64_t batch, const PagedLatentBf16View& cache,
                           const int32_t* block_tables, int64_t block_table_stride, const int64_t* kv_lens,
                           const MlaDims& dims, float scale, float* out);
// The same over an fp8 cache: every row dequantised (value · tile scale), then the float32 form.
void mla_decode_paged_fp8(const float* q_abs, int64_t batch, const PagedLatentFp8View& cache,
                          const int32_t* block_tables, int64_t block_table_stride, const int64_t* kv_lens,
                          const MlaDims& dims, float scale, float* out);

}  // namespace k2::ref
