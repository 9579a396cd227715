#include "workers/vision/moonvit.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "kernels/ref/dense.h"
#include "kernels/ref/vision.h"

namespace k2 {
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

}  // namespace

void MoonVit::Affine::forward(const float* x, int64_t rows, float* y) const {
  ref::linear(x, in(), weight.data.data(), in(), rows, in(), out(), y, out());
  for (int64_t r = 0; r < rows; ++r) ref::axpy(1.0f, bias.data.data(), out(), y + r * out());
}

void MoonVit::LayerNorm::forward(const float* x, int64_t rows, float eps, float* y) const {
  const int64_t dim = static_cast<int64_t>(weight.data.size());
  ref::layer_norm(x, dim, weight.data.data(), bias.data.data(), rows, dim, eps, y, dim);
}

Result<MoonVit::Affine> MoonVit::load_affine(WeightLoader& w, const std::string& module, int64_t out, int64_t in) {
  Affine a;
  K2_ASSIGN_OR_RETURN(a.weight, w.linear(module, out, in));
  K2_ASSIGN_OR_RETURN(a.bias, w.tensor(module + ".bias", {out}));
  return a;
}

Result<MoonVit::LayerNorm> MoonVit::load_norm(WeightLoader& w, const std::string& module, int64_t dim) {
  LayerNorm n;
  K2_ASSIGN_OR_RETURN(n.weight, w.tensor(module + ".weight", {dim}));
  K2_ASSIGN_OR_RETURN(n.bias, w.tensor(module + ".bias", {dim}));
  return n;
}

Result<std::unique_ptr<MoonVit>> MoonVit::load(const Checkpoint& checkpoint, const VisionConfig& config,
                                               ProgressStyle progress_style) {
  if (!checkpoint.tensor_prefix().empty()) {
    return invalid_argument("vision weights need a checkpoint opened without a tensor prefix, not '" +
                            checkpoint.tensor_prefix() + "'");
  }
  ProgressReporter progress("loading vision tower " + checkpoint.dir().string(), vision_bytes(checkpoint),
                            progress_style);
  WeightLoader w(checkpoint, &progress);
  K2_ASSIGN_OR_RETURN(std::unique_ptr<MoonVit> m, build(w, config));
  progress.finish();
  return m;
}

Result<std::unique_ptr<MoonVit>> MoonVit::load_dummy(const VisionConfig& config, uint64_t seed) {
  WeightLoader w(seed);
  return build(w, config);
}

