#include "kernels/cpu/mla_decode.h"

#include <algorithm>
#include <vector>

#include "kernels/check.h"
#include "kernels/ref/dense.h"

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

[[gnu::always_inline]] inline void decode_body(const float* q_abs, int64_t batch, const ref::PagedLatentView& cache,
                                               const int32_t* block_tables, int64_t stride, const int64_t* kv_lens,
                                               const ref::MlaDims& d, float scale, float* out) {
  K2_KERNEL_CHECK(cache.block_size > 0 && (cache.block_size & (cache.block_size - 1)) == 0,
                  "mla decode: block size must be a power of two");
  const int64_t row = d.latent_dim(), heads = d.heads, r = d.kv_lora_rank;
  thread_local std::vector<float> scores;  // [heads, len]
  thread_local std::vector<const float*> rows;
  for (int64_t b = 0; b < batch; ++b) {
    const int64_t len = kv_lens[b];
    K2_KERNEL_CHECK(len >= 1 && (len + cache.block_size - 1) / cache.block_size <= stride,
                    "mla decode: kv length outside the block table");
    rows.resize(static_cast<size_t>(len));
    scores.resize(static_cast<size_t>(heads * len));
    const int32_t* table = block_tables + b * stride;
    for (int64_t t = 0; t < len; ++t) {
      const int32_t block = table[t / cache.block_size];
      K2_KERNEL_CHECK(block >= 0 && block < cache.num_blocks, "mla decode: block id out of range");
      rows[t] = cache.data + (block * cache.block_size + t % cache.block_size) * row;
    }
    const float* q = q_abs + b * heads * row;  // [heads, row]
    for (int64_t t = 0; t < len; ++t)
      for (int64_t h = 0; h < heads; ++h) scores[h * len + t] = dot_lanes(q + h * row, rows[t], row) * scale;
    float* o = out + b * heads * r;  // [heads, kv_lora]
    std::fill(o, o + heads * r, 0.0f);
    for (int64_t h = 0; h < heads; ++h) ref::softmax(scores.data() + h * len, len);
    for (int64_t t = 0; t < len; ++t) {
      const float* lat = rows[t];
      for (int64_t h = 0; h < heads; ++h) {
        const float p = scores[h * len + t];
        float* oh = o + h * r;
        for (int64_t j = 0; j < r; ++j) oh[j] += p * lat[j];
      }
    }
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

void mla_decode_v3(const float* q_abs, int64_t batch, const ref::PagedLatentView& cache, const int32_t* tables,
                   int64_t stride, const int64_t* kv_lens, const ref::MlaDims& d, float scale, float* out) {
  decode_body(q_abs, batch, cache, tables, stride, kv_lens, d, scale, out);
}

[[gnu::target("avx512f,avx512vl,avx512bw,avx512dq")]] void mla_decode_avx512(
    const float* q_abs, int64_t batch, const ref::PagedLatentView& cache, const int32_t* tables, int64_t stride,
    const int64_t* kv_lens, const ref::MlaDims& d, float scale, float* out) {
  decode_body(q_abs, batch, cache, tables, stride, kv_lens, d, scale, out);
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

}  // namespace k2::cpu
