// The tensors of a random checkpoint: which ones a preset has (names, dtypes, shapes as the
// Kimi-K2 / DeepSeek-V3 checkpoints name them), and their bytes, generated on demand.
//
// Every byte is a pure function of (seed, tensor, position): a counter-based generator
// (splitmix64's mix of seed + index * golden gamma) gives any element range without
// generating what comes before it, so tensors are produced chunk by chunk, in any order and
// by any number of threads, and the same seed always gives the same files.
//
// Values: Linear weights ~ N(0, 1/in) (an Irwin-Hall approximation of the normal: bounded
// at 3.46 sigma), embeddings ~ N(0, 1), norms 1, router correction bias ~ N(0, 0.01^2).
// FP8 weights are e4m3(w / s) with one F32 scale_inv s per 128x128 block, chosen so nothing
// saturates; INT4 weights are triangular integers in [-7, 7] with one BF16 scale per group
// of 32, so the dequantised matrix has the same 1/sqrt(in) scale.
//
// Plain value types and pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "bench/models/model_preset.h"
#include "workers/loader/safetensors.h"

namespace k2::bench {

enum class Fill {
  kNormal,       // BF16, normal * std_dev
  kOnes,         // BF16 1.0 (RMSNorm weights)
  kBias,         // F32, normal * std_dev
  kFp8Weight,    // F8_E4M3 [rows, cols]
  kFp8ScaleInv,  // F32 [ceil(rows/128), ceil(cols/128)]
  kInt4Packed,   // I32 [rows, ceil(cols/8)], 8 nibbles (q + 8) per word, column 8j+k in bits 4k..4k+3
  kInt4Scale,    // BF16 [rows, ceil(cols/32)]
  kInt4Shape,    // I32 [2] = {rows, cols}
};

struct TensorSpec {
  std::string name;
  DType dtype = DType::kBF16;
  std::vector<int64_t> shape;
  Fill fill = Fill::kNormal;
  double std_dev = 0;  // of the (dequantised) values
  // The logical [out, in] matrix of a Linear; quantised companions share it (and `key`).
  int64_t rows = 0, cols = 0;
  // Seeds the values: the module name for a Linear's weight and its scales, so a weight and
  // its scales agree; the tensor name otherwise.
  std::string key;

  uint64_t numel() const;
  uint64_t bytes() const { return numel() * dtype_size(dtype); }
};

// Every tensor of the preset in checkpoint order (embedding, layer by layer, final norm,
// lm_head), in the layout `weights` asks for.
std::vector<TensorSpec> plan_tensors(const ModelPreset& preset, RandomWeights weights);

// Writes elements [first, first + out.size() / element size) of `spec` into `out`
// (whose size must be a multiple of the element size).
void fill_tensor(const TensorSpec& spec, uint64_t seed, uint64_t first, std::span<uint8_t> out);

// Conversions used for the stored values (round to nearest even; e4m3 saturates at 448).
uint16_t f32_to_bf16(float v);
uint8_t f32_to_e4m3(float v);

}  // namespace k2::bench
