// Writing safetensors files without holding them in memory: the header is computed from
// the tensor list up front, then each tensor's bytes are asked for in chunks and written.
//
// Layout as the reference implementation writes it: u64 little-endian header length, the
// JSON header (keys sorted, "__metadata__" included) padded with spaces to a multiple of 8,
// then the tensors back to back in the order given.
//
// Stateless functions; the producer is called from the calling thread only.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "shm/status.h"
#include "workers/loader/safetensors.h"

namespace k2::bench {

struct TensorLayout {
  std::string name;
  DType dtype = DType::kBF16;
  std::vector<int64_t> shape;
  uint64_t bytes() const;
};

// The header bytes (length prefix included) for tensors stored in this order.
std::string encode_safetensors_header(const std::vector<TensorLayout>& tensors,
                                      const std::map<std::string, std::string>& metadata);

// Fills `out` with bytes [offset, offset + out.size()) of tensor `index` (the position in
// the list given to write_safetensors).
using TensorBytes = std::function<void(size_t index, uint64_t offset, std::span<uint8_t> out)>;
// Called after each chunk with the number of tensor bytes just written.
using BytesWritten = std::function<void(uint64_t bytes)>;

// Writes `path` (replacing it). Chunks are at most `chunk_bytes` (a multiple of 8) long and
// never span two tensors. An I/O error names the file.
Status write_safetensors(const std::filesystem::path& path, const std::vector<TensorLayout>& tensors,
                         const std::map<std::string, std::string>& metadata, const TensorBytes& produce,
                         const BytesWritten& on_written, uint64_t chunk_bytes = 8ull << 20);

}  // namespace k2::bench
