#include "kernels/cpu/packed.h"

#include <malloc.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <utility>
#include <vector>

#include "kernels/check.h"

namespace k2::cpu {
namespace {

constexpr size_t kAlign = 64;

size_t round_up(size_t n, size_t a) { return (n + a - 1) / a * a; }

int8_t quantize_one(float v, float inv_scale) {
  const float q = std::nearbyint(v * inv_scale);  // default rounding mode: half to even
  return static_cast<int8_t>(std::clamp(q, -127.0f, 127.0f));
}

// Large allocations come in size classes (jemalloc: four per doubling, so up to ~25% above
// the request; a 264 KiB int8 expert matrix gets 320 KiB), and a class reused from freed
// memory arrives with all its pages resident. Packed weights live for the whole run, so the
// unused tail of each would stay resident too: ~13% of an int8 model. Dropping the tail's
// whole pages keeps it unbacked (the allocation still owns it; a touch would refault zeros).
void release_slack(void* p, size_t size) {
  const size_t usable = malloc_usable_size(p);
  const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(p) + size + page - 1) & ~(page - 1);
  const uintptr_t end = (reinterpret_cast<uintptr_t>(p) + usable) & ~(page - 1);
  if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

}  // namespace

void AlignedFree::operator()(void* p) const noexcept { std::free(p); }

AlignedBytes aligned_bytes(size_t n) {
  const size_t size = round_up(std::max<size_t>(n, 1), kAlign);
  void* p = std::aligned_alloc(kAlign, size);
  K2_KERNEL_CHECK(p != nullptr, "aligned_bytes: out of memory");
  std::memset(p, 0, size);
  release_slack(p, size);
  return AlignedBytes(static_cast<std::byte*>(p));
}

uint16_t to_bf16(float f) {
  const uint32_t u = std::bit_cast<uint32_t>(f);
  if (std::isnan(f)) return static_cast<uint16_t>((u >> 16) | 0x40);  // keep it a (quiet) NaN
  const uint32_t rounding = 0x7fff + ((u >> 16) & 1);
  return static_cast<uint16_t>((u + rounding) >> 16);
}

float from_bf16(uint16_t b) { return std::bit_cast<float>(static_cast<uint32_t>(b) << 16); }

Bf16Weights slice_blocks(const Bf16Weights& w, int64_t first, int64_t count) {
  K2_KERNEL_CHECK(first >= 0 && count >= 0 && first + count <= w.n_blocks(), "slice_blocks: out of range");
  Bf16Weights s = w;
  s.data = w.data + first * w.block_elems();
  s.out = std::min(count * kBlockN, w.out - first * kBlockN);
  return s;
}

Int8Weights slice_blocks(const Int8Weights& w, int64_t first, int64_t count) {
  K2_KERNEL_CHECK(first >= 0 && count >= 0 && first + count <= w.n_blocks(), "slice_blocks: out of range");
  Int8Weights s = w;
  s.data = w.data + first * w.block_bytes();
  s.scales = w.scales + first * kBlockN;
  s.row_sums = w.row_sums + first * kBlockN;
  s.out = std::min(count * kBlockN, w.out - first * kBlockN);
  return s;
}

bool int4_shape_ok(int64_t in, int64_t group) {
  return group > 0 && group <= kMaxInt4Group && group % kInt4Oct == 0 && in > 0 && in % group == 0;
}

Int4Weights slice_blocks(const Int4Weights& w, int64_t first, int64_t count) {
  K2_KERNEL_CHECK(first >= 0 && count >= 0 && first + count <= w.n_blocks(), "slice_blocks: out of range");
  Int4Weights s = w;
  s.data = w.data + first * w.block_bytes();
  s.scales = w.scales + first * w.block_scales();
  s.out = std::min(count * kBlockN, w.out - first * kBlockN);
  return s;
}

// Allocates a PackedInt4 and places nibbles and scales; both packers share it so their
// layouts cannot drift apart.
class Int4Packer {
 public:
  Int4Packer(int64_t out, int64_t in, int64_t group) {
    K2_KERNEL_CHECK(out > 0 && int4_shape_ok(in, group), "pack_int4: unsupported shape (see int4_shape_ok)");
    Int4Weights& v = p_.view_;
    v.out = out;
    v.in = in;
    v.group = group;
    const size_t data_bytes = round_up(static_cast<size_t>(v.n_blocks() * v.block_bytes()), kAlign);
    p_.bytes_ = data_bytes + static_cast<size_t>(v.n_blocks() * v.block_scales()) * sizeof(uint16_t);
    p_.mem_ = aligned_bytes(p_.bytes_);
    data_ = reinterpret_cast<uint8_t*>(p_.mem_.get());
    scales_ = reinterpret_cast<uint16_t*>(p_.mem_.get() + data_bytes);
    v.data = data_;
    v.scales = scales_;
  }

