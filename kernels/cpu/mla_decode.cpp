#include "kernels/cpu/mla_decode.h"

#include <algorithm>
#include <bit>
#include <type_traits>
#include <vector>

#include "kernels/check.h"
#include "kernels/ref/dense.h"
#include "kernels/ref/kv_fp8.h"

namespace k2::cpu {
namespace {

constexpr int64_t kLanes = 16;

// Σ a[k]·b[k] in kLanes independent partial sums (which the compiler keeps in vector
// registers), added up in a fixed order at the end.
[[gnu::always_inline]] inline float dot_lanes(const float* a, const float* b, int64_t n) {
  float acc[kLanes] = {};
  int64_t k = 0;
  for (; k + kLanes <= n; k += kLanes)
    for (int64_t l = 0; l < kLanes; ++l) acc[l] += a[k + l] * b[k + l];
  for (int64_t l = 0; k + l < n; ++l) acc[l] += a[k + l] * b[k + l];
  float s = 0.0f;
  for (int64_t l = 0; l < kLanes; ++l) s += acc[l];
  return s;
}

// Scores of G heads against one latent row: the row is loaded once per 16 lanes for all G
// heads (G independent accumulator sets hide the FMA latency). Each head's sum runs in the
// same lanes and order as dot_lanes.
template <int G>
[[gnu::always_inline]] inline void score_heads(const float* q, int64_t row, const float* lat, float scale,
                                               float* scores, int64_t score_stride) {
  float acc[G][kLanes] = {};
  int64_t k = 0;
  for (; k + kLanes <= row; k += kLanes)
    for (int g = 0; g < G; ++g)
      for (int64_t l = 0; l < kLanes; ++l) acc[g][l] += q[g * row + k + l] * lat[k + l];
  for (int g = 0; g < G; ++g) {
    for (int64_t l = 0; k + l < row; ++l) acc[g][l] += q[g * row + k + l] * lat[k + l];
    float s = 0.0f;
    for (int64_t l = 0; l < kLanes; ++l) s += acc[g][l];
    scores[g * score_stride] = s * scale;
  }
}

// score_heads for two latent rows at once: each q load feeds both rows (2·G chains), so the
// loop issues G + 2 loads per 2·G FMAs. Each (head, row) sum runs as in score_heads.
template <int G>
[[gnu::always_inline]] inline void score_heads2(const float* q, int64_t row, const float* lat0, const float* lat1,
                                                float scale, float* scores, int64_t score_stride) {
  float acc0[G][kLanes] = {}, acc1[G][kLanes] = {};
  int64_t k = 0;
  for (; k + kLanes <= row; k += kLanes)
    for (int g = 0; g < G; ++g)
      for (int64_t l = 0; l < kLanes; ++l) {
        acc0[g][l] += q[g * row + k + l] * lat0[k + l];
        acc1[g][l] += q[g * row + k + l] * lat1[k + l];
      }
  for (int g = 0; g < G; ++g) {
    for (int64_t l = 0; k + l < row; ++l) {
      acc0[g][l] += q[g * row + k + l] * lat0[k + l];
      acc1[g][l] += q[g * row + k + l] * lat1[k + l];
    }
    float s0 = 0.0f, s1 = 0.0f;
    for (int64_t l = 0; l < kLanes; ++l) s0 += acc0[g][l];
    for (int64_t l = 0; l < kLanes; ++l) s1 += acc1[g][l];
    scores[g * score_stride] = s0 * scale;
    scores[g * score_stride + 1] = s1 * scale;
  }
}

// o[g] = Σ_t p[g, t] · rows[t][0 .. r) for G heads, in column chunks of kOutChunk kept in
// registers across t (each output summed over t in order, as a running axpy would).
constexpr int64_t kOutChunk = 32;
template <int G>
[[gnu::always_inline]] inline void weigh_rows(const float* p, int64_t len, const float* const* rows, int64_t r,
                                              float* o) {
  for (int64_t j0 = 0; j0 < r; j0 += kOutChunk) {
    const int64_t jn = std::min(kOutChunk, r - j0);
    float acc[G][kOutChunk] = {};
    if (jn == kOutChunk) {
      for (int64_t t = 0; t < len; ++t) {
        const float* lat = rows[t] + j0;
        for (int g = 0; g < G; ++g) {
          const float pg = p[g * len + t];
          for (int64_t j = 0; j < kOutChunk; ++j) acc[g][j] += pg * lat[j];
        }
      }
    } else {
      for (int64_t t = 0; t < len; ++t)
        for (int g = 0; g < G; ++g)
          for (int64_t j = 0; j < jn; ++j) acc[g][j] += p[g * len + t] * rows[t][j0 + j];
    }
    for (int g = 0; g < G; ++g) std::copy_n(acc[g], jn, o + g * r + j0);
  }
}

// Row pointers of one sequence: straight into a float32 cache, or into this thread's
// widened copy of a bf16 cache's rows (exact) or dequantised copy of an fp8 cache's rows, so
// all run the same float arithmetic.
template <class Elem>
[[gnu::always_inline]] inline void gather_rows(const Elem* data, int64_t num_blocks, int64_t block_size,
                                               const int32_t* table, int64_t len, int64_t row,
                                               std::vector<const float*>& rows, std::vector<float>& wide) {
  rows.resize(static_cast<size_t>(len));
  if constexpr (!std::is_same_v<Elem, float>) wide.resize(static_cast<size_t>(len * row));
  // fp8 rows are fp8_kv_row_bytes(row) bytes (values, then tile scales); others row elements.
  const int64_t row_elems = std::is_same_v<Elem, uint8_t> ? ref::fp8_kv_row_bytes(row) : row;
  for (int64_t t = 0; t < len; ++t) {
    const int32_t block = table[t / block_size];
    K2_KERNEL_CHECK(block >= 0 && block < num_blocks, "mla decode: block id out of range");
    const Elem* src = data + (block * block_size + t % block_size) * row_elems;
    if constexpr (std::is_same_v<Elem, float>) {
      rows[t] = src;
    } else if constexpr (std::is_same_v<Elem, uint8_t>) {
      float* dst = wide.data() + t * row;
      ref::dequantize_fp8_kv_row(src, row, dst);
      rows[t] = dst;
    } else {
      float* dst = wide.data() + t * row;
      for (int64_t i = 0; i < row; ++i) dst[i] = std::bit_cast<float>(static_cast<uint32_t>(src[i]) << 16);
      rows[t] = dst;
    }
  }
}

template <class Elem>
[[gnu::always_inline]] inline void decode_body(const float* q_abs, int64_t batch, const Elem* data,
                                               int64_t num_blocks, int64_t block_size, const int32_t* block_tables,
                                               int64_t stride, const int64_t* kv_lens, const ref::MlaDims& d,
                                               float scale, float* out) {
  K2_KERNEL_CHECK(block_size > 0 && (block_size & (block_size - 1)) == 0,
                  "mla decode: block size must be a power of two");
  // Heads per group: 8 gives the score loop 8 independent FMA chains (enough to cover the
  // latency on two FMA ports) and weigh_rows 16 accumulators; the rest go in 4s, then 1s.
  // A head's sums run in the same lanes and order in every group size.
  constexpr int kG = 8, kG2 = 4;
  const int64_t row = d.latent_dim(), heads = d.heads, r = d.kv_lora_rank;
  thread_local std::vector<float> scores, wide;  // [heads, len], [len, row] (bf16 caches)
  thread_local std::vector<const float*> rows;
  for (int64_t b = 0; b < batch; ++b) {
    const int64_t len = kv_lens[b];
    K2_KERNEL_CHECK(len >= 1 && (len + block_size - 1) / block_size <= stride,
                    "mla decode: kv length outside the block table");
    gather_rows(data, num_blocks, block_size, block_tables + b * stride, len, row, rows, wide);
    scores.resize(static_cast<size_t>(heads * len));
    const float* q = q_abs + b * heads * row;  // [heads, row]
    const int64_t grouped = heads / kG * kG, grouped2 = grouped + (heads - grouped) / kG2 * kG2;
    int64_t t0 = 0;
    for (; t0 + 2 <= len; t0 += 2) {
      float* st = scores.data() + t0;
      for (int64_t h = 0; h < grouped; h += kG) {
        score_heads2<kG>(q + h * row, row, rows[t0], rows[t0 + 1], scale, st + h * len, len);
      }
      for (int64_t h = grouped; h < grouped2; h += kG2) {
        score_heads2<kG2>(q + h * row, row, rows[t0], rows[t0 + 1], scale, st + h * len, len);
      }
      for (int64_t h = grouped2; h < heads; ++h) {
        score_heads2<1>(q + h * row, row, rows[t0], rows[t0 + 1], scale, st + h * len, len);
      }
    }
    for (int64_t t = t0; t < len; ++t) {
      float* st = scores.data() + t;
      for (int64_t h = 0; h < grouped; h += kG) score_heads<kG>(q + h * row, row, rows[t], scale, st + h * len, len);
      for (int64_t h = grouped; h < grouped2; h += kG2) {
        score_heads<kG2>(q + h * row, row, rows[t], scale, st + h * len, len);
      }
      for (int64_t h = grouped2; h < heads; ++h) score_heads<1>(q + h * row, row, rows[t], scale, st + h * len, len);
    }
    for (int64_t h = 0; h < heads; ++h) ref::softmax(scores.data() + h * len, len);
    float* o = out + b * heads * r;  // [heads, kv_lora]
    const float* const* rp = rows.data();
    for (int64_t h = 0; h < grouped; h += kG) weigh_rows<kG>(scores.data() + h * len, len, rp, r, o + h * r);
    for (int64_t h = grouped; h < grouped2; h += kG2) weigh_rows<kG2>(scores.data() + h * len, len, rp, r, o + h * r);
    for (int64_t h = grouped2; h < heads; ++h) weigh_rows<1>(scores.data() + h * len, len, rp, r, o + h * r);
  }
}

[[gnu::always_inline]] inline void naive_body(const float* q, const float* kv, const float* k_pe, int64_t k_pe_stride,
                                              int64_t q_tokens, int64_t kv_tokens, int64_t q_offset,
                                              const ref::MlaDims& d, float scale, float* out) {
  K2_KERNEL_CHECK(q_offset >= 0 && q_tokens >= 0 && q_offset + q_tokens <= kv_tokens,
                  "mla naive: queries past the keys");
  K2_KERNEL_CHECK(k_pe_stride >= d.rope_dim, "mla naive: k_pe stride too small");
  const int64_t qk = d.qk_dim(), kv_w = d.nope_dim + d.v_dim;
  thread_local std::vector<float> scores;
  scores.resize(static_cast<size_t>(kv_tokens));
  for (int64_t i = 0; i < q_tokens; ++i) {
    const int64_t visible = q_offset + i + 1;
    for (int64_t h = 0; h < d.heads; ++h) {
      const float* qh = q + (i * d.heads + h) * qk;
      float* s = scores.data();
      for (int64_t t = 0; t < visible; ++t) {
        s[t] = (dot_lanes(qh, kv + (t * d.heads + h) * kv_w, d.nope_dim) +
                dot_lanes(qh + d.nope_dim, k_pe + t * k_pe_stride, d.rope_dim)) *
               scale;
      }
      ref::softmax(s, visible);
      float* oh = out + (i * d.heads + h) * d.v_dim;
      std::fill(oh, oh + d.v_dim, 0.0f);
      for (int64_t t = 0; t < visible; ++t) {
        const float p = s[t];
        const float* v = kv + (t * d.heads + h) * kv_w + d.nope_dim;
        for (int64_t j = 0; j < d.v_dim; ++j) oh[j] += p * v[j];
      }
    }
  }
}

void naive_v3(const float* q, const float* kv, const float* k_pe, int64_t k_pe_stride, int64_t q_tokens,
              int64_t kv_tokens, int64_t q_offset, const ref::MlaDims& d, float scale, float* out) {
  naive_body(q, kv, k_pe, k_pe_stride, q_tokens, kv_tokens, q_offset, d, scale, out);
}

[[gnu::target("avx512f,avx512vl,avx512bw,avx512dq")]] void naive_avx512(
    const float* q, const float* kv, const float* k_pe, int64_t k_pe_stride, int64_t q_tokens, int64_t kv_tokens,
    int64_t q_offset, const ref::MlaDims& d, float scale, float* out) {
  naive_body(q, kv, k_pe, k_pe_stride, q_tokens, kv_tokens, q_offset, d, scale, out);
}

void mla_decode_v3(const float* q_abs, int64_t batch, const ref::PagedLatentView& c, const int32_t* tables,
                   int64_t stride, const int64_t* kv_lens, const ref::MlaDims& d, float scale, float* out) {
  decode_body(q_abs, batch, c.data, c.num_blocks, c.block_size, tables, stride, kv_lens, d, scale, out);
}

[[gnu::target("avx512f,avx512vl,avx512bw,avx512dq")]] void mla_decode_avx512(
    const float* q_abs, int64_t batch, const ref::PagedLatentView& c, const int32_t* tables, int64_t stride,
    const int64_t* kv_lens, const ref::MlaDims& d, float scale, float* out) {
  decode_body(q_abs, batch, c.data, c.num_blocks, c.block_size, tables, stride, kv_lens, d, scale, out);
}

void mla_decode_bf16_v3(const float* q_abs, int64_t batch, const ref::PagedLatentBf16View& c, const int32_t* tables,
                        int64_t stride, const int64_t* kv_lens, const ref::MlaDims& d, float scale, float* out) {
  decode_body(q_abs, batch, c.data, c.num_blocks, c.block_size, tables, stride, kv_lens, d, scale, out);
}

[[gnu::target("avx512f,avx512vl,avx512bw,avx512dq")]] void mla_decode_bf16_avx512(
    const float* q_abs, int64_t batch, const ref::PagedLatentBf16View& c, const int32_t* tables, int64_t stride,
    const int64_t* kv_lens, const ref::MlaDims& d, float scale, float* out) {
  decode_body(q_abs, batch, c.data, c.num_blocks, c.block_size, tables, stride, kv_lens, d, scale, out);
}

void mla_decode_fp8_v3(const float* q_abs, int64_t batch, const ref::PagedLatentFp8View& c, const int32_t* tables,
                       int64_t stride, const int64_t* kv_lens, const ref::MlaDims& d, float scale, float* out) {
  decode_body(q_abs, batch, c.data, c.num_blocks, c.block_size, tables, stride, kv_lens, d, scale, out);
}

[[gnu::target("avx512f,avx512vl,avx512bw,avx512dq")]] void mla_decode_fp8_avx512(
    const float* q_abs, int64_t batch, const ref::PagedLatentFp8View& c, const int32_t* tables, int64_t stride,
    const int64_t* kv_lens, const ref::MlaDims& d, float scale, float* out) {
  decode_body(q_abs, batch, c.data, c.num_blocks, c.block_size, tables, stride, kv_lens, d, scale, out);
}

}  // namespace

MlaNaiveFn mla_naive_for(Isa isa) { return isa >= Isa::kAvx512 ? naive_avx512 : naive_v3; }

void mla_attention_naive(const float* q, const float* kv, const float* k_pe, int64_t k_pe_stride, int64_t q_tokens,
                         int64_t kv_tokens, int64_t q_offset, const ref::MlaDims& dims, float scale, float* out) {
  static const MlaNaiveFn fn = mla_naive_for(active_isa());
  fn(q, kv, k_pe, k_pe_stride, q_tokens, kv_tokens, q_offset, dims, scale, out);
}

MlaDecodeFn mla_decode_for(Isa isa) { return isa >= Isa::kAvx512 ? mla_decode_avx512 : mla_decode_v3; }

void mla_decode_paged(const float* q_abs, int64_t batch, const ref::PagedLatentView& cache,
                      const int32_t* block_tables, int64_t block_table_stride, const int64_t* kv_lens,
                      const ref::MlaDims& dims, float scale, float* out) {
  static const MlaDecodeFn fn = mla_decode_for(active_isa());
  fn(q_abs, batch, cache, block_tables, block_table_stride, kv_lens, dims, scale, out);
}

MlaDecodeBf16Fn mla_decode_bf16_for(Isa isa) { return isa >= Isa::kAvx512 ? mla_decode_bf16_avx512 : mla_decode_bf16_v3; }

void mla_decode_paged_bf16(const float* q_abs, int64_t batch, const ref::PagedLatentBf16View& cache,
                           const int32_t* block_tables, int64_t block_table_stride, const int64_t* kv_lens,
                           const ref::MlaDims& dims, float scale, float* out) {
  static const MlaDecodeBf16Fn fn = mla_decode_bf16_for(active_isa());
  fn(q_abs, batch, cache, block_tables, block_table_stride, kv_lens, dims, scale, out);
}

MlaDecodeFp8Fn mla_decode_fp8_for(Isa isa) { return isa >= Isa::kAvx512 ? mla_decode_fp8_avx512 : mla_decode_fp8_v3; }

void mla_decode_paged_fp8(const float* q_abs, int64_t batch, const ref::PagedLatentFp8View& cache,
                          const int32_t* block_tables, int64_t block_table_stride, const int64_t* kv_lens,
                          const ref::MlaDims& dims, float scale, float* out) {
  static const MlaDecodeFp8Fn fn = mla_decode_fp8_for(active_isa());
  fn(q_abs, batch, cache, block_tables, block_table_stride, kv_lens, dims, scale, out);
}

}  // namespace k2::cpu
