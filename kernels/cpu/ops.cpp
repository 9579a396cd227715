#include "kernels/cpu/ops.h"

#include "kernels/check.h"
#include "kernels/cpu/linear_impl.h"

namespace k2::cpu {
namespace detail {

Scratch& thread_scratch() {
  thread_local Scratch s;
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
