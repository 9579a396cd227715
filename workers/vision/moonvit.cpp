#include "workers/vision/moonvit.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>

#include "kernels/ref/dense.h"
#include "kernels/ref/vision.h"

namespace k2 {
using vision::gemm;
using vision::GemmOut;
using vision::kTileM;
using vision::PackedMatrix;
namespace {

// Fixed by the architecture, not by config.json: the tower's nn.LayerNorm default eps and
// the base of its 2D RoPE table (vLLM kimi_k25_vit.py).
constexpr float kTowerLnEps = 1e-5f;
constexpr float kRopeTheta = 10000.0f;
// Largest grid side accepted, far above any preprocessor limit (512 in the real config);
// keeps every size product well inside int64.
constexpr int64_t kMaxGridSide = int64_t{1} << 16;

uint64_t vision_bytes(const Checkpoint& checkpoint) {
  uint64_t total = 0;
  for (const std::string& name : checkpoint.tensor_names()) {
    if (!name.starts_with("vision_tower.") && !name.starts_with("mm_projector.")) continue;
    Result<TensorView> view = checkpoint.view(name);
    if (view.ok()) total += view->bytes;
  }
  return total;
}

// The model's own pool: K2_CPU_THREADS threads, else one per CPU the process may use.
std::unique_ptr<cpu::ThreadPool> make_pool() {
  cpu::ThreadPoolOptions options;
  if (const char* env = std::getenv("K2_CPU_THREADS")) options.threads = std::atoi(env);
  return std::make_unique<cpu::ThreadPool>(options);
}

// fn(first, count) over row chunks of about kRowsPerTask rows, on the pool.
constexpr int64_t kRowsPerTask = 16;
template <class Fn>
void for_rows(cpu::ThreadPool& pool, int64_t rows, Fn&& fn) {
  const int64_t tasks = (rows + kRowsPerTask - 1) / kRowsPerTask;
  pool.parallel_for(tasks, [&](int64_t t, int) {
    const int64_t first = t * kRowsPerTask;
    fn(first, std::min(kRowsPerTask, rows - first));
  });
}

// Query rows per attention task: the scores of a block ([rows, N]) stay in L2 for N ≲ 4096.
constexpr int64_t kQueryBlock = 4 * kTileM;

}  // namespace

// Buffers of one encode(), grown by the first layer and reused by the others.
struct MoonVit::Scratch {
  std::vector<float> y;    // [N, D]
  std::vector<float> qkv;  // [N, 3·local_width]
  std::vector<float> o;    // [N, local_width]
  std::vector<float> h;    // [N, local_mlp]
  std::vector<int64_t> rows, cols;
  std::vector<PackedMatrix> keys, values;  // per local head
};

Result<MoonVit::Affine> MoonVit::load_affine(WeightLoader& w, const std::string& module, int64_t out, int64_t in) {
  K2_ASSIGN_OR_RETURN(TensorF32 weight, w.linear(module, out, in));
  K2_ASSIGN_OR_RETURN(TensorF32 bias, w.tensor(module + ".bias", {out}));
  Affine a;
  a.weight.pack_transposed(weight.data.data(), in, out, in);
  a.bias = std::move(bias.data);
  return a;
}

Result<MoonVit::LayerNorm> MoonVit::load_norm(WeightLoader& w, const std::string& module, int64_t dim) {
  LayerNorm n;
  K2_ASSIGN_OR_RETURN(n.weight, w.tensor(module + ".weight", {dim}));
  K2_ASSIGN_OR_RETURN(n.bias, w.tensor(module + ".bias", {dim}));
  return n;
}

// The full tensors are read (so every rank of a dummy model slices the same values) and this
// rank's rows or columns packed.
Result<MoonVit::Block> MoonVit::load_block(WeightLoader& w, const std::string& prefix, const VisionConfig& c,
                                           const Shard& shard) {
  const int64_t d = c.hidden_size, inter = c.intermediate_size;
  const int64_t width = shard.count(c.num_heads) * c.head_dim(), first = shard.first(c.num_heads) * c.head_dim();
  const int64_t mlp = shard.count(inter), mlp_first = shard.first(inter);
  Block b;
  K2_ASSIGN_OR_RETURN(b.norm0, load_norm(w, prefix + "norm0", d));
  K2_ASSIGN_OR_RETURN(TensorF32 qkv, w.linear(prefix + "wqkv", 3 * d, d));
  K2_ASSIGN_OR_RETURN(TensorF32 qkv_bias, w.tensor(prefix + "wqkv.bias", {3 * d}));
  std::vector<float> rows(static_cast<size_t>(3 * width * d));  // this rank's q, k, v rows
  for (int64_t part = 0; part < 3; ++part) {
    std::copy_n(qkv.data.data() + (part * d + first) * d, width * d, rows.data() + part * width * d);
    const auto bias = qkv_bias.data.begin() + part * d + first;
    b.wqkv.bias.insert(b.wqkv.bias.end(), bias, bias + width);
  }
  b.wqkv.weight.pack_transposed(rows.data(), d, 3 * width, d);
  K2_ASSIGN_OR_RETURN(TensorF32 wo, w.linear(prefix + "wo", d, d));
  K2_ASSIGN_OR_RETURN(TensorF32 wo_bias, w.tensor(prefix + "wo.bias", {d}));
  b.wo.weight.pack_transposed(wo.data.data() + first, d, d, width);
  b.wo.bias = std::move(wo_bias.data);
  K2_ASSIGN_OR_RETURN(b.norm1, load_norm(w, prefix + "norm1", d));
  K2_ASSIGN_OR_RETURN(TensorF32 fc0, w.linear(prefix + "mlp.fc0", inter, d));
  K2_ASSIGN_OR_RETURN(TensorF32 fc0_bias, w.tensor(prefix + "mlp.fc0.bias", {inter}));
  b.fc0.weight.pack_transposed(fc0.data.data() + mlp_first * d, d, mlp, d);
  b.fc0.bias.assign(fc0_bias.data.begin() + mlp_first, fc0_bias.data.begin() + mlp_first + mlp);
  K2_ASSIGN_OR_RETURN(TensorF32 fc1, w.linear(prefix + "mlp.fc1", d, inter));
  K2_ASSIGN_OR_RETURN(TensorF32 fc1_bias, w.tensor(prefix + "mlp.fc1.bias", {d}));
  b.fc1.weight.pack_transposed(fc1.data.data() + mlp_first, inter, d, mlp);
  b.fc1.bias = std::move(fc1_bias.data);
  return b;
}

Status MoonVit::check_shard(const VisionConfig& c, const Shard& shard) {
  K2_RETURN_IF_ERROR(shard.validate());
  const std::pair<const char*, int64_t> sizes[] = {{"vt_num_attention_heads", c.num_heads},
                                                   {"vt_intermediate_size", c.intermediate_size}};
  for (const auto& [name, value] : sizes) {
    if (!shard.divides(value)) {
      return invalid_argument(std::string("vision_config.") + name + " " + std::to_string(value) +
                              " does not divide by the " + shard.describe());
    }
  }
  return Status::ok_status();
}

Result<std::unique_ptr<MoonVit>> MoonVit::load(const Checkpoint& checkpoint, const VisionConfig& config,
                                               ProgressStyle progress_style, const Shard& shard, Communicator* comm) {
  if (!checkpoint.tensor_prefix().empty()) {
    return invalid_argument("vision weights need a checkpoint opened without a tensor prefix, not '" +
                            checkpoint.tensor_prefix() + "'");
  }
  K2_RETURN_IF_ERROR(check_shard(config, shard));
  ProgressReporter progress("loading vision tower " + checkpoint.dir().string(), vision_bytes(checkpoint),
                            progress_style);
  WeightLoader w(checkpoint, &progress);
  K2_ASSIGN_OR_RETURN(std::unique_ptr<MoonVit> m, build(w, config, shard, comm));
  progress.finish();
  return m;
}

Result<std::unique_ptr<MoonVit>> MoonVit::load_dummy(const VisionConfig& config, uint64_t seed, const Shard& shard,
                                                     Communicator* comm) {
  WeightLoader w(seed);
  return build(w, config, shard, comm);
}

Result<std::unique_ptr<MoonVit>> MoonVit::build(WeightLoader& w, const VisionConfig& config, const Shard& shard,
                                                Communicator* comm) {
  const VisionConfig& c = config;
  K2_RETURN_IF_ERROR(check_shard(c, shard));
  if (shard.sharded() && (comm == nullptr || comm->size() != shard.size || comm->rank() != shard.rank)) {
    return invalid_argument("a sharded vision tower (" + shard.describe() + ") needs a communicator of that rank and size");
  }
  const int64_t d = c.hidden_size, p = c.patch_size;
  std::unique_ptr<MoonVit> m(new MoonVit());
  m->config_ = c;
  m->shard_ = shard;
  m->comm_ = shard.sharded() ? comm : nullptr;
  m->pool_ = make_pool();
  // The Conv2d(3, D, kernel = stride = patch) is a Linear over the flattened (c, y, x) patch.
  const std::string patch = "vision_tower.patch_embed.";
  K2_ASSIGN_OR_RETURN(TensorF32 patch_w, w.tensor(patch + "proj.weight", {d, 3, p, p}));
  m->patch_embed_.weight.pack_transposed(patch_w.data.data(), c.patch_values(), d, c.patch_values());
  K2_ASSIGN_OR_RETURN(TensorF32 patch_b, w.tensor(patch + "proj.bias", {d}));
  m->patch_embed_.bias = std::move(patch_b.data);
  K2_ASSIGN_OR_RETURN(m->pos_emb_, w.tensor(patch + "pos_emb.weight", {c.pos_emb_height, c.pos_emb_width, d}));
  for (int64_t l = 0; l < c.num_layers; ++l) {
    K2_ASSIGN_OR_RETURN(Block b, load_block(w, "vision_tower.encoder.blocks." + std::to_string(l) + ".", c, shard));
    m->blocks_.push_back(std::move(b));
  }
  K2_ASSIGN_OR_RETURN(m->final_norm_, load_norm(w, "vision_tower.encoder.final_layernorm", d));
  K2_ASSIGN_OR_RETURN(m->pre_norm_, load_norm(w, "mm_projector.pre_norm", d));
  K2_ASSIGN_OR_RETURN(m->proj0_, load_affine(w, "mm_projector.proj.0", c.projector_width(), c.projector_width()));
  K2_ASSIGN_OR_RETURN(m->proj2_, load_affine(w, "mm_projector.proj.2", c.text_hidden_size, c.projector_width()));
  m->rope_inv_freq_.resize(static_cast<size_t>(c.head_dim() / 4));
  ref::rope_2d_inv_freq(c.head_dim(), kRopeTheta, m->rope_inv_freq_.data());
  return m;
}

Result<int64_t> MoonVit::num_tokens(const MediaGrid& g) const {
  const std::string grid = "grid_thw [" + std::to_string(g.t) + ", " + std::to_string(g.h) + ", " +
                           std::to_string(g.w) + "]";
  if (g.t < 1 || g.t > config_.pos_emb_time) {
    return invalid_argument(grid + ": frames must be 1 .. init_pos_emb_time " + std::to_string(config_.pos_emb_time));
  }
  if (g.h < 1 || g.w < 1 || g.h > kMaxGridSide || g.w > kMaxGridSide) {
    return invalid_argument(grid + ": sides must be 1 .. " + std::to_string(kMaxGridSide));
  }
  if (g.h % config_.merge_height != 0 || g.w % config_.merge_width != 0) {
    return invalid_argument(grid + ": sides must be multiples of merge_kernel_size [" +
                            std::to_string(config_.merge_height) + ", " + std::to_string(config_.merge_width) + "]");
  }
  return (g.h / config_.merge_height) * (g.w / config_.merge_width);
}

int64_t MoonVit::macs(const MediaGrid& grid) const {
  const VisionConfig& c = config_;
  const int64_t n = grid.patches(), d = c.hidden_size, width = local_heads() * c.head_dim();
  const int64_t mlp = shard_.count(c.intermediate_size), pw = c.projector_width();
  const int64_t tokens = (grid.h / c.merge_height) * (grid.w / c.merge_width);
  const int64_t layer = n * d * 3 * width + 2 * n * n * width + n * width * d + 2 * n * d * mlp;
  return n * c.patch_values() * d + c.num_layers * layer + tokens * pw * (pw + c.text_hidden_size);
}

Result<MediaEmbedding> MoonVit::encode(const MediaGrid& grid, std::span<const float> pixel_values,
                                       VisionTrace* trace) const {
  K2_ASSIGN_OR_RETURN(const int64_t tokens, num_tokens(grid));
  const int64_t n = grid.patches(), d = config_.hidden_size;
  if (static_cast<int64_t>(pixel_values.size()) != n * config_.patch_values()) {
    return invalid_argument("pixel_values has " + std::to_string(pixel_values.size()) + " values, grid_thw needs " +
                            std::to_string(n) + " x " + std::to_string(config_.patch_values()));
  }

  // x [N, D]: patch embedding + position embedding, the residual stream of the tower.
  std::vector<float> x(static_cast<size_t>(n * d));
  embed_patches(grid, pixel_values.data(), x.data(), trace);

  // q, k are turned by each patch's (row, column) within its frame: every frame of a chunk
  // shares the same 2D positions.
  Scratch s;
  s.rows.resize(static_cast<size_t>(n));
  s.cols.resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    s.rows[static_cast<size_t>(i)] = (i % (grid.h * grid.w)) / grid.w;
    s.cols[static_cast<size_t>(i)] = i % grid.w;
  }
  // L pre-norm blocks, attention over all N patches of this item.
  for (size_t l = 0; l < blocks_.size(); ++l) {
    K2_RETURN_IF_ERROR(run_block(blocks_[l], grid, x.data(), s));
    if (trace != nullptr && l == 0) trace->block0 = x;
  }

