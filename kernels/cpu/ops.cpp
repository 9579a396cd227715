#include "kernels/cpu/ops.h"

#include <algorithm>

#include "kernels/check.h"
#include "kernels/cpu/linear_impl.h"

namespace k2::cpu {
namespace detail {

Scratch& thread_scratch() {
  thread_local Scratch s;
  return s;
}

StagedBf16 stage_bf16_activations(const float* x, int64_t x_stride, int64_t rows, int64_t in, int64_t row_elems,
                                  bool widen) {
  Scratch& s = thread_scratch();
  s.bf16.resize(static_cast<size_t>(rows * row_elems));
  activations_to_bf16(x, x_stride, rows, in, row_elems, s.bf16.data());
  if (widen) {
    s.f32.resize(s.bf16.size());
    for (size_t i = 0; i < s.bf16.size(); ++i) s.f32[i] = from_bf16(s.bf16[i]);
  }
  return StagedBf16{s.bf16.data(), widen ? s.f32.data() : nullptr, rows, row_elems};
}

StagedBf16 stage_f32_activations(const float* x, int64_t x_stride, int64_t rows, int64_t in, int64_t row_elems) {
  Scratch& s = thread_scratch();
  s.f32.resize(static_cast<size_t>(rows * row_elems));
  for (int64_t r = 0; r < rows; ++r) {
    float* o = s.f32.data() + r * row_elems;
    std::copy_n(x + r * x_stride, in, o);
    std::fill(o + in, o + row_elems, 0.0f);
  }
  return StagedBf16{nullptr, s.f32.data(), rows, row_elems};
}

StagedInt8 stage_int8_activations(const float* x, int64_t x_stride, int64_t rows, int64_t in, int64_t row_bytes,
                                  bool for_vnni) {
  Scratch& s = thread_scratch();
  s.i8.resize(static_cast<size_t>(rows * row_bytes));
  s.row_scales.resize(static_cast<size_t>(rows));
  quantize_activations_int8(x, x_stride, rows, in, row_bytes, for_vnni, s.i8.data(), s.row_scales.data());
  return StagedInt8{s.i8.data(), s.row_scales.data(), rows, row_bytes};
}

StagedInt4 stage_int4_activations(const float* x, int64_t x_stride, int64_t rows, int64_t in, int64_t group) {
  Scratch& s = thread_scratch();
  s.i8.resize(static_cast<size_t>(rows * in));
  s.row_scales.resize(static_cast<size_t>(rows));
  s.group_sums.resize(static_cast<size_t>(rows * (in / group)));
  quantize_activations_int8(x, x_stride, rows, in, in, /*offset_u8=*/false, s.i8.data(), s.row_scales.data());
  int8_group_sums(s.i8.data(), rows, in, in, group, s.group_sums.data());
  return StagedInt4{s.i8.data(), s.row_scales.data(), s.group_sums.data(), rows, in};
}

void check_linear_args(int64_t x_stride, int64_t rows, int64_t in, int64_t out, int64_t y_stride) {
  K2_KERNEL_CHECK(rows >= 0 && in > 0 && out > 0, "linear: bad shape");
  K2_KERNEL_CHECK(x_stride >= in && y_stride >= out, "linear: stride too small");
}

LinearBodies linear_bodies_for(Isa isa) {
  LinearBodies b;
  if (isa >= Isa::kAvx512Bf16) {
    b.bf16 = linear_bf16_avx512bf16;
    b.bf16_f32act = linear_bf16_f32act_avx512;
    b.int4_f32act = linear_int4_f32act_avx512;
    b.fp8 = linear_fp8_avx512;
    b.int8 = linear_int8_avx512vnni;
    b.int8_vnni = true;
    b.int4 = linear_int4_avx512vnni;
  } else if (isa >= Isa::kAvx2) {
    b.bf16 = linear_bf16_avx2;
    b.bf16_widen = true;
    b.bf16_f32act = isa >= Isa::kAvx512 ? linear_bf16_f32act_avx512 : linear_bf16_avx2;
    b.int4_f32act = isa >= Isa::kAvx512 ? linear_int4_f32act_avx512 : linear_int4_f32act_scalar;
    b.fp8 = isa >= Isa::kAvx512 ? linear_fp8_avx512 : linear_fp8_scalar;
    b.int8 = linear_int8_avx2;
    b.int4 = linear_int4_avx2;
  } else {
    b.bf16 = linear_bf16_scalar;
    b.bf16_widen = true;
    b.bf16_f32act = linear_bf16_scalar;
    b.int4_f32act = linear_int4_f32act_scalar;
    b.fp8 = linear_fp8_scalar;
    b.int8 = linear_int8_scalar;
    b.int4 = linear_int4_scalar;
  }
  return b;
}

namespace {

// The single-thread entry points: prologue then body, on this thread's scratch.
template <Bf16Body Body, bool Widen>
void bf16_entry(const float* x, int64_t x_stride, int64_t rows, const Bf16Weights& w, float* y, int64_t y_stride) {
  check_linear_args(x_stride, rows, w.in, w.out, y_stride);
  Body(stage_bf16_activations(x, x_stride, rows, w.in, w.k_pairs() * 2, Widen), w, y, y_stride);
}

template <Bf16Body Body>
void bf16_f32act_entry(const float* x, int64_t x_stride, int64_t rows, const Bf16Weights& w, float* y,
                       int64_t y_stride) {
  check_linear_args(x_stride, rows, w.in, w.out, y_stride);
  if (rows == 0) return;
  Body(stage_f32_activations(x, x_stride, rows, w.in, w.k_pairs() * 2), w, y, y_stride);
}

template <Int4F32Body Body>
void int4_f32act_entry(const float* x, int64_t x_stride, int64_t rows, const Int4Weights& w, float* y,
                       int64_t y_stride) {
  check_linear_args(x_stride, rows, w.in, w.out, y_stride);
  if (rows == 0) return;
  Body(stage_f32_activations(x, x_stride, rows, w.in, w.in), w, y, y_stride);
}

template <Fp8Body Body>
void fp8_entry(const float* x, int64_t x_stride, int64_t rows, const Fp8Weights& w, float* y, int64_t y_stride) {
  check_linear_args(x_stride, rows, w.in, w.out, y_stride);
  if (rows == 0) return;
  Body(stage_f32_activations(x, x_stride, rows, w.in, w.in), w, y, y_stride);
}

template <Int8Body Body, bool Vnni>
void int8_entry(const float* x, int64_t x_stride, int64_t rows, const Int8Weights& w, float* y, int64_t y_stride) {
  check_linear_args(x_stride, rows, w.in, w.out, y_stride);
  Body(stage_int8_activations(x, x_stride, rows, w.in, w.k_quads() * 4, Vnni), w, y, y_stride);
}

template <Int4Body Body>
void int4_entry(const float* x, int64_t x_stride, int64_t rows, const Int4Weights& w, float* y, int64_t y_stride) {
  check_linear_args(x_stride, rows, w.in, w.out, y_stride);
  Body(stage_int4_activations(x, x_stride, rows, w.in, w.group), w, y, y_stride);
}

}  // namespace
}  // namespace detail

CpuOps cpu_ops_for(Isa isa) {
  using namespace detail;
  CpuOps ops;
  ops.isa = isa;
  if (isa >= Isa::kAvx512Bf16) {
    ops.linear_bf16 = bf16_entry<linear_bf16_avx512bf16, false>;
    ops.linear_bf16_name = "avx512bf16";
    ops.linear_bf16_f32act = bf16_f32act_entry<linear_bf16_f32act_avx512>;
    ops.linear_bf16_f32act_name = "avx512";
    ops.linear_int8 = int8_entry<linear_int8_avx512vnni, true>;
    ops.linear_int8_name = "avx512vnni";
    ops.linear_int4 = int4_entry<linear_int4_avx512vnni>;
    ops.linear_int4_name = "avx512vnni";
    ops.linear_int4_f32act = int4_f32act_entry<linear_int4_f32act_avx512>;
    ops.linear_fp8 = fp8_entry<linear_fp8_avx512>;
    ops.linear_fp8_name = "avx512";
  } else if (isa >= Isa::kAvx2) {
    ops.linear_bf16 = bf16_entry<linear_bf16_avx2, true>;
    ops.linear_bf16_name = "avx2";
    const bool avx512 = isa >= Isa::kAvx512;
    ops.linear_bf16_f32act =
        avx512 ? bf16_f32act_entry<linear_bf16_f32act_avx512> : bf16_f32act_entry<linear_bf16_avx2>;
    ops.linear_bf16_f32act_name = avx512 ? "avx512" : "avx2";
    ops.linear_int8 = int8_entry<linear_int8_avx2, false>;
    ops.linear_int8_name = "avx2";
    ops.linear_int4 = int4_entry<linear_int4_avx2>;
    ops.linear_int4_name = "avx2";
    ops.linear_int4_f32act =
        avx512 ? int4_f32act_entry<linear_int4_f32act_avx512> : int4_f32act_entry<linear_int4_f32act_scalar>;
    ops.linear_fp8 = avx512 ? fp8_entry<linear_fp8_avx512> : fp8_entry<linear_fp8_scalar>;
    ops.linear_fp8_name = avx512 ? "avx512" : "scalar";
  } else {
    ops.linear_bf16 = bf16_entry<linear_bf16_scalar, true>;
    ops.linear_bf16_name = "scalar";
    ops.linear_bf16_f32act = bf16_f32act_entry<linear_bf16_scalar>;
    ops.linear_bf16_f32act_name = "scalar";
    ops.linear_int8 = int8_entry<linear_int8_scalar, false>;
    ops.linear_int8_name = "scalar";
    ops.linear_int4 = int4_entry<linear_int4_scalar>;
    ops.linear_int4_name = "scalar";
    ops.linear_int4_f32act = int4_f32act_entry<linear_int4_f32act_scalar>;
    ops.linear_fp8 = fp8_entry<linear_fp8_scalar>;
    ops.linear_fp8_name = "scalar";
  }
  return ops;
}

const CpuOps& cpu_ops() {
  static const CpuOps ops = cpu_ops_for(active_isa());
  return ops;
}

}  // namespace k2::cpu
