#include "workers/kv_cache.h"

#include <string>
#include <utility>

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

Result<LatentKvCache> LatentKvCache::create(int64_t num_layers, int64_t num_blocks, int64_t block_size,
                                            int64_t row_dim) {
  K2_RETURN_IF_ERROR(create_check(num_layers, num_blocks, block_size, row_dim));
  return LatentKvCache(num_layers, num_blocks, block_size, row_dim, nullptr);
}

Result<LatentKvCache> LatentKvCache::create_in(std::span<std::byte> memory, int64_t num_layers, int64_t num_blocks,
                                               int64_t block_size, int64_t row_dim) {
  K2_RETURN_IF_ERROR(create_check(num_layers, num_blocks, block_size, row_dim));
  if (memory.size() < bytes_needed(num_layers, num_blocks, block_size, row_dim))
    return invalid_argument("kv cache: the memory given is smaller than the cache");
  if (reinterpret_cast<uintptr_t>(memory.data()) % alignof(float) != 0)
    return invalid_argument("kv cache: the memory given is not float-aligned");
  return LatentKvCache(num_layers, num_blocks, block_size, row_dim, reinterpret_cast<float*>(memory.data()));
}

LatentKvCache::LatentKvCache(int64_t num_layers, int64_t num_blocks, int64_t block_size, int64_t row_dim,
                             float* external)
    : num_layers_(num_layers), num_blocks_(num_blocks), block_size_(block_size), row_dim_(row_dim) {
  if (external != nullptr) {
    data_ = external;
  } else {
    storage_.assign(static_cast<size_t>(num_layers * num_blocks * block_size * row_dim), 0.0f);
    data_ = storage_.data();
  }
}

const float* LatentKvCache::row(int64_t layer, std::span<const int32_t> block_table, int64_t position) const {
  K2_CHECK(layer >= 0 && layer < num_layers_, "kv cache: layer out of range");
  K2_CHECK(position >= 0 && position / block_size_ < static_cast<int64_t>(block_table.size()),
           "kv cache: position outside the block table");
  const int32_t block = block_table[static_cast<size_t>(position / block_size_)];
  K2_CHECK(block >= 0 && block < num_blocks_, "kv cache: block id out of range");
  const int64_t index = ((layer * num_blocks_ + block) * block_size_ + position % block_size_) * row_dim_;
  return data_ + index;
}

float* LatentKvCache::row(int64_t layer, std::span<const int32_t> block_table, int64_t position) {
  return const_cast<float*>(std::as_const(*this).row(layer, block_table, position));
}

ref::PagedLatentView LatentKvCache::layer_view(int64_t layer) const {
  K2_CHECK(layer >= 0 && layer < num_layers_, "kv cache: layer out of range");
  return ref::PagedLatentView{data_ + layer * num_blocks_ * block_size_ * row_dim_, num_blocks_,
                              block_size_};
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
