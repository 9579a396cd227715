#include "workers/kv_cache.h"

#include <algorithm>
#include <string>
#include <utility>

#include "kernels/cpu/packed.h"
#include "kernels/ref/kv_fp8.h"

namespace k2 {

namespace {

Status create_check(int64_t num_layers, int64_t num_blocks, int64_t block_size, int64_t row_dim) {
  if (num_layers <= 0 || num_blocks <= 0 || row_dim <= 0) {
    return invalid_argument("kv cache: layers, blocks and row width must be positive");
  }
  if (block_size <= 0 || (block_size & (block_size - 1)) != 0) {
    return invalid_argument("kv cache: block size " + std::to_string(block_size) + " is not a power of two");
  }
  return Status::ok_status();
}

}  // namespace

Result<KvCacheDtype> kv_cache_dtype_for(std::string_view name) {
  if (name == "auto") return KvCacheDtype::kFloat32;
  if (name == "bfloat16" || name == "bf16") return KvCacheDtype::kBfloat16;
  if (name == "float32" || name == "float") return KvCacheDtype::kFloat32;
  if (name == "fp8" || name == "fp8_e4m3") return KvCacheDtype::kFp8E4m3;
  return invalid_argument("--kv-cache-dtype must be auto, bfloat16, float32, fp8 or fp8_e4m3, got " +
                          std::string(name));
}

const char* kv_cache_dtype_name(KvCacheDtype dtype) {
  switch (dtype) {
    case KvCacheDtype::kFloat32: return "float32";
    case KvCacheDtype::kBfloat16: return "bfloat16";
    case KvCacheDtype::kFp8E4m3: return "fp8_e4m3";
  }
  return "?";
}

int64_t kv_cache_row_bytes(KvCacheDtype dtype, int64_t row_dim) {
  switch (dtype) {
    case KvCacheDtype::kFloat32: return row_dim * 4;
    case KvCacheDtype::kBfloat16: return row_dim * 2;
    case KvCacheDtype::kFp8E4m3: return ref::fp8_kv_row_bytes(row_dim);
  }
  return 0;
}

Result<LatentKvCache> LatentKvCache::create(int64_t num_layers, int64_t num_blocks, int64_t block_size,
                                            int64_t row_dim, KvCacheDtype dtype) {
  K2_RETURN_IF_ERROR(create_check(num_layers, num_blocks, block_size, row_dim));
  return LatentKvCache(num_layers, num_blocks, block_size, row_dim, dtype, nullptr);
}

Result<LatentKvCache> LatentKvCache::create_in(std::span<std::byte> memory, int64_t num_layers, int64_t num_blocks,
                                               int64_t block_size, int64_t row_dim, KvCacheDtype dtype) {
  K2_RETURN_IF_ERROR(create_check(num_layers, num_blocks, block_size, row_dim));
  if (memory.size() < bytes_needed(num_layers, num_blocks, block_size, row_dim, dtype))
    return invalid_argument("kv cache: the memory given is smaller than the cache");
  if (reinterpret_cast<uintptr_t>(memory.data()) % alignof(float) != 0)
    return invalid_argument("kv cache: the memory given is not float-aligned");
  return LatentKvCache(num_layers, num_blocks, block_size, row_dim, dtype, memory.data());
}

LatentKvCache::LatentKvCache(int64_t num_layers, int64_t num_blocks, int64_t block_size, int64_t row_dim,
                             KvCacheDtype dtype, std::byte* external)
    : num_layers_(num_layers), num_blocks_(num_blocks), block_size_(block_size), row_dim_(row_dim), dtype_(dtype) {
  if (external != nullptr) {
    data_ = external;
  } else {
    const uint64_t bytes = bytes_needed(num_layers, num_blocks, block_size, row_dim, dtype);
    storage_.assign(static_cast<size_t>((bytes + sizeof(float) - 1) / sizeof(float)), 0.0f);
    data_ = reinterpret_cast<std::byte*>(storage_.data());
  }
}

int64_t LatentKvCache::row_index(int64_t layer, std::span<const int32_t> block_table, int64_t position) const {
  K2_CHECK(layer >= 0 && layer < num_layers_, "kv cache: layer out of range");
  K2_CHECK(position >= 0 && position / block_size_ < static_cast<int64_t>(block_table.size()),
           "kv cache: position outside the block table");
  const int32_t block = block_table[static_cast<size_t>(position / block_size_)];
  K2_CHECK(block >= 0 && block < num_blocks_, "kv cache: block id out of range");
  return (layer * num_blocks_ + block) * block_size_ + position % block_size_;
}

const float* LatentKvCache::row(int64_t layer, std::span<const int32_t> block_table, int64_t position) const {
  K2_CHECK(dtype_ == KvCacheDtype::kFloat32, "kv cache: row() needs a float32 cache");
  return reinterpret_cast<const float*>(data_) + row_index(layer, block_table, position) * row_dim_;
}

float* LatentKvCache::row(int64_t layer, std::span<const int32_t> block_table, int64_t position) {
  return const_cast<float*>(std::as_const(*this).row(layer, block_table, position));
}

void LatentKvCache::write_row(int64_t layer, std::span<const int32_t> block_table, int64_t position,
                              const float* src) {
  const int64_t index = row_index(layer, block_table, position);
  switch (dtype_) {
    case KvCacheDtype::kFloat32: std::copy_n(src, row_dim_, reinterpret_cast<float*>(data_) + index * row_dim_); return;
    case KvCacheDtype::kFp8E4m3:
      ref::quantize_fp8_kv_row(src, row_dim_, reinterpret_cast<uint8_t*>(data_) + index * ref::fp8_kv_row_bytes(row_dim_));
      return;
    case KvCacheDtype::kBfloat16: break;
  }
  uint16_t* dst = reinterpret_cast<uint16_t*>(data_) + index * row_dim_;
  for (int64_t i = 0; i < row_dim_; ++i) dst[i] = cpu::to_bf16(src[i]);
}

void LatentKvCache::read_row(int64_t layer, std::span<const int32_t> block_table, int64_t position,
                             float* dst) const {
  const int64_t index = row_index(layer, block_table, position);
  switch (dtype_) {
    case KvCacheDtype::kFloat32: std::copy_n(reinterpret_cast<const float*>(data_) + index * row_dim_, row_dim_, dst); return;
    case KvCacheDtype::kFp8E4m3:
      ref::dequantize_fp8_kv_row(reinterpret_cast<const uint8_t*>(data_) + index * ref::fp8_kv_row_bytes(row_dim_),
                                 row_dim_, dst);
      return;
    case KvCacheDtype::kBfloat16: break;
  }
  const uint16_t* src = reinterpret_cast<const uint16_t*>(data_) + index * row_dim_;
  for (int64_t i = 0; i < row_dim_; ++i) dst[i] = cpu::from_bf16(src[i]);
}

ref::PagedLatentView LatentKvCache::layer_view(int64_t layer) const {
  K2_CHECK(layer >= 0 && layer < num_layers_, "kv cache: layer out of range");
  K2_CHECK(dtype_ == KvCacheDtype::kFloat32, "kv cache: layer_view() needs a float32 cache");
  return ref::PagedLatentView{reinterpret_cast<const float*>(data_) + layer * num_blocks_ * block_size_ * row_dim_,
                              num_blocks_, block_size_};
}

ref::PagedLatentBf16View LatentKvCache::layer_view_bf16(int64_t layer) const {
  K2_CHECK(layer >= 0 && layer < num_layers_, "kv cache: layer out of range");
  K2_CHECK(dtype_ == KvCacheDtype::kBfloat16, "kv cache: layer_view_bf16() needs a bf16 cache");
  return ref::PagedLatentBf16View{
      reinterpret_cast<const uint16_t*>(data_) + layer * num_blocks_ * block_size_ * row_dim_, num_blocks_,
      block_size_};
}

ref::PagedLatentFp8View LatentKvCache::layer_view_fp8(int64_t layer) const {
  K2_CHECK(layer >= 0 && layer < num_layers_, "kv cache: layer out of range");
  K2_CHECK(dtype_ == KvCacheDtype::kFp8E4m3, "kv cache: layer_view_fp8() needs an fp8 cache");
  return ref::PagedLatentFp8View{
      reinterpret_cast<const uint8_t*>(data_) + layer * num_blocks_ * block_size_ * ref::fp8_kv_row_bytes(row_dim_),
      num_blocks_, block_size_};
}

BlockAllocator::BlockAllocator(int64_t num_blocks) : in_use_(static_cast<size_t>(num_blocks), false) {
  // Handed out from the back: the first allocations get the highest ids, which keeps
  // tests honest about block tables not being the identity.
  for (int64_t b = 0; b < num_blocks; ++b) free_.push_back(static_cast<int32_t>(b));
}

Status BlockAllocator::grow(std::vector<int32_t>& table, int64_t tokens, int64_t block_size) {
  const int64_t needed = (tokens + block_size - 1) / block_size - static_cast<int64_t>(table.size());
  if (needed <= 0) return Status::ok_status();
  if (needed > num_free()) {
    return out_of_range("kv cache: " + std::to_string(needed) + " more blocks needed, " +
                        std::to_string(num_free()) + " free");
  }
  for (int64_t i = 0; i < needed; ++i) {
    table.push_back(free_.back());
    in_use_[static_cast<size_t>(free_.back())] = true;
    free_.pop_back();
  }
  return Status::ok_status();
}

void BlockAllocator::release(std::vector<int32_t>& table) {
  for (int32_t b : table) {
    K2_CHECK(b >= 0 && static_cast<size_t>(b) < in_use_.size() && in_use_[static_cast<size_t>(b)],
             "block allocator: releasing a block that is not in use");
    in_use_[static_cast<size_t>(b)] = false;
    free_.push_back(b);
  }
  table.clear();
}

}  // namespace k2
