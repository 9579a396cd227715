// Internal to kernels/cpu: the per-ISA linear kernels behind CpuOps, and the per-thread
// scratch they prepare activations in. Include only from kernels/cpu/*.cpp.
//
// Each kernel is split in two: the activation prologue (stage_*: quantise or round x once
// per call) and the "staged" body that reads prepared activations and any slice of the
// weights. The single-thread entry points run both; the threaded ones (linear_mt.h) stage
// once on the caller and hand the body one slice of output blocks per task.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/cpu/isa.h"
#include "kernels/cpu/packed.h"
#include "kernels/cpu/packed_fp8.h"

namespace k2::cpu::detail {

// Per-thread, grown on demand, never shrunk; one kernel call uses it at a time.
struct Scratch {
  std::vector<uint16_t> bf16;
  std::vector<float> f32;
  std::vector<int8_t> i8;
  std::vector<float> row_scales;
  std::vector<int32_t> group_sums;
};
Scratch& thread_scratch();

// Prepared activations; they point into some thread's Scratch and are only read.
struct StagedBf16 {
  const uint16_t* bf16;  // [rows][row_elems] bf16 bits
  const float* f32;      // the same values widened to fp32 (only if staged with widen), or, from
                         // stage_f32_activations, the unrounded rows (bf16 then null)
  int64_t rows, row_elems;
};
struct StagedInt8 {
  const int8_t* q;       // [rows][row_bytes], + 128 (as u8) when staged for VNNI
  const float* scales;   // [rows]
  int64_t rows, row_bytes;
};
struct StagedInt4 {
  const int8_t* q;            // [rows][in], signed
  const float* scales;        // [rows]
  const int32_t* group_sums;  // [rows][in / group]: sum of q over each group
  int64_t rows, row_bytes;
};

// The activation prologue every kernel of a format shares, into this thread's scratch:
// rows rounded to bf16 (and, when `widen`, back to fp32); rows quantised to int8 with
// per-row scales (biased to unsigned for VNNI when `for_vnni`); for int4 weights, signed
// int8 rows plus their per-group sums.
StagedBf16 stage_bf16_activations(const float* x, int64_t x_stride, int64_t rows, int64_t in, int64_t row_elems,
                                  bool widen);
// The rows as they are, in float32 (only .f32 set), zero-padded to row_elems: the input of
// the bf16-weight kernels that keep float32 activations (ActivationPrecision::kFloat32).
StagedBf16 stage_f32_activations(const float* x, int64_t x_stride, int64_t rows, int64_t in, int64_t row_elems);
StagedInt8 stage_int8_activations(const float* x, int64_t x_stride, int64_t rows, int64_t in, int64_t row_bytes,
                                  bool for_vnni);
StagedInt4 stage_int4_activations(const float* x, int64_t x_stride, int64_t rows, int64_t in, int64_t group);

// Checks shared by every implementation (shape and strides).
void check_linear_args(int64_t x_stride, int64_t rows, int64_t in, int64_t out, int64_t y_stride);

using Bf16Body = void (*)(const StagedBf16& x, const Bf16Weights& w, float* y, int64_t y_stride);
using Int8Body = void (*)(const StagedInt8& x, const Int8Weights& w, float* y, int64_t y_stride);
using Int4Body = void (*)(const StagedInt4& x, const Int4Weights& w, float* y, int64_t y_stride);
// int4 weights with float32 activations (staged by stage_f32_activations).
using Int4F32Body = void (*)(const StagedBf16& x, const Int4Weights& w, float* y, int64_t y_stride);
// fp8-block weights with float32 activations (staged by stage_f32_activations, row_elems = in).
using Fp8Body = void (*)(const StagedBf16& x, const Fp8Weights& w, float* y, int64_t y_stride);

// What one ISA level runs for each format, and how its activations must be staged.
struct LinearBodies {
  Bf16Body bf16 = nullptr;
  bool bf16_widen = false;
  Bf16Body bf16_f32act = nullptr;  // reads StagedBf16::f32 as staged by stage_f32_activations
  Int8Body int8 = nullptr;
  bool int8_vnni = false;
  Int4Body int4 = nullptr;
  Int4F32Body int4_f32act = nullptr;
  Fp8Body fp8 = nullptr;
};
LinearBodies linear_bodies_for(Isa isa);

void linear_bf16_scalar(const StagedBf16& x, const Bf16Weights& w, float* y, int64_t y_stride);
void linear_int8_scalar(const StagedInt8& x, const Int8Weights& w, float* y, int64_t y_stride);
void linear_int4_scalar(const StagedInt4& x, const Int4Weights& w, float* y, int64_t y_stride);
void linear_bf16_avx2(const StagedBf16& x, const Bf16Weights& w, float* y, int64_t y_stride);
void linear_int8_avx2(const StagedInt8& x, const Int8Weights& w, float* y, int64_t y_stride);
void linear_int4_avx2(const StagedInt4& x, const Int4Weights& w, float* y, int64_t y_stride);
void linear_bf16_avx512bf16(const StagedBf16& x, const Bf16Weights& w, float* y, int64_t y_stride);
void linear_bf16_f32act_avx512(const StagedBf16& x, const Bf16Weights& w, float* y, int64_t y_stride);
void linear_int4_f32act_scalar(const StagedBf16& x, const Int4Weights& w, float* y, int64_t y_stride);
void linear_int4_f32act_avx512(const StagedBf16& x, const Int4Weights& w, float* y, int64_t y_stride);
void linear_fp8_scalar(const StagedBf16& x, const Fp8Weights& w, float* y, int64_t y_stride);
void linear_fp8_avx512(const StagedBf16& x, const Fp8Weights& w, float* y, int64_t y_stride);
void linear_int8_avx512vnni(const StagedInt8& x, const Int8Weights& w, float* y, int64_t y_stride);
void linear_int4_avx512vnni(const StagedInt4& x, const Int4Weights& w, float* y, int64_t y_stride);

}  // namespace k2::cpu::detail