  // vt_out [N, D] = LayerNorm(x; final_layernorm)
  layer_norm(final_norm_, x.data(), n, kTowerLnEps, x.data());
  if (trace != nullptr) trace->vt_out = x;

  // merged [tokens, kh·kw, D]: frames averaged, then each kh x kw block of patches gathered.
  std::vector<float> merged(static_cast<size_t>(tokens * config_.projector_width()));
  merge(grid, x.data(), merged.data());
  if (trace != nullptr) trace->merged = merged;

  // out [tokens, text_hidden]
  MediaEmbedding out{.tokens = tokens, .width = config_.text_hidden_size, .data = {}};
  out.data.resize(static_cast<size_t>(tokens * out.width));
  project(merged.data(), tokens, out.data.data(), trace);
  return out;
}

void MoonVit::layer_norm(const LayerNorm& norm, const float* x, int64_t rows, float eps, float* y) const {
  const int64_t dim = static_cast<int64_t>(norm.weight.data.size());
  for_rows(*pool_, rows, [&](int64_t first, int64_t count) {
    ref::layer_norm(x + first * dim, dim, norm.weight.data.data(), norm.bias.data.data(), count, dim, eps,
                    y + first * dim, dim);
  });
}

// x[N, D] = pixel_values[N, 3·P·P] · W_patchᵀ + b + pos[N, D].
void MoonVit::embed_patches(const MediaGrid& grid, const float* pixel_values, float* x, VisionTrace* trace) const {
  const int64_t n = grid.patches(), d = config_.hidden_size, hw = grid.h * grid.w;
  gemm(pixel_values, config_.patch_values(), n, patch_embed_.weight, patch_embed_.bias.data(), x, d, GemmOut::kStore,
       pool_.get());
  if (trace != nullptr) trace->patch_embed.assign(x, x + n * d);

  // spatial [h·w, D]: the learned [H0, W0, D] grid, bicubic-resized to the item's grid
  // (torch semantics, no antialias) unless the sizes already match.
  std::vector<float> spatial;
  if (grid.h == config_.pos_emb_height && grid.w == config_.pos_emb_width) {
    spatial = pos_emb_.data;
  } else {
    spatial.resize(static_cast<size_t>(hw * d));
    ref::bicubic_interpolate(pos_emb_.data.data(), config_.pos_emb_height, config_.pos_emb_width, d, grid.h, grid.w,
                             spatial.data());
  }

  // pos [N, D]: spatial for every frame, plus the fixed sin-cos time(f) [D] only when the
  // item has more than one frame (a still image gets none).
  std::vector<float> pos(static_cast<size_t>(n * d)), time(static_cast<size_t>(d));
  for (int64_t f = 0; f < grid.t; ++f) {
    float* frame = pos.data() + f * hw * d;
    std::copy(spatial.begin(), spatial.end(), frame);
    if (grid.t == 1) continue;
    ref::sincos_embedding(static_cast<float>(f), d, time.data());
    for (int64_t i = 0; i < hw; ++i) ref::axpy(1.0f, time.data(), d, frame + i * d);
  }
  ref::axpy(1.0f, pos.data(), n * d, x);
  if (trace != nullptr) trace->pos_emb = std::move(pos);
}