  // nibble = q + 8 of output o, input k.
  void set_nibble(int64_t o, int64_t k, uint32_t nibble) {
    const Int4Weights& v = p_.view_;
    uint8_t& byte = data_[(o / kBlockN) * v.block_bytes() + (k / kInt4Oct) * kBlockN * 4 + (o % kBlockN) * 4 + k % 4];
    const int shift = (k % kInt4Oct) >= 4 ? 4 : 0;
    byte = static_cast<uint8_t>((byte & ~(0xf << shift)) | ((nibble & 0xf) << shift));
  }
  void set_scale(int64_t o, int64_t g, uint16_t bf16) {
    const Int4Weights& v = p_.view_;
    scales_[(o / kBlockN) * v.block_scales() + g * kBlockN + o % kBlockN] = bf16;
  }
  PackedInt4 take() { return std::move(p_); }

 private:
  PackedInt4 p_;
  uint8_t* data_ = nullptr;
  uint16_t* scales_ = nullptr;
};

PackedInt4 pack_int4(const float* w, int64_t w_stride, int64_t out, int64_t in, int64_t group) {
  K2_KERNEL_CHECK(w_stride >= in, "pack_int4: bad stride");
  Int4Packer packer(out, in, group);
  for (int64_t o = 0; o < out; ++o) {
    const float* row = w + o * w_stride;
    for (int64_t g = 0; g < in / group; ++g) {
      const float* gw = row + g * group;
      float amax = 0.0f;
      for (int64_t k = 0; k < group; ++k) amax = std::max(amax, std::fabs(gw[k]));
      const uint16_t scale_bits = to_bf16(amax / 7.0f);
      const float scale = from_bf16(scale_bits);
      packer.set_scale(o, g, scale_bits);
      for (int64_t k = 0; k < group; ++k) {
        const float q = scale > 0.0f ? std::clamp(std::nearbyint(gw[k] / scale), -8.0f, 7.0f) : 0.0f;
        packer.set_nibble(o, g * group + k, static_cast<uint32_t>(static_cast<int>(q) + 8));
      }
    }
  }
  return packer.take();
}

PackedInt4 pack_int4_from_packed(const int32_t* packed, const float* scales, int64_t out, int64_t in,
                                 int64_t group) {
  Int4Packer packer(out, in, group);
  const int64_t words = in / kInt4Oct, groups = in / group;
  for (int64_t o = 0; o < out; ++o) {
    for (int64_t g = 0; g < groups; ++g) packer.set_scale(o, g, to_bf16(scales[o * groups + g]));
    for (int64_t j = 0; j < words; ++j) {
      const uint32_t word = static_cast<uint32_t>(packed[o * words + j]);
      for (int64_t n = 0; n < kInt4Oct; ++n) packer.set_nibble(o, j * kInt4Oct + n, word >> (4 * n));
    }
  }
  return packer.take();
}

float int4_weight(const Int4Weights& w, int64_t o, int64_t k) {
  const uint8_t byte = w.data[(o / kBlockN) * w.block_bytes() + (k / kInt4Oct) * kBlockN * 4 + (o % kBlockN) * 4 + k % 4];
  const int q = ((k % kInt4Oct) >= 4 ? byte >> 4 : byte & 0xf) - 8;
  const float scale = from_bf16(w.scales[(o / kBlockN) * w.block_scales() + (k / w.group) * kBlockN + o % kBlockN]);
  return static_cast<float>(q) * scale;
}

namespace {

// One output row into its block lane (the layouts of packed.h).
void place_bf16_row(uint16_t* dst, int64_t block_elems, int64_t o, const float* row, int64_t in) {
  uint16_t* block = dst + (o / kBlockN) * block_elems;
  const int64_t lane = o % kBlockN;
  for (int64_t k = 0; k < in; ++k) block[(k / 2) * kBlockN * 2 + lane * 2 + k % 2] = to_bf16(row[k]);
}

void place_int8_row(int8_t* data, float* scales, int32_t* sums, int64_t block_bytes, int64_t o, const float* row,
                    int64_t in) {
  float amax = 0.0f;
  for (int64_t k = 0; k < in; ++k) amax = std::max(amax, std::fabs(row[k]));
  const float scale = amax / 127.0f;
  const float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
  int8_t* block = data + (o / kBlockN) * block_bytes;
  const int64_t lane = o % kBlockN;
  int32_t sum = 0;
  for (int64_t k = 0; k < in; ++k) {
    const int8_t q = quantize_one(row[k], inv);
    block[(k / 4) * kBlockN * 4 + lane * 4 + k % 4] = q;
    sum += q;
  }
  scales[o] = scale;
  sums[o] = sum;
}

// Calls place(o, row) for every row of `source`, chunk_rows float rows at a time.
template <class Place>
void for_each_source_row(int64_t out, int64_t in, int64_t chunk_rows, const RowSource& source, Place place) {
  K2_KERNEL_CHECK(chunk_rows > 0, "pack: chunk of no rows");
  std::vector<float> chunk(static_cast<size_t>(std::min(chunk_rows, out) * in));
  for (int64_t r0 = 0; r0 < out; r0 += chunk_rows) {
    const int64_t n = std::min(chunk_rows, out - r0);
    source(r0, n, chunk.data());
    for (int64_t i = 0; i < n; ++i) place(r0 + i, chunk.data() + i * in);
  }
}

}  // namespace

PackedBf16 pack_bf16(const float* w, int64_t w_stride, int64_t out, int64_t in) {
  K2_KERNEL_CHECK(out > 0 && in > 0 && w_stride >= in, "pack_bf16: bad shape");
  PackedBf16 p;
  p.view_.out = out;
  p.view_.in = in;
  const int64_t block_elems = p.view_.block_elems();
  p.bytes_ = static_cast<size_t>(p.view_.n_blocks() * block_elems) * sizeof(uint16_t);
  p.mem_ = aligned_bytes(p.bytes_);
  auto* dst = reinterpret_cast<uint16_t*>(p.mem_.get());
  for (int64_t o = 0; o < out; ++o) place_bf16_row(dst, block_elems, o, w + o * w_stride, in);
  p.view_.data = dst;
  return p;
}

PackedBf16 pack_bf16_streamed(int64_t out, int64_t in, int64_t chunk_rows, const RowSource& source) {
  K2_KERNEL_CHECK(out > 0 && in > 0, "pack_bf16: bad shape");
  PackedBf16 p;
  p.view_.out = out;
  p.view_.in = in;
  const int64_t block_elems = p.view_.block_elems();
  p.bytes_ = static_cast<size_t>(p.view_.n_blocks() * block_elems) * sizeof(uint16_t);
  p.mem_ = aligned_bytes(p.bytes_);
  auto* dst = reinterpret_cast<uint16_t*>(p.mem_.get());
  for_each_source_row(out, in, chunk_rows, source,
                      [&](int64_t o, const float* row) { place_bf16_row(dst, block_elems, o, row, in); });
  p.view_.data = dst;
  return p;
}

namespace {

// Allocates an int8 matrix's memory and views; rows are placed by place_int8_row.
struct Int8Parts {
  int8_t* data;
  float* scales;
  int32_t* sums;
};
Int8Parts init_int8(AlignedBytes& mem, size_t& bytes, Int8Weights& view, int64_t out, int64_t in) {
  K2_KERNEL_CHECK(out > 0 && in > 0, "pack_int8: bad shape");
  K2_KERNEL_CHECK(in <= kMaxInt8In, "pack_int8: reduction too long for int32 accumulation");
  view.out = out;
  view.in = in;
  const int64_t n_pad = view.n_blocks() * kBlockN;
  const size_t data_bytes = round_up(static_cast<size_t>(view.n_blocks() * view.block_bytes()), kAlign);
  const size_t side_bytes = round_up(static_cast<size_t>(n_pad) * 4, kAlign);
  bytes = data_bytes + 2 * side_bytes;
  mem = aligned_bytes(bytes);
  Int8Parts parts{reinterpret_cast<int8_t*>(mem.get()), reinterpret_cast<float*>(mem.get() + data_bytes),
                  reinterpret_cast<int32_t*>(mem.get() + data_bytes + side_bytes)};
  view.data = parts.data;
  view.scales = parts.scales;
  view.row_sums = parts.sums;
  return parts;
}

}  // namespace

PackedInt8 pack_int8(const float* w, int64_t w_stride, int64_t out, int64_t in) {
  K2_KERNEL_CHECK(w_stride >= in, "pack_int8: bad shape");
  PackedInt8 p;
  const Int8Parts parts = init_int8(p.mem_, p.bytes_, p.view_, out, in);
  const int64_t block_bytes = p.view_.block_bytes();
  for (int64_t o = 0; o < out; ++o) place_int8_row(parts.data, parts.scales, parts.sums, block_bytes, o, w + o * w_stride, in);
  return p;
}

PackedInt8 pack_int8_streamed(int64_t out, int64_t in, int64_t chunk_rows, const RowSource& source) {
  PackedInt8 p;
  const Int8Parts parts = init_int8(p.mem_, p.bytes_, p.view_, out, in);
  const int64_t block_bytes = p.view_.block_bytes();
  for_each_source_row(out, in, chunk_rows, source, [&](int64_t o, const float* row) {
    place_int8_row(parts.data, parts.scales, parts.sums, block_bytes, o, row, in);
  });
  return p;
}

void activations_to_bf16(const float* x, int64_t x_stride, int64_t rows, int64_t in, int64_t row_elems,
                         uint16_t* out) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * x_stride;
    uint16_t* o = out + r * row_elems;
    for (int64_t k = 0; k < in; ++k) o[k] = to_bf16(xr[k]);
    for (int64_t k = in; k < row_elems; ++k) o[k] = 0;
  }
}

void quantize_activations_int8(const float* x, int64_t x_stride, int64_t rows, int64_t in, int64_t row_bytes,
                               bool offset_u8, int8_t* out, float* scales) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * x_stride;
    float amax = 0.0f;
    for (int64_t k = 0; k < in; ++k) amax = std::max(amax, std::fabs(xr[k]));
    const float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
    scales[r] = amax / 127.0f;
    int8_t* o = out + r * row_bytes;
    const int off = offset_u8 ? 128 : 0;
    for (int64_t k = 0; k < row_bytes; ++k) {
      const int q = (k < in ? quantize_one(xr[k], inv) : 0) + off;
      o[k] = static_cast<int8_t>(static_cast<uint8_t>(q));
    }
  }
}

void int8_group_sums(const int8_t* q, int64_t rows, int64_t row_bytes, int64_t in, int64_t group, int32_t* sums) {
  const int64_t groups = in / group;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t g = 0; g < groups; ++g) {
      int32_t sum = 0;
      for (int64_t k = g * group; k < (g + 1) * group; ++k) sum += q[r * row_bytes + k];
      sums[r * groups + g] = sum;
    }
  }
}

}  // namespace k2::cpu
