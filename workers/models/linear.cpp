#include "workers/models/linear.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>

#include "kernels/cpu/gate_up.h"
#include "kernels/cpu/linear_f32.h"
#include "kernels/cpu/linear_mt.h"
#include "kernels/cpu/ops.h"
#include "kernels/ref/dense.h"

namespace k2 {

const char* weight_layout_name(WeightLayout f) {
  switch (f) {
    case WeightLayout::kF32: return "float32";
    case WeightLayout::kBf16: return "bfloat16";
    case WeightLayout::kInt8: return "int8";
    case WeightLayout::kInt4: return "int4";
    case WeightLayout::kFp8: return "fp8";
  }
  return "?";
}

Result<WeightLayouts> weight_layouts_for(std::string_view dtype, std::string_view quantization) {
  WeightLayouts l;
  if (dtype == "auto" || dtype == "bfloat16") {
    l.dense = WeightLayout::kBf16;
  } else if (dtype != "float32" && dtype != "float") {
    return invalid_argument("--dtype must be auto, bfloat16 or float32, got " + std::string(dtype));
  }
  l.experts = l.dense;
  if (quantization == "int8") {
    l.experts = WeightLayout::kInt8;
  } else if (quantization == "int4") {
    l.experts = WeightLayout::kInt4;
  } else if (!quantization.empty()) {
    return unimplemented("--quantization " + std::string(quantization) +
                         " is not implemented on the CPU path yet (int8 and int4 are)");
  }
  return l;
}

namespace {
thread_local cpu::ThreadPool* t_pool = nullptr;
}  // namespace

ParallelScope::ParallelScope(cpu::ThreadPool* pool) : previous_(t_pool) { t_pool = pool; }
ParallelScope::~ParallelScope() { t_pool = previous_; }

cpu::ThreadPool* parallel_pool() { return t_pool; }

namespace {

// True when every value survives the round trip to bf16 (a bf16 checkpoint's weights do;
// dequantised FP8-block or INT4 weights, q times a float scale, in general do not).
bool bf16_exact(const float* w, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float v = cpu::from_bf16(cpu::to_bf16(w[i]));
    if (!(v == w[i]) && !(std::isnan(v) && std::isnan(w[i]))) return false;
  }
  return true;
}

}  // namespace

Linear Linear::pack(const float* w, int64_t out, int64_t in, WeightLayout layout) {
  if (layout == WeightLayout::kBf16 && !bf16_exact(w, out * in)) layout = WeightLayout::kF32;
  Linear l;
  l.layout_ = layout;
  l.out_ = out;
  l.in_ = in;
  switch (layout) {
    case WeightLayout::kF32: l.f32_.assign(w, w + out * in); break;
    case WeightLayout::kBf16: l.bf16_ = cpu::pack_bf16(w, in, out, in); break;
    case WeightLayout::kInt8: l.int8_ = cpu::pack_int8(w, in, out, in); break;
    case WeightLayout::kInt4: K2_CHECK(false, "int4 weights are packed by int4_from"); break;
    case WeightLayout::kFp8: K2_CHECK(false, "fp8 weights are packed from a checkpoint (from_packed)"); break;
  }
  return l;
}

Linear Linear::from(TensorF32 w, WeightLayout layout) {
  const int64_t out = w.shape.at(0), in = w.shape.at(1);
  if (layout == WeightLayout::kF32 || (layout == WeightLayout::kBf16 && !bf16_exact(w.data.data(), out * in))) {
    Linear l;
    l.out_ = out;
    l.in_ = in;
    l.f32_ = std::move(w.data);
    return l;
  }
  return pack(w.data.data(), out, in, layout);
}

Linear Linear::from_packed(cpu::PackedBf16 w) {
  Linear l;
  l.layout_ = WeightLayout::kBf16;
  l.out_ = w.view().out;
  l.in_ = w.view().in;
  l.bf16_ = std::move(w);
  return l;
}

Linear Linear::from_packed(cpu::PackedInt8 w) {
  Linear l;
  l.layout_ = WeightLayout::kInt8;
  l.out_ = w.view().out;
  l.in_ = w.view().in;
  l.int8_ = std::move(w);
  return l;
}

Linear Linear::from_packed(cpu::PackedFp8 w) {
  Linear l;
  l.layout_ = WeightLayout::kFp8;
  l.out_ = w.view().out;
  l.in_ = w.view().in;
  l.fp8_ = std::move(w);
  return l;
}

Result<Linear> Linear::int4_from(TensorF32 w, int64_t group) {
  const int64_t out = w.shape.at(0), in = w.shape.at(1);
  if (!cpu::int4_shape_ok(in, group)) {
    return invalid_argument("int4 needs the input size (" + std::to_string(in) + ") to be a multiple of the group (" +
                            std::to_string(group) + "), itself a multiple of 8");
  }
  Linear l;
  l.layout_ = WeightLayout::kInt4;
  l.out_ = out;
  l.in_ = in;
  l.int4_ = cpu::pack_int4(w.data.data(), in, out, in, group);
  return l;
}

