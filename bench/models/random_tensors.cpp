#include "bench/models/random_tensors.h"

#include <xxhash.h>

#include <algorithm>
#include <cmath>
#include <cstring>

namespace k2::bench {
namespace {

constexpr uint64_t kGamma = 0x9E3779B97F4A7C15ull;  // splitmix64's increment
constexpr uint64_t kValueSalt = 0x76616c7565730001ull;
constexpr uint64_t kScaleSalt = 0x7363616c65730002ull;
// normal(): four 16-bit uniforms summed (Irwin-Hall), centred; the variance of one is
// 65536^2 / 12, so the sum scaled by sqrt(3) / 65536 has unit variance.
constexpr float kNormalScale = 1.7320508075688772f / 65536.0f;
constexpr double kNormalMax = 2.0 * 65535.0 * 1.7320508075688772 / 65536.0;  // |normal()| bound
constexpr double kE4m3Max = 448.0;
constexpr double kTriangularStd = 3.2403703492039302;  // sqrt(2 * (8^2 - 1) / 12): q = a + b - 7, a, b in 0..7

inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
inline uint64_t rnd(uint64_t key, uint64_t i) { return mix64(key + i * kGamma); }
inline double unit(uint64_t r) { return static_cast<double>(r >> 40) * 0x1p-24; }  // [0, 1)

inline float normal(uint64_t r) {
  const int32_t s = static_cast<int32_t>((r & 0xFFFF) + ((r >> 16) & 0xFFFF) + ((r >> 32) & 0xFFFF) + (r >> 48)) -
                    2 * 65535;
  return static_cast<float>(s) * kNormalScale;
}

uint64_t key_of(uint64_t seed, const std::string& key, uint64_t salt) {
  return XXH3_64bits_withSeed(key.data(), key.size(), seed ^ salt);
}

// One FP8 block's scale_inv: large enough that |w| <= kNormalMax * std never saturates,
// varied by up to 1.5x between blocks so a loader that mixes up blocks gets it wrong.
float fp8_block_scale(uint64_t scale_key, uint64_t block, double std_dev) {
  return static_cast<float>(std_dev * kNormalMax / kE4m3Max * (1.0 + 0.5 * unit(rnd(scale_key, block))));
}

// One INT4 group's scale (stored as BF16) so that q * scale has about std_dev.
uint16_t int4_group_scale(uint64_t scale_key, uint64_t group, double std_dev) {
  return f32_to_bf16(static_cast<float>(std_dev / kTriangularStd * (0.75 + 0.5 * unit(rnd(scale_key, group)))));
}

template <class T>
inline void put(uint8_t* out, uint64_t index, T value) {
  std::memcpy(out + index * sizeof(T), &value, sizeof(T));
}

void fill_fp8_weight(const TensorSpec& s, uint64_t seed, uint64_t first, uint64_t n, uint8_t* out) {
  const uint64_t wkey = key_of(seed, s.key, kValueSalt), skey = key_of(seed, s.key, kScaleSalt);
  const uint64_t cols = static_cast<uint64_t>(s.cols);
  const uint64_t blocks_in = (cols + kFp8Block - 1) / kFp8Block;
  const float sd = static_cast<float>(s.std_dev);
  uint64_t e = first;
  const uint64_t end = first + n;
  while (e < end) {
    const uint64_t row = e / cols;
    const uint64_t bi = (e % cols) / kFp8Block;
    const uint64_t block_end = std::min({end, row * cols + (bi + 1) * kFp8Block, (row + 1) * cols});
    const float inv = 1.0f / fp8_block_scale(skey, (row / kFp8Block) * blocks_in + bi, s.std_dev);
    for (; e < block_end; ++e) out[e - first] = f32_to_e4m3(normal(rnd(wkey, e)) * sd * inv);
  }
}

void fill_int4_packed(const TensorSpec& s, uint64_t seed, uint64_t first, uint64_t n, uint8_t* out) {
  const uint64_t wkey = key_of(seed, s.key, kValueSalt);
  const uint64_t words = static_cast<uint64_t>(s.shape[1]);
  for (uint64_t w = first; w < first + n; ++w) {
    const uint64_t r = rnd(wkey, w);
    const uint64_t col0 = (w % words) * 8;
    uint32_t word = 0;
    for (uint32_t k = 0; k < 8; ++k) {
      const uint32_t bits = static_cast<uint32_t>(r >> (6 * k)) & 63u;
      const uint32_t q8 = (bits & 7u) + (bits >> 3) + 1u;  // q + 8 with q = a + b - 7 in [-7, 7]
      word |= (col0 + k < static_cast<uint64_t>(s.cols) ? q8 : 8u) << (4 * k);
    }
    put(out, w - first, word);
  }
}

void fill_scales(const TensorSpec& s, uint64_t seed, uint64_t first, uint64_t n, uint8_t* out) {
  const uint64_t skey = key_of(seed, s.key, kScaleSalt);
  for (uint64_t e = first; e < first + n; ++e) {
    if (s.fill == Fill::kFp8ScaleInv) {
      put(out, e - first, fp8_block_scale(skey, e, s.std_dev));
    } else {
      put(out, e - first, int4_group_scale(skey, e, s.std_dev));
    }
  }
}

// Builds the tensor list; `weights` decides how each Linear is stored.
class Planner {
 public:
  Planner(const ModelPreset& p, RandomWeights w) : p_(p), w_(w) {}