// x += Attn(LN0(x)); x += MLP(LN1(x)), all [N, D] (this rank's heads and MLP columns, the
// partial products summed over the ranks).
Status MoonVit::run_block(const Block& b, const MediaGrid& grid, float* x, Scratch& s) const {
  const int64_t n = grid.patches(), d = config_.hidden_size, hd = config_.head_dim(), heads = local_heads();
  const int64_t width = heads * hd, mlp = b.fc0.out();
  s.y.resize(static_cast<size_t>(n * d));
  s.qkv.resize(static_cast<size_t>(n * 3 * width));
  s.o.resize(static_cast<size_t>(n * width));
  s.h.resize(static_cast<size_t>(n * mlp));

  // qkv [N, 3, heads, hd] = LN0(x) · Wqkvᵀ + b, then q and k rotated.
  layer_norm(b.norm0, x, n, kTowerLnEps, s.y.data());
  gemm(s.y.data(), d, n, b.wqkv.weight, b.wqkv.bias.data(), s.qkv.data(), 3 * width, GemmOut::kStore, pool_.get());
  for_rows(*pool_, n, [&](int64_t first, int64_t count) {
    for (int64_t part = 0; part < 2; ++part) {
      ref::rope_2d(s.qkv.data() + first * 3 * width + part * width, count, 3 * width, heads, hd, hd,
                   s.rows.data() + first, s.cols.data() + first, rope_inv_freq_.data());
    }
  });
  attention(s.qkv.data(), n, s.o.data(), s);
  K2_RETURN_IF_ERROR(residual_add(b.wo, s.o.data(), n, x, s));

  // x += fc1(gelu_tanh(fc0(LN1(x))))
  layer_norm(b.norm1, x, n, kTowerLnEps, s.y.data());
  gemm(s.y.data(), d, n, b.fc0.weight, b.fc0.bias.data(), s.h.data(), mlp, GemmOut::kStore, pool_.get());
  for_rows(*pool_, n, [&](int64_t first, int64_t count) {
    vision::gelu_tanh(s.h.data() + first * mlp, count * mlp, s.h.data() + first * mlp);
  });
  return residual_add(b.fc1, s.h.data(), n, x, s);
}

