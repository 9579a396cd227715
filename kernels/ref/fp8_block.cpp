#include "kernels/ref/fp8_block.h"

#include <cstddef>

#include "kernels/check.h"
#include "kernels/ref/kv_fp8.h"

namespace k2::ref {

std::vector<float> dequantize_fp8_block(const uint8_t* q, int64_t q_stride, const float* scale_inv, int64_t s_stride,
                                        int64_t out, int64_t in, int64_t block_out, int64_t block_in) {
  K2_KERNEL_CHECK(out > 0 && in > 0 && block_out > 0 && block_in > 0 && q_stride >= in, "fp8 block: bad shape");
  std::vector<float> w(static_cast<size_t>(out * in));
  for (int64_t o = 0; o < out; ++o) {
    const float* s = scale_inv + (o / block_out) * s_stride;
    for (int64_t k = 0; k < in; ++k) {
      w[static_cast<size_t>(o * in + k)] = fp8_e4m3_to_f32(q[o * q_stride + k]) * s[k / block_in];
    }
  }
  return w;
}

}  // namespace k2::ref
