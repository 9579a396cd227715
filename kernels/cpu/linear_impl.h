// Internal to kernels/cpu: the per-ISA linear kernels behind CpuOps, and the per-thread
// scratch they prepare activations in. Include only from kernels/cpu/*.cpp.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/cpu/packed.h"

namespace k2::cpu::detail {

// Per-thread, grown on demand, never shrunk; one kernel call uses it at a time.
struct Scratch {
  std::vector<uint16_t> bf16;
  std::vector<float> f32;
  std::vector<int8_t> i8;
  std::vector<float> row_scales;
};
Scratch& thread_scratch();

// The activation prologue every kernel of a format shares, into this thread's scratch:
// rows rounded to bf16 (s.bf16, [rows, row_elems]) and, when `widen`, back to fp32 (s.f32);
// or rows quantised to int8 (s.i8, [rows, row_bytes]) with per-row scales (s.row_scales),
// biased to unsigned for VNNI when `for_vnni`.
Scratch& stage_bf16_activations(const float* x, int64_t x_stride, int64_t rows, int64_t in, int64_t row_elems,
                                bool widen);
Scratch& stage_int8_activations(const float* x, int64_t x_stride, int64_t rows, int64_t in, int64_t row_bytes,
                                bool for_vnni);

// Checks shared by every implementation (shape and strides).
void check_linear_args(int64_t x_stride, int64_t rows, int64_t in, int64_t out, int64_t y_stride);

void linear_bf16_scalar(const float* x, int64_t x_stride, int64_t rows, const Bf16Weights& w, float* y,
                        int64_t y_stride);
void linear_int8_scalar(const float* x, int64_t x_stride, int64_t rows, const Int8Weights& w, float* y,
                        int64_t y_stride);
void linear_bf16_avx2(const float* x, int64_t x_stride, int64_t rows, const Bf16Weights& w, float* y,
                      int64_t y_stride);
void linear_int8_avx2(const float* x, int64_t x_stride, int64_t rows, const Int8Weights& w, float* y,
                      int64_t y_stride);
void linear_bf16_avx512bf16(const float* x, int64_t x_stride, int64_t rows, const Bf16Weights& w, float* y,
                            int64_t y_stride);
void linear_int8_avx512vnni(const float* x, int64_t x_stride, int64_t rows, const Int8Weights& w, float* y,
                            int64_t y_stride);

}  // namespace k2::cpu::detail
