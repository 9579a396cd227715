#include "kernels/ref/mla.h"

#include <bit>
#include <cstddef>
#include <vector>

#include "kernels/ref/kv_fp8.h"

#include "kernels/check.h"
#include "kernels/ref/dense.h"

namespace k2::ref {
namespace {

float dot(const float* a, const float* b, int64_t n) {
  float s = 0.0f;
  for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

void check_dims(const MlaDims& d) {
  K2_KERNEL_CHECK(d.heads > 0 && d.nope_dim >= 0 && d.rope_dim >= 0 && d.v_dim > 0 && d.kv_lora_rank >= 0,
                  "mla: bad dims");
}

}  // namespace

void mla_attention_naive(const float* q, const float* kv, const float* k_pe, int64_t k_pe_stride,
                         int64_t q_tokens, int64_t kv_tokens, int64_t q_offset, const MlaDims& dims,
                         float scale, float* out) {
  check_dims(dims);
  K2_KERNEL_CHECK(q_offset >= 0 && q_tokens >= 0 && q_offset + q_tokens <= kv_tokens,
                  "mla naive: queries past the keys");
  K2_KERNEL_CHECK(k_pe_stride >= dims.rope_dim, "mla naive: k_pe stride too small");
  const int64_t qk = dims.qk_dim(), kv_w = dims.nope_dim + dims.v_dim;
  std::vector<float> scores(static_cast<size_t>(kv_tokens));
  for (int64_t i = 0; i < q_tokens; ++i) {
    const int64_t visible = q_offset + i + 1;
    for (int64_t h = 0; h < dims.heads; ++h) {
      const float* qh = q + (i * dims.heads + h) * qk;
      for (int64_t t = 0; t < visible; ++t) {
        const float* kh = kv + (t * dims.heads + h) * kv_w;
        scores[t] = (dot(qh, kh, dims.nope_dim) + dot(qh + dims.nope_dim, k_pe + t * k_pe_stride, dims.rope_dim)) *
                    scale;
      }
      softmax(scores.data(), visible);
      float* oh = out + (i * dims.heads + h) * dims.v_dim;
      for (int64_t j = 0; j < dims.v_dim; ++j) oh[j] = 0.0f;
      for (int64_t t = 0; t < visible; ++t) {
        axpy(scores[t], kv + (t * dims.heads + h) * kv_w + dims.nope_dim, dims.v_dim, oh);
      }
    }
  }
}

void mla_decode_paged(const float* q_abs, int64_t batch, const PagedLatentView& cache,
                      const int32_t* block_tables, int64_t block_table_stride, const int64_t* kv_lens,
                      const MlaDims& dims, float scale, float* out) {
  check_dims(dims);
  K2_KERNEL_CHECK(cache.block_size > 0 && (cache.block_size & (cache.block_size - 1)) == 0,
                  "mla decode: block size must be a power of two");
  const int64_t row = dims.latent_dim();
  std::vector<const float*> rows;
  std::vector<float> scores;
  for (int64_t b = 0; b < batch; ++b) {
    const int64_t len = kv_lens[b];
    K2_KERNEL_CHECK(len >= 1 && (len + cache.block_size - 1) / cache.block_size <= block_table_stride,
                    "mla decode: kv length outside the block table");
    rows.resize(static_cast<size_t>(len));
    scores.resize(static_cast<size_t>(len));
    const int32_t* table = block_tables + b * block_table_stride;
    for (int64_t t = 0; t < len; ++t) {
      const int32_t block = table[t / cache.block_size];
      K2_KERNEL_CHECK(block >= 0 && block < cache.num_blocks, "mla decode: block id out of range");
      rows[t] = cache.data + (block * cache.block_size + t % cache.block_size) * row;
    }
    for (int64_t h = 0; h < dims.heads; ++h) {
      const float* qh = q_abs + (b * dims.heads + h) * row;
      for (int64_t t = 0; t < len; ++t) scores[t] = dot(qh, rows[t], row) * scale;
      softmax(scores.data(), len);
      float* oh = out + (b * dims.heads + h) * dims.kv_lora_rank;
      for (int64_t j = 0; j < dims.kv_lora_rank; ++j) oh[j] = 0.0f;
      for (int64_t t = 0; t < len; ++t) axpy(scores[t], rows[t], dims.kv_lora_rank, oh);
    }
  }
}

void mla_decode_paged_bf16(const float* q_abs, int64_t batch, const PagedLatentBf16View& cache,
                           const int32_t* block_tables, int64_t block_table_stride, const int64_t* kv_lens,
                           const MlaDims& dims, float scale, float* out) {
  std::vector<float> wide(static_cast<size_t>(cache.num_blocks * cache.block_size * dims.latent_dim()));
  for (size_t i = 0; i < wide.size(); ++i) wide[i] = std::bit_cast<float>(static_cast<uint32_t>(cache.data[i]) << 16);
  mla_decode_paged(q_abs, batch, PagedLatentView{wide.data(), cache.num_blocks, cache.block_size}, block_tables,
                   block_table_stride, kv_lens, dims, scale, out);
}

void mla_decode_paged_fp8(const float* q_abs, int64_t batch, const PagedLatentFp8View& cache,
                          const int32_t* block_tables, int64_t block_table_stride, const int64_t* kv_lens,
                          const MlaDims& dims, float scale, float* out) {
  const int64_t row = dims.latent_dim(), rows = cache.num_blocks * cache.block_size;
  const int64_t row_bytes = fp8_kv_row_bytes(row);
  std::vector<float> wide(static_cast<size_t>(rows * row));
  for (int64_t r = 0; r < rows; ++r) dequantize_fp8_kv_row(cache.data + r * row_bytes, row, wide.data() + r * row);
  mla_decode_paged(q_abs, batch, PagedLatentView{wide.data(), cache.num_blocks, cache.block_size}, block_tables,
                   block_table_stride, kv_lens, dims, scale, out);
}

}  // namespace k2::ref
