#include "workers/models/weight_loader.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <utility>
#include <random>
#include <vector>

#include "kernels/cpu/packed_fp8.h"
#include "workers/loader/model_config.h"

namespace k2 {
namespace {

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

Status check_shape(const std::string& name, const TensorF32& t, const std::vector<int64_t>& want) {
  if (t.shape != want) {
    return invalid_argument("tensor " + name + " has shape " + shape_string(t.shape) + ", the config implies " +
                            shape_string(want));
  }
  return Status::ok_status();
}

}  // namespace

// Reports a consumed tensor's bytes and drops its mapped pages from this process: they stay
// in the page cache, but the worker's resident set then holds each weight once (in its
// run-time layout), not twice (also as mapped checkpoint pages) by the end of the load.
void WeightLoader::account(const std::string& name) {
  if (checkpoint_ == nullptr || !checkpoint_->has(name)) return;
  Result<TensorView> view = checkpoint_->view(name);
  if (!view.ok()) return;
  if (progress_ != nullptr) progress_->advance(view->bytes);
  const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(view->data) + page - 1) & ~(page - 1);
  const uintptr_t end = (reinterpret_cast<uintptr_t>(view->data) + view->bytes) & ~(page - 1);
  if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

TensorF32 WeightLoader::dummy(const std::string& name, std::vector<int64_t> shape) const {
  TensorF32 t;
  t.shape = std::move(shape);
  t.data.resize(static_cast<size_t>(t.numel()));
  const bool is_norm = name.ends_with("norm.weight");
  const bool is_bias = name.ends_with("e_score_correction_bias");
  if (is_norm || is_bias) {
    std::fill(t.data.begin(), t.data.end(), is_norm ? 1.0f : 0.0f);
    return t;
  }
  // Uniform in +-1/sqrt(fan_in) keeps activations at unit scale through the layers.
  const float bound = 1.0f / std::sqrt(static_cast<float>(t.shape.back()));
  std::mt19937_64 rng(seed_ ^ std::hash<std::string>{}(name));
  std::uniform_real_distribution<float> dist(-bound, bound);
  for (float& v : t.data) v = dist(rng);
  return t;
}

Result<TensorF32> WeightLoader::linear(const std::string& module, int64_t out, int64_t in) {
  if (checkpoint_ == nullptr) return dummy(module + ".weight", {out, in});
  K2_ASSIGN_OR_RETURN(TensorF32 t, checkpoint_->linear_f32(module));
  K2_RETURN_IF_ERROR(check_shape(module + ".weight", t, {out, in}));
  for (const char* suffix : {".weight", ".weight_scale_inv", ".weight_packed", ".weight_scale", ".weight_shape"}) {
    account(module + suffix);
  }
  return t;
}

// Rows of kStreamRows at a time: ~1 MiB of float32 for a 1024-wide weight.
constexpr int64_t kStreamRows = 256;

Result<std::optional<Linear>> WeightLoader::streamed(const std::string& module, int64_t out, int64_t in,
                                                     WeightLayout layout) {
  const std::string name = module + ".weight";
  if (checkpoint_ == nullptr || (layout != WeightLayout::kBf16 && layout != WeightLayout::kInt8) ||
      !checkpoint_->has(name) || checkpoint_->has(module + ".weight_scale_inv")) {
    return std::optional<Linear>();
  }
  K2_ASSIGN_OR_RETURN(TensorView v, checkpoint_->view(name));
  if (v.dtype != DType::kBF16 && v.dtype != DType::kF16 && v.dtype != DType::kF32) return std::optional<Linear>();
  // Only bf16 values pack to bf16 unchanged; others take Linear::from, which keeps them in
  // float32 unless they happen to be exact.
  if (layout == WeightLayout::kBf16 && v.dtype != DType::kBF16) return std::optional<Linear>();
  if (v.shape != std::vector<int64_t>{out, in}) {
    return invalid_argument("tensor " + name + " has shape " + shape_string(v.shape) + ", the config implies " +
                            shape_string({out, in}));
  }
  const size_t elem = dtype_size(v.dtype);
  const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const cpu::RowSource source = [&](int64_t row0, int64_t rows, float* dst) {
    const uint8_t* src = v.data + static_cast<size_t>(row0 * in) * elem;
    const int64_t n = rows * in;
    for (int64_t i = 0; i < n; ++i) {
      const uint8_t* e = src + static_cast<size_t>(i) * elem;
      uint16_t h;
      switch (v.dtype) {
        case DType::kBF16: std::memcpy(&h, e, 2); dst[i] = bf16_to_f32(h); break;
        case DType::kF16: std::memcpy(&h, e, 2); dst[i] = f16_to_f32(h); break;
        default: std::memcpy(dst + i, e, 4); break;
      }
    }
    // Drop the whole pages this chunk consumed (the page cache keeps them).
    const uintptr_t begin = (reinterpret_cast<uintptr_t>(src) + page - 1) & ~(page - 1);
    const uintptr_t end = (reinterpret_cast<uintptr_t>(src) + static_cast<size_t>(n) * elem) & ~(page - 1);
    if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
  };
  Linear l = layout == WeightLayout::kBf16 ? Linear::from_packed(cpu::pack_bf16_streamed(out, in, kStreamRows, source))
                                           : Linear::from_packed(cpu::pack_int8_streamed(out, in, kStreamRows, source));
  account(name);
  return std::optional<Linear>(std::move(l));
}

Result<std::optional<Linear>> WeightLoader::fp8_as_stored(const std::string& module, int64_t out, int64_t in,
                                                          int64_t row0, int64_t rows, int64_t col0, int64_t cols) {
  const std::string name = module + ".weight", scale_name = module + ".weight_scale_inv";
  if (checkpoint_ == nullptr || !checkpoint_->has(name) || !checkpoint_->has(scale_name)) return std::optional<Linear>();
  if (!fp8_block_) {
    // Same source as the checkpoint's own dequantisation (Checkpoint::open with the config).
    Result<ModelConfig> config = ModelConfig::from_dir(checkpoint_->dir());
    if (!config.ok()) return std::optional<Linear>();
    fp8_block_ = FpBlock{config->fp8_block_out, config->fp8_block_in};
  }
  const FpBlock block = *fp8_block_;
  K2_ASSIGN_OR_RETURN(TensorView q, checkpoint_->view(name));
  if (q.dtype != DType::kF8E4M3 || q.shape != std::vector<int64_t>{out, in} ||
      q.bytes < static_cast<uint64_t>(out * in) || block.out <= 0 || block.in <= 0 || row0 % block.out != 0 ||
      col0 % block.in != 0) {
    return std::optional<Linear>();  // the float path reports what is wrong, or takes the shard
  }
  K2_ASSIGN_OR_RETURN(TensorF32 scale, checkpoint_->tensor_f32(scale_name));
  const int64_t s_cols = (in + block.in - 1) / block.in;
  if (scale.shape != std::vector<int64_t>{(out + block.out - 1) / block.out, s_cols}) return std::optional<Linear>();
  const float* s0 = scale.data.data() + (row0 / block.out) * s_cols + col0 / block.in;
  if (!cpu::fp8_packable(s0, s_cols, rows, cols, block.out, block.in)) return std::optional<Linear>();
  Linear l = Linear::from_packed(cpu::pack_fp8(q.data + row0 * in + col0, in, s0, s_cols, rows, cols, block.out,
                                               block.in));
  account(name);
  account(scale_name);
  return std::optional<Linear>(std::move(l));
}

Result<Linear> WeightLoader::linear(const std::string& module, int64_t out, int64_t in, WeightLayout layout) {
  if (layout == WeightLayout::kBf16) {
    K2_ASSIGN_OR_RETURN(std::optional<Linear> fp8, fp8_as_stored(module, out, in, 0, out, 0, in));
    if (fp8) return std::move(*fp8);
  }
  if (layout == WeightLayout::kInt4 && checkpoint_ != nullptr && checkpoint_->has(module + ".weight_packed")) {
    return int4_as_stored(module, out, in);
  }
  K2_ASSIGN_OR_RETURN(std::optional<Linear> packed, streamed(module, out, in, layout));
  if (packed) return std::move(*packed);
  K2_ASSIGN_OR_RETURN(TensorF32 t, linear(module, out, in));
  if (layout == WeightLayout::kInt4) return Linear::int4_from(std::move(t), int4_group_);
  return Linear::from(std::move(t), layout);
}

// The checkpoint's own INT4 values and scales, repacked without a float round trip (a
// re-quantisation from the dequantised floats would not reproduce them). A shard takes rows
// [row0, row0 + rows) and columns [col0, col0 + cols) (-1: all); columns only in whole groups.
Result<Linear> WeightLoader::int4_as_stored(const std::string& module, int64_t out, int64_t in, int64_t row0,
                                            int64_t rows, int64_t col0, int64_t cols) {
  if (rows < 0) rows = out;
  if (cols < 0) cols = in;
  K2_ASSIGN_OR_RETURN(TensorView packed, checkpoint_->view(module + ".weight_packed"));
  K2_ASSIGN_OR_RETURN(TensorF32 scales, checkpoint_->tensor_f32(module + ".weight_scale"));
  const std::string where = checkpoint_->file_of(module + ".weight_packed").string() + ": " + module;
  if (packed.dtype != DType::kI32 || packed.shape != std::vector<int64_t>{out, in / 8} || in % 8 != 0) {
    return corrupt(where + ".weight_packed is not I32 [" + std::to_string(out) + ", " + std::to_string(in / 8) + "]");
  }
  if (scales.shape.size() != 2 || scales.shape[0] != out || scales.shape[1] <= 0 || in % scales.shape[1] != 0) {
    return corrupt(where + ".weight_scale does not divide the " + std::to_string(in) + " inputs into groups");
  }
  const int64_t group = in / scales.shape[1];
  if (col0 % group != 0 || cols % group != 0) {
    return invalid_argument(where + ": a shard of columns [" + std::to_string(col0) + ", " +
                            std::to_string(col0 + cols) + ") splits its INT4 groups of " + std::to_string(group));
  }
  const int32_t* all = reinterpret_cast<const int32_t*>(packed.data);
  std::vector<int32_t> q(static_cast<size_t>(rows * (cols / 8)));
  std::vector<float> s(static_cast<size_t>(rows * (cols / group)));
  for (int64_t r = 0; r < rows; ++r) {
    std::copy_n(all + (row0 + r) * (in / 8) + col0 / 8, cols / 8, q.data() + r * (cols / 8));
    std::copy_n(scales.data.data() + (row0 + r) * (in / group) + col0 / group, cols / group,
                s.data() + r * (cols / group));
  }
  Result<Linear> l = Linear::int4_from_packed(q.data(), s.data(), rows, cols, group);
  for (const char* suffix : {".weight_packed", ".weight_scale", ".weight_shape"}) account(module + suffix);
  if (!l.ok()) return l.status().with_context(where);
  return l;
}

Result<Linear> WeightLoader::linear_rows(const std::string& module, int64_t out, int64_t in, int64_t first,
                                         int64_t count, WeightLayout layout) {
  return sliced(module, out, in, first, count, 0, in, layout);
}

Result<Linear> WeightLoader::linear_columns(const std::string& module, int64_t out, int64_t in, int64_t first,
                                            int64_t count, WeightLayout layout) {
  return sliced(module, out, in, 0, out, first, count, layout);
}

// The whole matrix is read (checkpoints store it whole) and only the shard's block is kept.
Result<Linear> WeightLoader::sliced(const std::string& module, int64_t out, int64_t in, int64_t row0, int64_t rows,
                                    int64_t col0, int64_t cols, WeightLayout layout) {
  if (row0 < 0 || rows <= 0 || row0 + rows > out || col0 < 0 || cols <= 0 || col0 + cols > in) {
    return invalid_argument(module + ": shard block outside the [" + std::to_string(out) + ", " + std::to_string(in) +
                            "] weight");
  }
  if (rows == out && cols == in) return linear(module, out, in, layout);
  if (layout == WeightLayout::kBf16) {
    K2_ASSIGN_OR_RETURN(std::optional<Linear> fp8, fp8_as_stored(module, out, in, row0, rows, col0, cols));
    if (fp8) return std::move(*fp8);
  }
  if (layout == WeightLayout::kInt4 && checkpoint_ != nullptr && checkpoint_->has(module + ".weight_packed")) {
    return int4_as_stored(module, out, in, row0, rows, col0, cols);
  }
  K2_ASSIGN_OR_RETURN(TensorF32 whole, linear(module, out, in));
  TensorF32 part;
  part.shape = {rows, cols};
  part.data.resize(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r) {
    std::copy_n(whole.data.data() + (row0 + r) * in + col0, cols, part.data.data() + r * cols);
  }
  if (layout == WeightLayout::kInt4) return Linear::int4_from(std::move(part), int4_group_);
  return Linear::from(std::move(part), layout);
}

Result<TensorF32> WeightLoader::tensor(const std::string& name, std::initializer_list<int64_t> shape) {
  if (checkpoint_ == nullptr) return dummy(name, std::vector<int64_t>(shape));
  K2_ASSIGN_OR_RETURN(TensorF32 t, checkpoint_->tensor_f32(name));
  K2_RETURN_IF_ERROR(check_shape(name, t, std::vector<int64_t>(shape)));
  account(name);
  return t;
}

}  // namespace k2
