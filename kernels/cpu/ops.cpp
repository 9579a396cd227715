#include "kernels/cpu/ops.h"

#include "kernels/check.h"
#include "kernels/cpu/linear_impl.h"

namespace k2::cpu {
namespace detail {

Scratch& thread_scratch() {
  thread_local Scratch s;
  return s;
}

Scratch& stage_bf16_activations(const float* x, int64_t x_stride, int64_t rows, int64_t in, int64_t row_elems,
                                bool widen) {
  Scratch& s = thread_scratch();
  s.bf16.resize(static_cast<size_t>(rows * row_elems));
  activations_to_bf16(x, x_stride, rows, in, row_elems, s.bf16.data());
  if (widen) {
    s.f32.resize(s.bf16.size());
    for (size_t i = 0; i < s.bf16.size(); ++i) s.f32[i] = from_bf16(s.bf16[i]);
  }
  return s;
}

Scratch& stage_int8_activations(const float* x, int64_t x_stride, int64_t rows, int64_t in, int64_t row_bytes,
                                bool for_vnni) {
  Scratch& s = thread_scratch();
  s.i8.resize(static_cast<size_t>(rows * row_bytes));
  s.row_scales.resize(static_cast<size_t>(rows));
  quantize_activations_int8(x, x_stride, rows, in, row_bytes, for_vnni, s.i8.data(), s.row_scales.data());
  return s;
}

void check_linear_args(int64_t x_stride, int64_t rows, int64_t in, int64_t out, int64_t y_stride) {
  K2_KERNEL_CHECK(rows >= 0 && in > 0 && out > 0, "linear: bad shape");
  K2_KERNEL_CHECK(x_stride >= in && y_stride >= out, "linear: stride too small");
}

}  // namespace detail

CpuOps cpu_ops_for(Isa isa) {
  CpuOps ops;
  ops.isa = isa;
  if (isa >= Isa::kAvx512Bf16) {
    ops.linear_bf16 = detail::linear_bf16_avx512bf16;
    ops.linear_bf16_name = "avx512bf16";
    ops.linear_int8 = detail::linear_int8_avx512vnni;
    ops.linear_int8_name = "avx512vnni";
  } else if (isa >= Isa::kAvx2) {
    ops.linear_bf16 = detail::linear_bf16_avx2;
    ops.linear_bf16_name = "avx2";
    ops.linear_int8 = detail::linear_int8_avx2;
    ops.linear_int8_name = "avx2";
  } else {
    ops.linear_bf16 = detail::linear_bf16_scalar;
    ops.linear_bf16_name = "scalar";
    ops.linear_int8 = detail::linear_int8_scalar;
    ops.linear_int8_name = "scalar";
  }
  return ops;
}

const CpuOps& cpu_ops() {
  static const CpuOps ops = cpu_ops_for(active_isa());
  return ops;
}

}  // namespace k2::cpu