Result<Linear> Linear::int4_from_packed(const int32_t* packed, const float* scales, int64_t out, int64_t in,
                                        int64_t group) {
  if (!cpu::int4_shape_ok(in, group)) {
    return invalid_argument("int4 tensor of " + std::to_string(in) + " inputs in groups of " + std::to_string(group) +
                            " is not supported (groups must be a multiple of 8 dividing the input)");
  }
  Linear l;
  l.layout_ = WeightLayout::kInt4;
  l.out_ = out;
  l.in_ = in;
  l.int4_ = cpu::pack_int4_from_packed(packed, scales, out, in, group);
  // The checkpoint's weights are the model: keep them exact by keeping the activations too.
  l.int4_act_ = cpu::ActivationPrecision::kFloat32;
  return l;
}

Linear Linear::from_rows(const TensorF32& w, int64_t first, int64_t count, WeightLayout layout) {
  const int64_t in = w.shape.at(1);
  return pack(w.data.data() + first * in, count, in, layout);
}

Linear Linear::from_rows_transposed(const TensorF32& w, int64_t first, int64_t count, WeightLayout layout) {
  const int64_t in = w.shape.at(1);
  std::vector<float> t(static_cast<size_t>(in * count));  // [in, count]
  for (int64_t r = 0; r < count; ++r) {
    for (int64_t k = 0; k < in; ++k) t[static_cast<size_t>(k * count + r)] = w.data[(first + r) * in + k];
  }
  return pack(t.data(), in, count, layout);
}

void Linear::forward(const float* x, int64_t x_stride, int64_t rows, float* y, int64_t y_stride) const {
  if (rows == 0) return;
  switch (layout_) {
    case WeightLayout::kF32:
      if (t_pool != nullptr) return forward_f32_threaded(*t_pool, x, x_stride, rows, y, y_stride);
      ref::linear(x, x_stride, f32_.data(), in_, rows, in_, out_, y, y_stride);
      return;
    case WeightLayout::kBf16:
      // Float32 activations (see linear.h): bf16-rounded ones flip the golden models' routing.
      if (t_pool != nullptr) {
        return cpu::linear_bf16_mt(*t_pool, x, x_stride, rows, bf16_.view(), y, y_stride, cpu::active_isa(),
                                   cpu::ActivationPrecision::kFloat32);
      }
      cpu::cpu_ops().linear_bf16_f32act(x, x_stride, rows, bf16_.view(), y, y_stride);
      return;
    case WeightLayout::kInt8:
      if (t_pool != nullptr) return cpu::linear_int8_mt(*t_pool, x, x_stride, rows, int8_.view(), y, y_stride);
      cpu::cpu_ops().linear_int8(x, x_stride, rows, int8_.view(), y, y_stride);
      return;
    case WeightLayout::kInt4:
      if (t_pool != nullptr) {
        return cpu::linear_int4_mt(*t_pool, x, x_stride, rows, int4_.view(), y, y_stride, cpu::active_isa(), int4_act_);
      }
      if (int4_act_ == cpu::ActivationPrecision::kFloat32) {
        return cpu::cpu_ops().linear_int4_f32act(x, x_stride, rows, int4_.view(), y, y_stride);
      }
      cpu::cpu_ops().linear_int4(x, x_stride, rows, int4_.view(), y, y_stride);
      return;
    case WeightLayout::kFp8:
      if (t_pool != nullptr) return cpu::linear_fp8_mt(*t_pool, x, x_stride, rows, fp8_.view(), y, y_stride);
      cpu::cpu_ops().linear_fp8(x, x_stride, rows, fp8_.view(), y, y_stride);
      return;
  }
}

// Output blocks of the float32 matrix split over the pool; linear_f32_exact gives each
// output the reference's exact operation order, so the split does not change the result.
void Linear::forward_f32_threaded(cpu::ThreadPool& pool, const float* x, int64_t x_stride, int64_t rows, float* y,
                                  int64_t y_stride) const {
  constexpr int64_t kOutputsPerTask = 64;
  const int64_t tasks = (out_ + kOutputsPerTask - 1) / kOutputsPerTask;
  const auto task = [&](int64_t t, int) {
    const int64_t o0 = t * kOutputsPerTask, n = std::min(kOutputsPerTask, out_ - o0);
    cpu::linear_f32_exact(x, x_stride, f32_.data() + o0 * in_, in_, rows, in_, n, y + o0, y_stride);
  };
  if (tasks == 1) return task(0, 0);
  pool.parallel_for(tasks, task);
}