  void plain(const std::string& name, std::vector<int64_t> shape, Fill fill, double std_dev) {
    TensorSpec t;
    t.name = name;
    t.dtype = fill == Fill::kBias ? DType::kF32 : DType::kBF16;
    t.shape = std::move(shape);
    t.fill = fill;
    t.std_dev = std_dev;
    t.key = name;
    out_.push_back(std::move(t));
  }

  // A Linear [rows, cols]; `expert` marks a routed expert (the only INT4 ones); the router
  // passes quantizable = false (it stays BF16 in every real checkpoint).
  void linear(const std::string& module, int64_t rows, int64_t cols, bool expert, bool quantizable = true) {
    const double sd = 1.0 / std::sqrt(static_cast<double>(cols));
    auto add = [&](const std::string& suffix, DType dtype, std::vector<int64_t> shape, Fill fill) {
      TensorSpec t;
      t.name = module + suffix;
      t.dtype = dtype;
      t.shape = std::move(shape);
      t.fill = fill;
      t.std_dev = sd;
      t.rows = rows;
      t.cols = cols;
      t.key = module;
      out_.push_back(std::move(t));
    };
    if (quantizable && w_ == RandomWeights::kFp8) {
      add(".weight", DType::kF8E4M3, {rows, cols}, Fill::kFp8Weight);
      add(".weight_scale_inv", DType::kF32, {ceil_div(rows, kFp8Block), ceil_div(cols, kFp8Block)},
          Fill::kFp8ScaleInv);
    } else if (quantizable && expert && w_ == RandomWeights::kInt4) {
      add(".weight_packed", DType::kI32, {rows, ceil_div(cols, 8)}, Fill::kInt4Packed);
      add(".weight_scale", DType::kBF16, {rows, ceil_div(cols, kInt4Group)}, Fill::kInt4Scale);
      add(".weight_shape", DType::kI32, {2}, Fill::kInt4Shape);
    } else {
      add(".weight", DType::kBF16, {rows, cols}, Fill::kNormal);
    }
  }

  void mlp(const std::string& prefix, int64_t width, bool expert) {
    linear(prefix + "gate_proj", width, p_.hidden_size, expert);
    linear(prefix + "up_proj", width, p_.hidden_size, expert);
    linear(prefix + "down_proj", p_.hidden_size, width, expert);
  }

  void layer(int64_t l) {
    const std::string pre = "model.layers." + std::to_string(l) + ".";
    const int64_t d = p_.hidden_size, h = p_.num_attention_heads;
    plain(pre + "input_layernorm.weight", {d}, Fill::kOnes, 0);
    linear(pre + "self_attn.q_a_proj", p_.q_lora_rank, d, false);
    plain(pre + "self_attn.q_a_layernorm.weight", {p_.q_lora_rank}, Fill::kOnes, 0);
    linear(pre + "self_attn.q_b_proj", h * (p_.qk_nope_head_dim + p_.qk_rope_head_dim), p_.q_lora_rank, false);
    linear(pre + "self_attn.kv_a_proj_with_mqa", p_.kv_lora_rank + p_.qk_rope_head_dim, d, false);
    plain(pre + "self_attn.kv_a_layernorm.weight", {p_.kv_lora_rank}, Fill::kOnes, 0);
    linear(pre + "self_attn.kv_b_proj", h * (p_.qk_nope_head_dim + p_.v_head_dim), p_.kv_lora_rank, false);
    linear(pre + "self_attn.o_proj", d, h * p_.v_head_dim, false);
    plain(pre + "post_attention_layernorm.weight", {d}, Fill::kOnes, 0);
    if (l < p_.first_k_dense_replace) {
      mlp(pre + "mlp.", p_.intermediate_size, false);
      return;
    }
    linear(pre + "mlp.gate", p_.n_routed_experts, d, false, /*quantizable=*/false);
    plain(pre + "mlp.gate.e_score_correction_bias", {p_.n_routed_experts}, Fill::kBias, 0.01);
    for (int64_t e = 0; e < p_.n_routed_experts; ++e) {
      mlp(pre + "mlp.experts." + std::to_string(e) + ".", p_.moe_intermediate_size, true);
    }
    if (p_.n_shared_experts > 0) {
      mlp(pre + "mlp.shared_experts.", p_.moe_intermediate_size * p_.n_shared_experts, false);
    }
  }

