// safetensors: header parsing and mmapped files. A parser of outside bytes: every
// malformed input is an error value naming the file and tensor, never a crash.
//
// Format: u64 little-endian header length N, N bytes of JSON
// ({name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {str: str}}), then the
// data section. Offsets are relative to the data section; as in the reference implementation
// the tensors must tile the data section exactly (no overlap, no hole, nothing after the last).
//
// SafetensorsFile owns one read-only mapping of the whole file; the pages are faulted in
// lazily by whoever reads a TensorView, so a file is never copied into memory. Immutable
// after open(): safe to read from any number of threads.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "shm/status.h"

namespace k2 {

enum class DType { kBF16, kF16, kF32, kF8E4M3, kI32, kI64, kU8, kI8 };
const char* dtype_name(DType dtype);  // the safetensors spelling: "BF16", "F8_E4M3", ...
size_t dtype_size(DType dtype);
// Parses the safetensors spelling; false for anything else.
bool parse_dtype(const std::string& name, DType* out);

// A tensor inside a mapped file: no ownership, valid while the file stays mapped.
// `data` has no alignment guarantee beyond what the file gives; read it with memcpy.
struct TensorView {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;
  uint64_t bytes = 0;
  int64_t numel() const;
};

struct TensorEntry {
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // offsets into the data section
};

struct SafetensorsHeader {
  std::map<std::string, TensorEntry> tensors;
  std::map<std::string, std::string> metadata;
  uint64_t data_offset = 0;  // 8 + header length
};

// The largest header accepted (the reference implementation's limit).
inline constexpr uint64_t kMaxSafetensorsHeaderBytes = 100ull << 20;

// Parses and validates a header against the total file size (`bytes` is the start of the
// file, `size` the whole file's size): JSON shape, known dtypes, shape x dtype = byte count,
// offsets in range, not overlapping and covering the data section.
Result<SafetensorsHeader> parse_safetensors_header(const uint8_t* bytes, uint64_t size);

// A read-only mmapped .safetensors file.
class SafetensorsFile {
 public:
  // Errors carry the path as context ("<path>: tensor 'x': ...").
  static Result<std::unique_ptr<SafetensorsFile>> open(const std::filesystem::path& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const SafetensorsHeader& header() const { return header_; }
  const std::filesystem::path& path() const { return path_; }
  uint64_t size() const { return size_; }
  bool has(const std::string& name) const { return header_.tensors.count(name) != 0; }
  Result<TensorView> view(const std::string& name) const;

  // The whole mapping (header included), for pre-faulting and for checking that views
  // point into it.
  const uint8_t* mapping() const { return map_; }

 private:
  SafetensorsFile() = default;
  std::filesystem::path path_;
  const uint8_t* map_ = nullptr;
  uint64_t size_ = 0;
  SafetensorsHeader header_;
};

}  // namespace k2
