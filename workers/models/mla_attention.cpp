#include "workers/models/mla_attention.h"

#include <algorithm>

#include "kernels/cpu/mla_decode.h"
#include "kernels/ref/dense.h"
#include "kernels/ref/rope.h"

namespace k2 {

Result<MlaParams> MlaParams::from_config(const ModelConfig& c) {
  MlaParams p;
  p.dims = ref::MlaDims{.heads = c.num_attention_heads,
                        .nope_dim = c.qk_nope_head_dim,
                        .rope_dim = c.qk_rope_head_dim,
                        .v_dim = c.v_head_dim,
                        .kv_lora_rank = c.kv_lora_rank};
  p.hidden = c.hidden_size;
  p.q_lora_rank = c.q_lora_rank;
  p.eps = static_cast<float>(c.rms_norm_eps);
  const RopeScaling& rs = c.rope_scaling;
  if (!rs.type.empty() && rs.type != "yarn") {
    return unimplemented("config rope_scaling.type '" + rs.type + "' is not supported (only yarn)");
  }
  const bool yarn = rs.type == "yarn";
  if (yarn && rs.factor > 1.0 && rs.mscale != rs.mscale_all_dim) {
    return unimplemented("config rope_scaling.mscale != rope_scaling.mscale_all_dim is not supported");
  }
  ref::YarnParams y{.rope_dim = c.qk_rope_head_dim,
                    .theta = c.rope_theta,
                    .factor = yarn ? rs.factor : 1.0,
                    .original_max_pos = rs.original_max_position_embeddings,
                    .beta_fast = rs.beta_fast,
                    .beta_slow = rs.beta_slow};
  p.inv_freq.resize(static_cast<size_t>(c.qk_rope_head_dim / 2));
  ref::yarn_inv_freq(y, p.inv_freq.data());
  p.softmax_scale = static_cast<float>(ref::yarn_softmax_scale(c.qk_head_dim(), y.factor, rs.mscale_all_dim));
  return p;
}

BatchRows BatchRows::from(const ForwardBatch& batch) {
  BatchRows r;
  r.first_row.push_back(0);
  for (const SequenceChunk& s : batch.sequences) {
    for (size_t i = 0; i < s.tokens.size(); ++i) r.positions.push_back(s.start_pos + static_cast<int64_t>(i));
    r.first_row.push_back(static_cast<int64_t>(r.positions.size()));
  }
  r.rows = static_cast<int64_t>(r.positions.size());
  return r;
}

Result<MlaLayer> MlaLayer::load(WeightLoader& w, const std::string& prefix, const MlaParams& p,
                                WeightLayout layout, const Shard& shard) {
  const ref::MlaDims& d = p.dims;
  const int64_t all_heads = d.heads * shard.size, head0 = d.heads * shard.rank;
  MlaLayer l;
  if (p.q_lora_rank) {
    K2_ASSIGN_OR_RETURN(l.q_a_, w.linear(prefix + "q_a_proj", *p.q_lora_rank, p.hidden, layout));
    K2_ASSIGN_OR_RETURN(l.q_a_norm_, w.tensor(prefix + "q_a_layernorm.weight", {*p.q_lora_rank}));
    K2_ASSIGN_OR_RETURN(l.q_b_, w.linear_rows(prefix + "q_b_proj", all_heads * d.qk_dim(), *p.q_lora_rank,
                                              head0 * d.qk_dim(), d.heads * d.qk_dim(), layout));
  } else {
    K2_ASSIGN_OR_RETURN(l.q_proj_, w.linear_rows(prefix + "q_proj", all_heads * d.qk_dim(), p.hidden,
                                                 head0 * d.qk_dim(), d.heads * d.qk_dim(), layout));
  }
  K2_ASSIGN_OR_RETURN(l.kv_a_, w.linear(prefix + "kv_a_proj_with_mqa", d.latent_dim(), p.hidden, layout));
  K2_ASSIGN_OR_RETURN(l.kv_a_norm_, w.tensor(prefix + "kv_a_layernorm.weight", {d.kv_lora_rank}));
  const int64_t kv_rows = d.nope_dim + d.v_dim;  // per head: [nope rows of W_UK | v rows of W_UV]
  K2_ASSIGN_OR_RETURN(TensorF32 kv_b, w.linear(prefix + "kv_b_proj", all_heads * kv_rows, d.kv_lora_rank));
  if (shard.sharded()) {  // keep this rank's heads only
    kv_b.data.erase(kv_b.data.begin() + (head0 + d.heads) * kv_rows * d.kv_lora_rank, kv_b.data.end());
    kv_b.data.erase(kv_b.data.begin(), kv_b.data.begin() + head0 * kv_rows * d.kv_lora_rank);
    kv_b.shape = {d.heads * kv_rows, d.kv_lora_rank};
  }
  for (int64_t h = 0; h < d.heads; ++h) {
    l.uk_t_.push_back(Linear::from_rows_transposed(kv_b, h * kv_rows, d.nope_dim, layout));
    l.uv_.push_back(Linear::from_rows(kv_b, h * kv_rows + d.nope_dim, d.v_dim, layout));
  }
  l.kv_b_ = Linear::from(std::move(kv_b), layout);
  K2_ASSIGN_OR_RETURN(l.o_, w.linear_columns(prefix + "o_proj", p.hidden, all_heads * d.v_dim, head0 * d.v_dim,
                                             d.heads * d.v_dim, layout));
  return l;
}

size_t MlaLayer::decode_bytes() const {
  size_t b = q_a_.bytes() + q_b_.bytes() + q_proj_.bytes() + kv_a_.bytes() + o_.bytes();
  b += (q_a_norm_.data.size() + kv_a_norm_.data.size()) * sizeof(float);
  for (const Linear& l : uk_t_) b += l.bytes();
  for (const Linear& l : uv_) b += l.bytes();
  return b;
}

// q = q_b(RMSNorm(q_a(x))) or q_proj(x): [rows, H, nope+rope], rope not yet applied.
void MlaLayer::project_q(const MlaParams& p, const float* x, int64_t rows, float* q) const {
  if (!p.q_lora_rank) {
    q_proj_.forward(x, rows, q);
    return;
  }
  const int64_t r = *p.q_lora_rank;
  std::vector<float> cq(static_cast<size_t>(rows * r));  // [rows, q_lora]
  q_a_.forward(x, rows, cq.data());
  ref::rms_norm(cq.data(), r, q_a_norm_.data.data(), rows, r, p.eps, cq.data(), r);
  q_b_.forward(cq.data(), rows, q);
}

// Cache row of every new token: [RMSNorm(kv_a[:kv_lora]) | rope(kv_a[kv_lora:])].
void MlaLayer::write_latents(const MlaParams& p, int64_t layer, const float* x, const ForwardBatch& batch,
                             const BatchRows& rows, LatentKvCache& cache) const {
  const ref::MlaDims& d = p.dims;
  const int64_t lat = d.latent_dim();
  std::vector<float> kv_a(static_cast<size_t>(rows.rows * lat));  // [rows, kv_lora + rope]
  kv_a_.forward(x, rows.rows, kv_a.data());
  ref::rms_norm(kv_a.data(), lat, kv_a_norm_.data.data(), rows.rows, d.kv_lora_rank, p.eps, kv_a.data(), lat);
  ref::rope_interleaved(kv_a.data() + d.kv_lora_rank, rows.rows, lat, 1, d.rope_dim, d.rope_dim,
                        rows.positions.data(), p.inv_freq.data());
  for (size_t s = 0; s < batch.sequences.size(); ++s) {
    for (int64_t r = rows.first_row[s]; r < rows.first_row[s + 1]; ++r) {
      cache.write_row(layer, batch.sequences[s].block_table, rows.positions[r], kv_a.data() + r * lat);
    }
  }
}

// Naive form for one sequence chunk: q [n, H, nope+rope] -> attn [n, H, v].
void MlaLayer::attend_naive(const MlaParams& p, int64_t layer, const SequenceChunk& seq, const float* q,
                            const LatentKvCache& cache, float* attn) const {
  const ref::MlaDims& d = p.dims;
  const int64_t lat = d.latent_dim(), n = static_cast<int64_t>(seq.tokens.size());
  const int64_t kv_tokens = seq.start_pos + n, kv_w = d.heads * (d.nope_dim + d.v_dim);
  std::vector<float> latents(static_cast<size_t>(kv_tokens * lat));  // [kv_tokens, kv_lora + rope]
  for (int64_t t = 0; t < kv_tokens; ++t) {
    cache.read_row(layer, seq.block_table, t, latents.data() + t * lat);
  }
  std::vector<float> kv(static_cast<size_t>(kv_tokens * kv_w));  // [kv_tokens, H, nope + v]
  kv_b_.forward(latents.data(), lat, kv_tokens, kv.data(), kv_w);
  if (o_.layout() == WeightLayout::kF32) {  // the float32 path keeps the reference
    ref::mla_attention_naive(q, kv.data(), latents.data() + d.kv_lora_rank, lat, n, kv_tokens, seq.start_pos, d,
                             p.softmax_scale, attn);
    return;
  }
  // Query rows in chunks of kRowsPerTask as pool tasks (later rows see more keys, so
  // several chunks per thread keep the threads balanced).
  constexpr int64_t kRowsPerTask = 16;
  const int64_t q_width = d.heads * d.qk_dim(), v_width = d.heads * d.v_dim;
  parallel_tasks((n + kRowsPerTask - 1) / kRowsPerTask, [&](int64_t c) {
    const int64_t i0 = c * kRowsPerTask, rows = std::min(kRowsPerTask, n - i0);
    cpu::mla_attention_naive(q + i0 * q_width, kv.data(), latents.data() + d.kv_lora_rank, lat, rows, kv_tokens,
                             seq.start_pos + i0, d, p.softmax_scale, attn + i0 * v_width);
  });
}

// Absorbed form for the one-token sequences `decode_seqs`, all at once.
void MlaLayer::attend_absorbed(const MlaParams& p, int64_t layer, const ForwardBatch& batch, const BatchRows& rows,
                               const std::vector<int64_t>& decode_seqs, const float* q, const LatentKvCache& cache,
                               float* attn) const {
  const ref::MlaDims& d = p.dims;
  const int64_t b_count = static_cast<int64_t>(decode_seqs.size()), lat = d.latent_dim(), qk = d.qk_dim();
  const int64_t q_width = d.heads * qk;
  size_t table_width = 0;
  for (int64_t s : decode_seqs) table_width = std::max(table_width, batch.sequences[s].block_table.size());
  std::vector<float> qd(static_cast<size_t>(b_count * q_width));            // [B, H, nope+rope]
  std::vector<int32_t> tables(static_cast<size_t>(b_count) * table_width, 0);  // [B, table_width]
  std::vector<int64_t> kv_lens(static_cast<size_t>(b_count));
  for (int64_t b = 0; b < b_count; ++b) {
    const SequenceChunk& seq = batch.sequences[decode_seqs[b]];
    std::copy_n(q + rows.first_row[decode_seqs[b]] * q_width, q_width, qd.data() + b * q_width);
    std::copy(seq.block_table.begin(), seq.block_table.end(), tables.begin() + b * table_width);
    kv_lens[b] = seq.start_pos + 1;
  }
  // q_abs[b, h] = [q_nope[b, h] · W_UK[h] | q_pe[b, h]]: [B, H, kv_lora + rope]
  // Heads are independent tasks (one pool call instead of one per head).
  std::vector<float> q_abs(static_cast<size_t>(b_count * d.heads * lat));
  parallel_tasks(d.heads, [&](int64_t h) {
    uk_t_[static_cast<size_t>(h)].forward(qd.data() + h * qk, q_width, b_count, q_abs.data() + h * lat,
                                          d.heads * lat);
    for (int64_t b = 0; b < b_count; ++b) {
      std::copy_n(qd.data() + b * q_width + h * qk + d.nope_dim, d.rope_dim,
                  q_abs.data() + (b * d.heads + h) * lat + d.kv_lora_rank);
    }
  });
  std::vector<float> o_lat(static_cast<size_t>(b_count * d.heads * d.kv_lora_rank));  // [B, H, kv_lora]
  // One task per sequence: each reads only its own cache blocks. The float32 path keeps
  // the reference kernel; the fast path uses the vectorised one.
  // A bf16 or fp8 cache always takes the CPU kernel (it widens only the rows it reads).
  const auto decode = o_.layout() == WeightLayout::kF32 ? ref::mla_decode_paged : cpu::mla_decode_paged;
  parallel_tasks(b_count, [&](int64_t b) {
    const int64_t stride = static_cast<int64_t>(table_width);
    float* o = o_lat.data() + b * d.heads * d.kv_lora_rank;
    if (cache.dtype() == KvCacheDtype::kBfloat16) {
      cpu::mla_decode_paged_bf16(q_abs.data() + b * d.heads * lat, 1, cache.layer_view_bf16(layer),
                                 tables.data() + b * table_width, stride, kv_lens.data() + b, d, p.softmax_scale, o);
    } else if (cache.dtype() == KvCacheDtype::kFp8E4m3) {
      cpu::mla_decode_paged_fp8(q_abs.data() + b * d.heads * lat, 1, cache.layer_view_fp8(layer),
                                tables.data() + b * table_width, stride, kv_lens.data() + b, d, p.softmax_scale, o);
    } else {
      decode(q_abs.data() + b * d.heads * lat, 1, cache.layer_view(layer), tables.data() + b * table_width, stride,
             kv_lens.data() + b, d, p.softmax_scale, o);
    }
  });
  // attn[b, h] = o_lat[b, h] · W_UV[h]ᵀ: [B, H, v], scattered back to the batch rows.
  const int64_t v_width = d.heads * d.v_dim;
  std::vector<float> od(static_cast<size_t>(b_count * v_width));
  parallel_tasks(d.heads, [&](int64_t h) {
    uv_[static_cast<size_t>(h)].forward(o_lat.data() + h * d.kv_lora_rank, d.heads * d.kv_lora_rank, b_count,
                                        od.data() + h * d.v_dim, v_width);
  });
  for (int64_t b = 0; b < b_count; ++b) {
    std::copy_n(od.data() + b * v_width, v_width, attn + rows.first_row[decode_seqs[b]] * v_width);
  }
}

void MlaLayer::forward(const MlaParams& p, int64_t layer, const float* x, const ForwardBatch& batch,
                       const BatchRows& rows, LatentKvCache& cache, float* out) const {
  const ref::MlaDims& d = p.dims;
  const int64_t q_width = d.heads * d.qk_dim(), v_width = d.heads * d.v_dim;
  std::vector<float> q(static_cast<size_t>(rows.rows * q_width));  // [rows, H, nope + rope]
  project_q(p, x, rows.rows, q.data());
  ref::rope_interleaved(q.data() + d.nope_dim, rows.rows, q_width, d.heads, d.qk_dim(), d.rope_dim,
                        rows.positions.data(), p.inv_freq.data());
  write_latents(p, layer, x, batch, rows, cache);

  std::vector<float> attn(static_cast<size_t>(rows.rows * v_width));  // [rows, H, v]
  std::vector<int64_t> decode_seqs;
  for (size_t s = 0; s < batch.sequences.size(); ++s) {
    const SequenceChunk& seq = batch.sequences[s];
    if (seq.tokens.size() == 1) {
      decode_seqs.push_back(static_cast<int64_t>(s));
      continue;
    }
    const int64_t r0 = rows.first_row[s];
    attend_naive(p, layer, seq, q.data() + r0 * q_width, cache, attn.data() + r0 * v_width);
  }
  if (!decode_seqs.empty()) attend_absorbed(p, layer, batch, rows, decode_seqs, q.data(), cache, attn.data());

  o_.forward(attn.data(), rows.rows, out);
}

}  // namespace k2
