#include "workers/loader/convert.h"

#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>

namespace k2 {
namespace {

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

std::string describe(const TensorView& v) {
  return "tensor '" + v.name + "' (" + dtype_name(v.dtype) + " " + shape_text(v.shape) + ")";
}

bool is_float(DType d) { return d == DType::kBF16 || d == DType::kF16 || d == DType::kF32 || d == DType::kF8E4M3; }

// A view whose byte count disagrees with its shape would make the loops below read past
// its end; views from SafetensorsFile are validated already, hand-made ones are not.
Status check_bytes(const TensorView& v) {
  uint64_t numel = 1;
  for (int64_t d : v.shape) {
    if (d < 0 || __builtin_mul_overflow(numel, static_cast<uint64_t>(d), &numel)) {
      return invalid_argument(describe(v) + ": invalid shape");
    }
  }
  uint64_t bytes = 0;
  if (__builtin_mul_overflow(numel, dtype_size(v.dtype), &bytes) || bytes != v.bytes || (bytes && !v.data)) {
    return invalid_argument(describe(v) + ": " + std::to_string(v.bytes) + " bytes do not match the shape");
  }
  return Status::ok_status();
}

std::array<float, 256> make_e4m3_table() {
  std::array<float, 256> table{};
  for (int b = 0; b < 256; ++b) {
    const int exponent = (b >> 3) & 15;
    const int mantissa = b & 7;
    float magnitude;
    if (exponent == 15 && mantissa == 7) {
      magnitude = std::numeric_limits<float>::quiet_NaN();
    } else if (exponent == 0) {
      magnitude = std::ldexp(static_cast<float>(mantissa), -9);  // subnormal: m/8 * 2^-6
    } else {
      magnitude = std::ldexp(static_cast<float>(8 + mantissa), exponent - 10);  // (1 + m/8) * 2^(e-7)
    }
    table[b] = (b & 0x80) ? -magnitude : magnitude;
  }
  return table;
}

const std::array<float, 256> kE4m3Table = make_e4m3_table();

template <class T>
T load(const uint8_t* p, int64_t i) {
  T v;
  std::memcpy(&v, p + i * static_cast<int64_t>(sizeof(T)), sizeof(T));
  return v;
}

void widen(const TensorView& v, float* out) {
  const int64_t n = v.numel();
  switch (v.dtype) {
    case DType::kBF16:
      for (int64_t i = 0; i < n; ++i) out[i] = bf16_to_f32(load<uint16_t>(v.data, i));
      break;
    case DType::kF16:
      for (int64_t i = 0; i < n; ++i) out[i] = f16_to_f32(load<uint16_t>(v.data, i));
      break;
    case DType::kF32:
      if (n) std::memcpy(out, v.data, static_cast<size_t>(n) * sizeof(float));
      break;
    case DType::kF8E4M3:
      for (int64_t i = 0; i < n; ++i) out[i] = kE4m3Table[v.data[i]];
      break;
    default:
      K2_CHECK(false, "widen() called on an integer dtype");
  }
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace

int64_t TensorF32::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

float bf16_to_f32(uint16_t bits) {
  const uint32_t u = static_cast<uint32_t>(bits) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

float f16_to_f32(uint16_t bits) {
  const uint32_t sign = static_cast<uint32_t>(bits & 0x8000u) << 16;
  const uint32_t exponent = (bits >> 10) & 0x1fu;
  const uint32_t mantissa = bits & 0x3ffu;
  uint32_t u;
  if (exponent == 0) {
    const float magnitude = std::ldexp(static_cast<float>(mantissa), -24);  // zero or subnormal
    return sign ? -magnitude : magnitude;
  } else if (exponent == 31) {
    u = sign | 0x7f800000u | (mantissa << 13);  // inf / NaN
  } else {
    u = sign | ((exponent + 112) << 23) | (mantissa << 13);
  }
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

float e4m3_to_f32(uint8_t bits) { return kE4m3Table[bits]; }

Result<TensorF32> to_f32(const TensorView& view) {
  K2_RETURN_IF_ERROR(check_bytes(view));
  if (!is_float(view.dtype)) return invalid_argument(describe(view) + ": not a floating-point tensor");
  TensorF32 t;
  t.shape = view.shape;
  t.data.resize(static_cast<size_t>(view.numel()));
  widen(view, t.data.data());
  return t;
}

Result<std::vector<int64_t>> to_i64(const TensorView& view) {
  K2_RETURN_IF_ERROR(check_bytes(view));
  const int64_t n = view.numel();
  std::vector<int64_t> out(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    switch (view.dtype) {
      case DType::kI32: out[i] = load<int32_t>(view.data, i); break;
      case DType::kI64: out[i] = load<int64_t>(view.data, i); break;
      case DType::kU8: out[i] = view.data[i]; break;
      case DType::kI8: out[i] = static_cast<int8_t>(view.data[i]); break;
      default: return invalid_argument(describe(view) + ": not an integer tensor");
    }
  }
  return out;
}

Result<TensorF32> dequant_fp8_block(const TensorView& weight, const TensorView& scale_inv, int64_t block_out,
                                    int64_t block_in) {
  K2_RETURN_IF_ERROR(check_bytes(weight));
  if (weight.dtype != DType::kF8E4M3 || weight.shape.size() != 2) {
    return invalid_argument(describe(weight) + ": an FP8 block weight must be F8_E4M3 of rank 2");
  }
  if (block_out <= 0 || block_in <= 0) {
    return invalid_argument("FP8 block size [" + std::to_string(block_out) + ", " + std::to_string(block_in) +
                            "] must be positive");
  }
  const int64_t rows = weight.shape[0], cols = weight.shape[1];
  const std::vector<int64_t> want = {ceil_div(rows, block_out), ceil_div(cols, block_in)};
  if (scale_inv.shape != want) {
    return invalid_argument(describe(scale_inv) + ": expected shape " + shape_text(want) + " for " +
                            describe(weight) + " with blocks [" + std::to_string(block_out) + ", " +
                            std::to_string(block_in) + "]");
  }
  K2_ASSIGN_OR_RETURN(TensorF32 scale, to_f32(scale_inv));
  TensorF32 t;
  t.shape = weight.shape;
  t.data.resize(static_cast<size_t>(rows * cols));
  for (int64_t i = 0; i < rows; ++i) {
    const float* srow = scale.data.data() + (i / block_out) * want[1];
    const uint8_t* q = weight.data + i * cols;
    float* out = t.data.data() + i * cols;
    for (int64_t j = 0; j < cols; ++j) out[j] = kE4m3Table[q[j]] * srow[j / block_in];
  }
  return t;
}

Result<TensorF32> dequant_int4_packed(const TensorView& packed, const TensorView& scale, const TensorView& shape,
                                      int64_t group_size) {
  K2_RETURN_IF_ERROR(check_bytes(packed));
  K2_ASSIGN_OR_RETURN(std::vector<int64_t> dims, to_i64(shape));
  if (dims.size() != 2 || dims[0] <= 0 || dims[1] <= 0 || dims[0] > (int64_t{1} << 31) ||
      dims[1] > (int64_t{1} << 31)) {
    return invalid_argument(describe(shape) + ": must hold two positive sizes [out, in]");
  }
  if (group_size <= 0) return invalid_argument("INT4 group_size " + std::to_string(group_size) + " must be positive");
  const int64_t rows = dims[0], cols = dims[1];
  const std::vector<int64_t> want_packed = {rows, ceil_div(cols, 8)};
  if (packed.dtype != DType::kI32 || packed.shape != want_packed) {
    return invalid_argument(describe(packed) + ": expected I32 " + shape_text(want_packed) + " for weight_shape " +
                            shape_text(dims));
  }
  const std::vector<int64_t> want_scale = {rows, ceil_div(cols, group_size)};
  if (!is_float(scale.dtype) || scale.shape != want_scale) {
    return invalid_argument(describe(scale) + ": expected a float tensor of shape " + shape_text(want_scale) +
                            " for weight_shape " + shape_text(dims) + " and group_size " + std::to_string(group_size));
  }
  K2_ASSIGN_OR_RETURN(TensorF32 s, to_f32(scale));
  TensorF32 t;
  t.shape = {rows, cols};
  t.data.resize(static_cast<size_t>(rows * cols));
  const int64_t words = want_packed[1];
  for (int64_t o = 0; o < rows; ++o) {
    const float* srow = s.data.data() + o * want_scale[1];
    float* out = t.data.data() + o * cols;
    for (int64_t j = 0; j < words; ++j) {
      const uint32_t word = load<uint32_t>(packed.data, o * words + j);
      for (int64_t k = 0; k < 8 && 8 * j + k < cols; ++k) {
        const int64_t i = 8 * j + k;
        const int q = static_cast<int>((word >> (4 * k)) & 15u) - 8;
        out[i] = static_cast<float>(q) * srow[i / group_size];
      }
    }
  }
  return t;
}

}  // namespace k2
