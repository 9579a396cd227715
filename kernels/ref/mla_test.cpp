#include "kernels/ref/mla.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "kernels/ref/dense.h"

namespace k2::ref {
namespace {

TEST(MlaNaive, HandComputedWithQueryOffset) {
  // One head, nope 1, rope 1, v 1. Query at position 1 sees keys 0 and 1.
  MlaDims d{.heads = 1, .nope_dim = 1, .rope_dim = 1, .v_dim = 1, .kv_lora_rank = 0};
  const float q[] = {1.0f, 1.0f};                     // [q_nope | q_pe]
  const float kv[] = {0.0f, 3.0f, 0.5f, 6.0f};        // per key [k_nope | v]
  const float k_pe[] = {0.0f, std::log(2.0f) - 0.5f};  // scores: 0 and ln 2
  float out[1];
  mla_attention_naive(q, kv, k_pe, 1, 1, 2, 1, d, 1.0f, out);
  EXPECT_NEAR(out[0], 3.0f / 3 + 6.0f * 2 / 3, 1e-5);
}

TEST(MlaNaive, IsCausal) {
  MlaDims d{.heads = 1, .nope_dim = 1, .rope_dim = 0, .v_dim = 1, .kv_lora_rank = 0};
  const float q[] = {1.0f, 1.0f};
  const float kv[] = {1.0f, 3.0f, 1.0f, 5.0f};
  const float k_pe[] = {0.0f, 0.0f};
  float out[2];
  mla_attention_naive(q, kv, k_pe, 1, 2, 2, 0, d, 1.0f, out);
  EXPECT_FLOAT_EQ(out[0], 3.0f);  // first query sees only key 0
  EXPECT_NEAR(out[1], 4.0f, 1e-6);
}

// The absorbed paged form must give the naive form's numbers: build random latents,
// decompress them with kv_b for the naive form, and scatter them into scrambled blocks.
TEST(MlaDecodePaged, MatchesNaiveForm) {
  const MlaDims d{.heads = 3, .nope_dim = 4, .rope_dim = 2, .v_dim = 5, .kv_lora_rank = 6};
  const int64_t len = 7, block_size = 2, kv_w = d.nope_dim + d.v_dim;
  auto val = [](int64_t i, float f) { return std::sin(f * static_cast<float>(i) + 0.3f); };
  std::vector<float> latent(len * d.latent_dim()), kv_b(d.heads * kv_w * d.kv_lora_rank);
  std::vector<float> q(d.heads * d.qk_dim());
  for (size_t i = 0; i < latent.size(); ++i) latent[i] = val(i, 0.7f);
  for (size_t i = 0; i < kv_b.size(); ++i) kv_b[i] = val(i, 1.3f) * 0.5f;
  for (size_t i = 0; i < q.size(); ++i) q[i] = val(i, 2.1f);

  // naive: kv = latent[:, :kv_lora] · kv_bᵀ, the last position queries everything.
  std::vector<float> kv(len * d.heads * kv_w), want(d.heads * d.v_dim);
  linear(latent.data(), d.latent_dim(), kv_b.data(), d.kv_lora_rank, len, d.kv_lora_rank, d.heads * kv_w,
         kv.data(), d.heads * kv_w);
  mla_attention_naive(q.data(), kv.data(), latent.data() + d.kv_lora_rank, d.latent_dim(), 1, len, len - 1, d,
                      0.4f, want.data());

  // absorbed: q_abs[h] = [q_nope[h] · W_UK[h] | q_pe[h]], then o[h] = o_lat[h] · W_UV[h]ᵀ.
  const int32_t table[] = {5, 0, 3, 1};
  const int64_t num_blocks = 6;
  std::vector<float> cache(num_blocks * block_size * d.latent_dim(), NAN);
  for (int64_t t = 0; t < len; ++t) {
    float* row = cache.data() + (table[t / block_size] * block_size + t % block_size) * d.latent_dim();
    std::copy_n(latent.data() + t * d.latent_dim(), d.latent_dim(), row);
  }
  std::vector<float> q_abs(d.heads * d.latent_dim()), o_lat(d.heads * d.kv_lora_rank), got(d.heads * d.v_dim);
  for (int64_t h = 0; h < d.heads; ++h) {
    const float* w_uk = kv_b.data() + h * kv_w * d.kv_lora_rank;
    matmul(q.data() + h * d.qk_dim(), d.qk_dim(), w_uk, d.kv_lora_rank, 1, d.nope_dim, d.kv_lora_rank,
           q_abs.data() + h * d.latent_dim(), d.latent_dim());
    std::copy_n(q.data() + h * d.qk_dim() + d.nope_dim, d.rope_dim, q_abs.data() + h * d.latent_dim() + d.kv_lora_rank);
  }
  const int64_t kv_len = len;
  mla_decode_paged(q_abs.data(), 1, PagedLatentView{cache.data(), num_blocks, block_size}, table, 4, &kv_len, d, 0.4f,
                   o_lat.data());
  for (int64_t h = 0; h < d.heads; ++h) {
    const float* w_uv = kv_b.data() + (h * kv_w + d.nope_dim) * d.kv_lora_rank;
    linear(o_lat.data() + h * d.kv_lora_rank, d.kv_lora_rank, w_uv, d.kv_lora_rank, 1, d.kv_lora_rank, d.v_dim,
           got.data() + h * d.v_dim, d.v_dim);
  }
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-5) << i;
}

TEST(MlaDecodePagedDeathTest, RejectsBlockIdOutOfRange) {
  const MlaDims d{.heads = 1, .nope_dim = 1, .rope_dim = 0, .v_dim = 1, .kv_lora_rank = 1};
  std::vector<float> cache(4, 0.0f), q(1, 1.0f), out(1);
  const int32_t table[] = {9};
  const int64_t kv_len = 1;
  EXPECT_DEATH(mla_decode_paged(q.data(), 1, PagedLatentView{cache.data(), 2, 2}, table, 1, &kv_len, d, 1.0f,
                                out.data()),
               "block id");
}

}  // namespace
}  // namespace k2::ref