Linear Linear::widened() const {
  K2_CHECK(layout_ == WeightLayout::kBf16 || layout_ == WeightLayout::kFp8, "widened() needs a bf16 or fp8 Linear");
  Linear l;
  l.out_ = out_;
  l.in_ = in_;
  l.f32_.resize(static_cast<size_t>(out_ * in_));
  if (layout_ == WeightLayout::kFp8) {
    for (int64_t o = 0; o < out_; ++o)
      for (int64_t k = 0; k < in_; ++k) l.f32_[static_cast<size_t>(o * in_ + k)] = cpu::fp8_weight(fp8_.view(), o, k);
    return l;
  }
  const cpu::Bf16Weights v = bf16_.view();
  for (int64_t o = 0; o < out_; ++o) {
    const uint16_t* block = v.data + (o / cpu::kBlockN) * v.block_elems() + (o % cpu::kBlockN) * 2;
    for (int64_t k = 0; k < in_; ++k) {
      l.f32_[static_cast<size_t>(o * in_ + k)] = cpu::from_bf16(block[(k / 2) * cpu::kBlockN * 2 + k % 2]);
    }
  }
  return l;
}

size_t Linear::bytes() const {
  switch (layout_) {
    case WeightLayout::kF32: return f32_.size() * sizeof(float);
    case WeightLayout::kBf16: return bf16_.bytes();
    case WeightLayout::kInt8: return int8_.bytes();
    case WeightLayout::kInt4: return int4_.bytes();
    case WeightLayout::kFp8: return fp8_.bytes();
  }
  return 0;
}

Result<GateUpLinear> GateUpLinear::from(Linear gate, Linear up) {
  // A bf16 request keeps weights that bf16 cannot hold exactly in float32 (Linear::from), and
  // FP8 ones as FP8 when they pack (WeightLoader::linear); if the pair came out in different
  // layouts, both run in float32.
  const auto widens = [](WeightLayout l) { return l == WeightLayout::kBf16 || l == WeightLayout::kFp8; };
  if (gate.layout() != up.layout()) {
    if (widens(gate.layout()) && (up.layout() == WeightLayout::kF32 || widens(up.layout()))) gate = gate.widened();
    if (widens(up.layout()) && gate.layout() == WeightLayout::kF32) up = up.widened();
  }
  if (gate.layout() != up.layout() || gate.out() != up.out() || gate.in() != up.in()) {
    return invalid_argument("gate and up projections differ in shape or layout");
  }
  GateUpLinear g;
  g.layout_ = gate.layout();
  g.width_ = gate.out();
  g.in_ = gate.in();
  switch (g.layout_) {
    case WeightLayout::kF32:
      g.gate_ = std::move(gate);
      g.up_ = std::move(up);
      break;
    case WeightLayout::kBf16: g.bf16_ = cpu::interleave_blocks(gate.bf16_, up.bf16_); break;
    case WeightLayout::kInt8: g.int8_ = cpu::interleave_blocks(gate.int8_, up.int8_); break;
    case WeightLayout::kInt4:
      if (gate.int4_.view().group != up.int4_.view().group) {
        return invalid_argument("gate and up projections have different int4 groups");
      }
      g.int4_ = cpu::interleave_blocks(gate.int4_, up.int4_);
      g.int4_act_ = gate.int4_act_;
      break;
    case WeightLayout::kFp8:
      if (gate.fp8_.view().group != up.fp8_.view().group) {
        return invalid_argument("gate and up projections have different FP8 block sizes");
      }
      g.fp8_ = cpu::interleave_blocks(gate.fp8_, up.fp8_);
      break;
  }
  return g;
}

void GateUpLinear::forward(const float* x, int64_t rows, float* h) const {
  if (rows == 0) return;
  switch (layout_) {
    case WeightLayout::kF32: {
      std::vector<float> u(static_cast<size_t>(rows * width_));  // [rows, width]
      gate_.forward(x, rows, h);
      up_.forward(x, rows, u.data());
      ref::silu_mul(h, u.data(), rows * width_, h);
      return;
    }
    case WeightLayout::kBf16:
      return cpu::gate_up_silu_bf16(t_pool, x, in_, rows, bf16_.view(), width_, h, width_, cpu::active_isa(),
                                    cpu::ActivationPrecision::kFloat32);
    case WeightLayout::kInt8:
      return cpu::gate_up_silu_int8(t_pool, x, in_, rows, int8_.view(), width_, h, width_);
    case WeightLayout::kInt4:
      return cpu::gate_up_silu_int4(t_pool, x, in_, rows, int4_.view(), width_, h, width_, cpu::active_isa(),
                                    int4_act_);
    case WeightLayout::kFp8: return cpu::gate_up_silu_fp8(t_pool, x, in_, rows, fp8_.view(), width_, h, width_);
  }
}

size_t GateUpLinear::bytes() const {
  switch (layout_) {
    case WeightLayout::kF32: return gate_.bytes() + up_.bytes();
    case WeightLayout::kBf16: return bf16_.bytes();
    case WeightLayout::kInt8: return int8_.bytes();
    case WeightLayout::kInt4: return int4_.bytes();
    case WeightLayout::kFp8: return fp8_.bytes();
  }
  return 0;
}

}  // namespace k2
