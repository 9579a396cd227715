// The paged latent KV cache of the float32 model path, and a minimal block allocator for
// the worker's own commands (golden-check, generate).
//
// LatentKvCache owns one array [layers, num_blocks, block_size, row] of float32, bf16 or fp8
// rows (vLLM's --kv-cache-dtype; bf16 halves the bytes a decode step reads, fp8 — e4m3 with a
// float32 scale per 64-element tile, kernels/ref/kv_fp8.h — nearly quarters them) — or views
// one in caller-owned shared memory — with
// row_dim = kv_lora_rank + qk_rope_head_dim: per token per layer one row
// [c_kv (normalised latent) | k_pe (rotated)]. Who owns which block is not its business:
// the model reads and writes the rows its callers' block tables point at. In serving, the
// enginecore's block manager hands out the tables; BlockAllocator is the stand-in for
// single-process commands.
//
// Neither type is thread-safe; a forward pass uses the cache from one thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "kernels/ref/mla.h"
#include "shm/status.h"

namespace k2 {

enum class KvCacheDtype { kFloat32, kBfloat16, kFp8E4m3 };

// vLLM's --kv-cache-dtype: "bfloat16" / "float32" / "fp8" (= "fp8_e4m3") force one. "auto" is
// float32 on both paths, unlike vLLM's model dtype: a bf16 latent cache flips 5 of the demo
// model's 196 held-out conversations at temperature 0 (tool_final_pair accuracy 26.7% -> 20%),
// beyond issue 9's 2-point budget, so the smaller caches are opt-in.
Result<KvCacheDtype> kv_cache_dtype_for(std::string_view name);
const char* kv_cache_dtype_name(KvCacheDtype dtype);
// Bytes of one cached row of row_dim values.
int64_t kv_cache_row_bytes(KvCacheDtype dtype, int64_t row_dim);

class LatentKvCache {
 public:
  // block_size must be a power of two; every count positive.
  static Result<LatentKvCache> create(int64_t num_layers, int64_t num_blocks, int64_t block_size, int64_t row_dim,
                                      KvCacheDtype dtype = KvCacheDtype::kFloat32);
  // The same layout over caller-owned memory (the worker's shared-memory KV segment), which
  // must hold bytes_needed() bytes, be float-aligned and outlive the cache. Not zeroed here.
  static Result<LatentKvCache> create_in(std::span<std::byte> memory, int64_t num_layers, int64_t num_blocks,
                                         int64_t block_size, int64_t row_dim,
                                         KvCacheDtype dtype = KvCacheDtype::kFloat32);
  static uint64_t bytes_needed(int64_t num_layers, int64_t num_blocks, int64_t block_size, int64_t row_dim,
                               KvCacheDtype dtype = KvCacheDtype::kFloat32) {
    return static_cast<uint64_t>(num_layers * num_blocks * block_size * kv_cache_row_bytes(dtype, row_dim));
  }

  LatentKvCache(LatentKvCache&& other) noexcept = default;
  LatentKvCache& operator=(LatentKvCache&& other) noexcept = default;
  LatentKvCache(const LatentKvCache&) = delete;
  LatentKvCache& operator=(const LatentKvCache&) = delete;

  int64_t num_layers() const { return num_layers_; }
  int64_t num_blocks() const { return num_blocks_; }
  int64_t block_size() const { return block_size_; }
  int64_t row_dim() const { return row_dim_; }
  KvCacheDtype dtype() const { return dtype_; }

  // The row of `position` of a sequence with this block table (which must cover it), as
  // stored: float32 caches only.
  float* row(int64_t layer, std::span<const int32_t> block_table, int64_t position);
  const float* row(int64_t layer, std::span<const int32_t> block_table, int64_t position) const;
  // Any dtype: stores row_dim floats (rounded to nearest even for bf16, quantised for fp8),
  // or reads them back.
  void write_row(int64_t layer, std::span<const int32_t> block_table, int64_t position, const float* src);
  void read_row(int64_t layer, std::span<const int32_t> block_table, int64_t position, float* dst) const;
  ref::PagedLatentView layer_view(int64_t layer) const;            // float32 caches
  ref::PagedLatentBf16View layer_view_bf16(int64_t layer) const;   // bf16 caches
  ref::PagedLatentFp8View layer_view_fp8(int64_t layer) const;     // fp8 caches

  // Blocks needed to hold `tokens` positions.
  int64_t blocks_for(int64_t tokens) const { return (tokens + block_size_ - 1) / block_size_; }

 private:
  LatentKvCache(int64_t num_layers, int64_t num_blocks, int64_t block_size, int64_t row_dim, KvCacheDtype dtype,
                std::byte* external);
  // Index of the row among all layers' rows (checked against layer, table and block range).
  int64_t row_index(int64_t layer, std::span<const int32_t> block_table, int64_t position) const;
  int64_t num_layers_, num_blocks_, block_size_, row_dim_;
  KvCacheDtype dtype_;
  std::vector<float> storage_;  // empty when the memory is external
  std::byte* data_ = nullptr;   // storage_.data() or the external memory (a moved vector keeps its buffer)
};

// Hands out block ids 0..num_blocks-1; freed ids are reused (lowest first is not promised).
class BlockAllocator {
 public:
  explicit BlockAllocator(int64_t num_blocks);
  int64_t num_free() const { return static_cast<int64_t>(free_.size()); }

  // Appends blocks to `table` until it holds `tokens` positions; fails (leaving the table
  // as it was) when too few blocks are free.
  Status grow(std::vector<int32_t>& table, int64_t tokens, int64_t block_size);
  // Returns every block of `table` and clears it.
  void release(std::vector<int32_t>& table);

 private:
  std::vector<int32_t> free_;
  std::vector<bool> in_use_;
};

}  // namespace k2