// o[N, heads, hd] = softmax(q·kᵀ / √hd) · v per head, unmasked over the N patches of this
// item: each task takes one head and kQueryBlock queries, scores them against all keys at
// once (exact softmax, no running rescale) and multiplies by v.
void MoonVit::attention(const float* qkv, int64_t n, float* o, Scratch& s) const {
  const int64_t hd = config_.head_dim(), heads = local_heads(), width = heads * hd, ld = 3 * width;
  s.keys.resize(static_cast<size_t>(heads));
  s.values.resize(static_cast<size_t>(heads));
  pool_->parallel_for(heads, [&](int64_t h, int) {
    s.keys[static_cast<size_t>(h)].pack_transposed(qkv + width + h * hd, ld, n, hd);
    s.values[static_cast<size_t>(h)].pack(qkv + 2 * width + h * hd, ld, n, hd);
  });
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(hd)));
  const int64_t blocks = (n + kQueryBlock - 1) / kQueryBlock;
  pool_->parallel_for(heads * blocks, [&](int64_t task, int) {
    const int64_t h = task / blocks, q0 = (task % blocks) * kQueryBlock, rows = std::min(kQueryBlock, n - q0);
    thread_local std::vector<float> scores;
    if (scores.size() < static_cast<size_t>(rows * n)) scores.resize(static_cast<size_t>(rows * n));
    gemm(qkv + q0 * ld + h * hd, ld, rows, s.keys[static_cast<size_t>(h)], nullptr, scores.data(), n,
         GemmOut::kStore, nullptr);
    for (int64_t r = 0; r < rows; ++r) vision::softmax_scaled(scores.data() + r * n, n, scale);
    gemm(scores.data(), n, rows, s.values[static_cast<size_t>(h)], nullptr, o + q0 * width + h * hd, width,
         GemmOut::kStore, nullptr);
  });
}