  std::vector<TensorSpec> run() {
    plain("model.embed_tokens.weight", {p_.vocab_size, p_.hidden_size}, Fill::kNormal, 1.0);
    for (int64_t l = 0; l < p_.num_hidden_layers; ++l) layer(l);
    plain("model.norm.weight", {p_.hidden_size}, Fill::kOnes, 0);
    linear("lm_head", p_.vocab_size, p_.hidden_size, false, /*quantizable=*/false);
    return std::move(out_);
  }

 private:
  static int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

  const ModelPreset& p_;
  RandomWeights w_;
  std::vector<TensorSpec> out_;
};

}  // namespace

uint64_t TensorSpec::numel() const {
  uint64_t n = 1;
  for (int64_t d : shape) n *= static_cast<uint64_t>(d);
  return n;
}

uint16_t f32_to_bf16(float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  if (std::isnan(v)) return static_cast<uint16_t>((bits >> 16) | 0x40);
  bits += 0x7FFFu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

uint8_t f32_to_e4m3(float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  const uint8_t sign = static_cast<uint8_t>((bits >> 24) & 0x80u);
  bits &= 0x7FFFFFFFu;
  float a;
  std::memcpy(&a, &bits, sizeof a);
  if (std::isnan(a)) return sign | 0x7F;
  if (a >= 464.0f) return sign | 0x7E;  // the midpoint of 448 and (the missing) 480: saturate
  if (a < 0x1p-6f) {                    // subnormal: steps of 2^-9; 8 steps is the smallest normal
    return sign | static_cast<uint8_t>(std::lrint(a * 512.0f));
  }
  const uint32_t r = bits + 0x7FFFFu + ((bits >> 20) & 1u);  // round the mantissa to 3 bits, ties to even
  const int e = static_cast<int>(r >> 23) - 127;
  const uint32_t m = (r >> 20) & 7u;
  if (e > 8 || (e == 8 && m == 7)) return sign | 0x7E;
  return sign | static_cast<uint8_t>(((e + 7) << 3) | static_cast<int>(m));
}

std::vector<TensorSpec> plan_tensors(const ModelPreset& preset, RandomWeights weights) {
  return Planner(preset, weights).run();
}

void fill_tensor(const TensorSpec& s, uint64_t seed, uint64_t first, std::span<uint8_t> out) {
  const size_t esize = dtype_size(s.dtype);
  K2_CHECK(out.size() % esize == 0, "fill_tensor: a partial element");
  const uint64_t n = out.size() / esize;
  K2_CHECK(first + n <= s.numel(), "fill_tensor: past the end of " + s.name);
  uint8_t* o = out.data();
  switch (s.fill) {
    case Fill::kNormal: {
      const uint64_t key = key_of(seed, s.key, kValueSalt);
      const float sd = static_cast<float>(s.std_dev);
      for (uint64_t e = 0; e < n; ++e) put(o, e, f32_to_bf16(normal(rnd(key, first + e)) * sd));
      return;
    }
    case Fill::kOnes:
      for (uint64_t e = 0; e < n; ++e) put(o, e, f32_to_bf16(1.0f));
      return;
    case Fill::kBias: {
      const uint64_t key = key_of(seed, s.key, kValueSalt);
      for (uint64_t e = 0; e < n; ++e) put(o, e, static_cast<float>(normal(rnd(key, first + e)) * s.std_dev));
      return;
    }
    case Fill::kFp8Weight:
      fill_fp8_weight(s, seed, first, n, o);
      return;
    case Fill::kFp8ScaleInv:
    case Fill::kInt4Scale:
      fill_scales(s, seed, first, n, o);
      return;
    case Fill::kInt4Packed:
      fill_int4_packed(s, seed, first, n, o);
      return;
    case Fill::kInt4Shape: {
      const int32_t dims[2] = {static_cast<int32_t>(s.rows), static_cast<int32_t>(s.cols)};
      for (uint64_t e = 0; e < n; ++e) put(o, e, dims[first + e]);
      return;
    }
  }
}

}  // namespace k2::bench