Result<std::unique_ptr<MoonVit>> MoonVit::build(WeightLoader& w, const VisionConfig& config) {
  const VisionConfig& c = config;
  const int64_t d = c.hidden_size, p = c.patch_size;
  std::unique_ptr<MoonVit> m(new MoonVit());
  m->config_ = c;
  // The Conv2d(3, D, kernel = stride = patch) is a Linear over the flattened (c, y, x) patch.
  const std::string patch = "vision_tower.patch_embed.";
  K2_ASSIGN_OR_RETURN(m->patch_embed_.weight, w.tensor(patch + "proj.weight", {d, 3, p, p}));
  m->patch_embed_.weight.shape = {d, c.patch_values()};
  K2_ASSIGN_OR_RETURN(m->patch_embed_.bias, w.tensor(patch + "proj.bias", {d}));
  K2_ASSIGN_OR_RETURN(m->pos_emb_, w.tensor(patch + "pos_emb.weight", {c.pos_emb_height, c.pos_emb_width, d}));
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const std::string prefix = "vision_tower.encoder.blocks." + std::to_string(l) + ".";
    Block b;
    K2_ASSIGN_OR_RETURN(b.norm0, load_norm(w, prefix + "norm0", d));
    K2_ASSIGN_OR_RETURN(b.wqkv, load_affine(w, prefix + "wqkv", 3 * d, d));
    K2_ASSIGN_OR_RETURN(b.wo, load_affine(w, prefix + "wo", d, d));
    K2_ASSIGN_OR_RETURN(b.norm1, load_norm(w, prefix + "norm1", d));
    K2_ASSIGN_OR_RETURN(b.fc0, load_affine(w, prefix + "mlp.fc0", c.intermediate_size, d));
    K2_ASSIGN_OR_RETURN(b.fc1, load_affine(w, prefix + "mlp.fc1", d, c.intermediate_size));
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

  // L pre-norm blocks, attention over all N patches of this item.
  for (size_t l = 0; l < blocks_.size(); ++l) {
    run_block(blocks_[l], grid, x.data());
    if (trace != nullptr && l == 0) trace->block0 = x;
  }

  // vt_out [N, D] = LayerNorm(x; final_layernorm)
  final_norm_.forward(x.data(), n, kTowerLnEps, x.data());
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

// x[N, D] = pixel_values[N, 3·P·P] · W_patchᵀ + b + pos[N, D].
void MoonVit::embed_patches(const MediaGrid& grid, const float* pixel_values, float* x, VisionTrace* trace) const {
  const int64_t n = grid.patches(), d = config_.hidden_size, hw = grid.h * grid.w;
  patch_embed_.forward(pixel_values, n, x);
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

// x += Attn(LN0(x)); x += MLP(LN1(x)), all [N, D].
void MoonVit::run_block(const Block& block, const MediaGrid& grid, float* x) const {
  const int64_t n = grid.patches(), d = config_.hidden_size, hd = config_.head_dim(), heads = config_.num_heads;
  const int64_t inter = config_.intermediate_size;
  std::vector<float> y(static_cast<size_t>(n * d));              // [N, D]
  std::vector<float> qkv(static_cast<size_t>(n * 3 * d));        // [N, 3, heads, hd]
  std::vector<float> o(static_cast<size_t>(n * d));              // [N, heads, hd]
  std::vector<float> h(static_cast<size_t>(n * inter));          // [N, I]

  // y = LN0(x); qkv = y · Wqkvᵀ + b
  block.norm0.forward(x, n, kTowerLnEps, y.data());
  block.wqkv.forward(y.data(), n, qkv.data());

  // q, k turned by each patch's (row, column) within its frame: every frame of a chunk
  // shares the same 2D positions.
  std::vector<int64_t> rows(static_cast<size_t>(n)), cols(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    rows[static_cast<size_t>(i)] = (i % (grid.h * grid.w)) / grid.w;
    cols[static_cast<size_t>(i)] = i % grid.w;
  }
  for (int64_t part = 0; part < 2; ++part) {
    ref::rope_2d(qkv.data() + part * d, n, 3 * d, heads, hd, hd, rows.data(), cols.data(), rope_inv_freq_.data());
  }

  // o = softmax(q·kᵀ / √hd) · v per head, unmasked over the N patches of this item.
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(hd)));
  ref::attention_full(qkv.data(), 3 * d, qkv.data() + d, 3 * d, qkv.data() + 2 * d, 3 * d, n, heads, hd, scale,
                      o.data(), d);

  // x += o · Woᵀ + bo
  block.wo.forward(o.data(), n, y.data());
  ref::axpy(1.0f, y.data(), n * d, x);

  // x += fc1(gelu_tanh(fc0(LN1(x))))
  block.norm1.forward(x, n, kTowerLnEps, y.data());
  block.fc0.forward(y.data(), n, h.data());
  ref::gelu_tanh(h.data(), n * inter, h.data());
  block.fc1.forward(h.data(), n, y.data());
  ref::axpy(1.0f, y.data(), n * d, x);
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
  pre_norm_.forward(merged, tokens * config_.merge_tokens(), static_cast<float>(config_.projector_ln_eps), y.data());
  proj0_.forward(y.data(), tokens, act.data());
  ref::gelu_erf(act.data(), tokens * width, act.data());
  if (trace != nullptr) trace->proj_act = act;
  proj2_.forward(act.data(), tokens, out);
}

}  // namespace k2