Status MoonVit::residual_add(const Affine& layer, const float* in, int64_t rows, float* x, Scratch& s) const {
  const int64_t d = layer.out();
  if (comm_ == nullptr) {
    gemm(in, layer.in(), rows, layer.weight, layer.bias.data(), x, d, GemmOut::kAdd, pool_.get());
    return Status::ok_status();
  }
  gemm(in, layer.in(), rows, layer.weight, nullptr, s.y.data(), d, GemmOut::kStore, pool_.get());
  K2_RETURN_IF_ERROR(comm_->all_reduce_sum(std::span<float>(s.y.data(), static_cast<size_t>(rows * d))));
  for_rows(*pool_, rows, [&](int64_t first, int64_t count) {
    for (int64_t r = first; r < first + count; ++r) {
      for (int64_t i = 0; i < d; ++i) x[r * d + i] += s.y[static_cast<size_t>(r * d + i)] + layer.bias[static_cast<size_t>(i)];
    }
  });
  return Status::ok_status();
}

// sd2_tpool: vt_out viewed [T, h/kh, kh, w/kw, kw, D] → mean over T → [h/kh, w/kw, kh, kw, D].
// Token (bi, bj) is row-major over the blocks; inside it the sub-patches run (dy, dx).
void MoonVit::merge(const MediaGrid& grid, const float* vt_out, float* merged) const {
  const int64_t d = config_.hidden_size, kh = config_.merge_height, kw = config_.merge_width;
  const int64_t hw = grid.h * grid.w, blocks_w = grid.w / kw;
  const float frames = static_cast<float>(grid.t);
  for (int64_t bi = 0; bi < grid.h / kh; ++bi) {
    for (int64_t bj = 0; bj < blocks_w; ++bj) {
      for (int64_t dy = 0; dy < kh; ++dy) {
        for (int64_t dx = 0; dx < kw; ++dx) {
          float* out = merged + (((bi * blocks_w + bj) * kh + dy) * kw + dx) * d;
          const int64_t patch = (bi * kh + dy) * grid.w + bj * kw + dx;
          std::fill(out, out + d, 0.0f);
          for (int64_t f = 0; f < grid.t; ++f) ref::axpy(1.0f, vt_out + (f * hw + patch) * d, d, out);
          for (int64_t i = 0; i < d; ++i) out[i] /= frames;
        }
      }
    }
  }
}

// Patch merger: y = LN(merged; pre_norm) per D-vector, seen as [tokens, kh·kw·D];
// act = gelu_erf(y · W0ᵀ + b0); out = act · W2ᵀ + b2 [tokens, text_hidden].
void MoonVit::project(const float* merged, int64_t tokens, float* out, VisionTrace* trace) const {
  const int64_t width = config_.projector_width();
  std::vector<float> y(static_cast<size_t>(tokens * width)), act(static_cast<size_t>(tokens * width));
  layer_norm(pre_norm_, merged, tokens * config_.merge_tokens(), static_cast<float>(config_.projector_ln_eps),
             y.data());
  gemm(y.data(), width, tokens, proj0_.weight, proj0_.bias.data(), act.data(), width, GemmOut::kStore, pool_.get());
  for_rows(*pool_, tokens, [&](int64_t first, int64_t count) {
    ref::gelu_erf(act.data() + first * width, count * width, act.data() + first * width);
  });
  if (trace != nullptr) trace->proj_act = act;
  gemm(act.data(), width, tokens, proj2_.weight, proj2_.bias.data(), out, config_.text_hidden_size, GemmOut::kStore,
       pool_.get());
}

}  // namespace k2
