#include "workers/loader/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

namespace k2 {
namespace {

using nlohmann::json;

struct DTypeInfo {
  DType dtype;
  const char* name;
  size_t size;
};

constexpr DTypeInfo kDTypes[] = {
    {DType::kBF16, "BF16", 2}, {DType::kF16, "F16", 2}, {DType::kF32, "F32", 4},
    {DType::kF8E4M3, "F8_E4M3", 1}, {DType::kI32, "I32", 4}, {DType::kI64, "I64", 8},
    {DType::kU8, "U8", 1}, {DType::kI8, "I8", 1},
};

const DTypeInfo& info(DType dtype) {
  for (const DTypeInfo& d : kDTypes) {
    if (d.dtype == dtype) return d;
  }
  K2_CHECK(false, "DType value outside the enum");
  return kDTypes[0];
}

std::string tensor_label(const std::string& name) { return "tensor '" + name + "'"; }

// A JSON number that is a non-negative integer; floats ("2.0") and negatives are rejected
// because a shape or an offset is a count, never a measurement.
bool as_count(const json& value, uint64_t* out) {
  if (value.is_number_unsigned()) {
    *out = value.get<uint64_t>();
    return true;
  }
  if (value.is_number_integer() && value.get<int64_t>() >= 0) {
    *out = static_cast<uint64_t>(value.get<int64_t>());
    return true;
  }
  return false;
}

Status parse_shape(const std::string& name, const json& shape, TensorEntry* entry, uint64_t* numel) {
  if (!shape.is_array()) return corrupt(tensor_label(name) + ": 'shape' is not an array");
  *numel = 1;
  for (const json& dim : shape) {
    uint64_t d = 0;
    // Bound each dimension so the shape fits int64_t and numel arithmetic stays exact.
    if (!as_count(dim, &d) || d > (uint64_t{1} << 62)) {
      return corrupt(tensor_label(name) + ": shape value " + dim.dump() + " is not a non-negative integer");
    }
    entry->shape.push_back(static_cast<int64_t>(d));
    if (__builtin_mul_overflow(*numel, d, numel)) {
      return corrupt(tensor_label(name) + ": shape " + shape.dump() + " overflows the element count");
    }
  }
  return Status::ok_status();
}

Result<TensorEntry> parse_entry(const std::string& name, const json& value, uint64_t data_bytes) {
  if (!value.is_object()) return corrupt(tensor_label(name) + ": entry is not an object");
  TensorEntry entry;
  auto dtype = value.find("dtype");
  if (dtype == value.end() || !dtype->is_string()) return corrupt(tensor_label(name) + ": 'dtype' missing or not a string");
  if (!parse_dtype(dtype->get<std::string>(), &entry.dtype)) {
    return corrupt(tensor_label(name) + ": unknown dtype '" + dtype->get<std::string>() + "'");
  }
  auto shape = value.find("shape");
  if (shape == value.end()) return corrupt(tensor_label(name) + ": 'shape' missing");
  uint64_t numel = 0;
  K2_RETURN_IF_ERROR(parse_shape(name, *shape, &entry, &numel));

  auto offsets = value.find("data_offsets");
  if (offsets == value.end() || !offsets->is_array() || offsets->size() != 2 ||
      !as_count((*offsets)[0], &entry.begin) || !as_count((*offsets)[1], &entry.end)) {
    return corrupt(tensor_label(name) + ": 'data_offsets' is not a pair of non-negative integers");
  }
  if (entry.end < entry.begin) {
    return corrupt(tensor_label(name) + ": data_offsets " + offsets->dump() + " end before begin");
  }
  if (entry.end > data_bytes) {
    return corrupt(tensor_label(name) + ": data_offsets " + offsets->dump() + " out of range: the data section has " +
                   std::to_string(data_bytes) + " bytes (file truncated?)");
  }
  uint64_t bytes = 0;
  if (__builtin_mul_overflow(numel, dtype_size(entry.dtype), &bytes) || bytes != entry.end - entry.begin) {
    return corrupt(tensor_label(name) + ": shape " + shape->dump() + " x " + dtype_name(entry.dtype) + " needs " +
                   std::to_string(numel) + " x " + std::to_string(dtype_size(entry.dtype)) + " bytes but data_offsets " +
                   offsets->dump() + " hold " + std::to_string(entry.end - entry.begin));
  }
  return entry;
}

Status parse_metadata(const json& value, SafetensorsHeader* header) {
  if (value.is_null()) return Status::ok_status();
  if (!value.is_object()) return corrupt("'__metadata__' is not an object");
  for (const auto& [key, v] : value.items()) {
    // The format says string to string; other producers occasionally write numbers, which
    // are kept as their JSON text rather than rejecting an otherwise valid file.
    header->metadata[key] = v.is_string() ? v.get<std::string>() : v.dump();
  }
  return Status::ok_status();
}

// The tensors must tile [0, data_bytes): sorted by begin, each starts where the last ended.
Status check_tiling(const SafetensorsHeader& header, uint64_t data_bytes) {
  std::vector<std::pair<const std::string*, const TensorEntry*>> order;
  order.reserve(header.tensors.size());
  for (const auto& [name, entry] : header.tensors) order.emplace_back(&name, &entry);
  std::sort(order.begin(), order.end(), [](const auto& a, const auto& b) {
    return std::tie(a.second->begin, a.second->end) < std::tie(b.second->begin, b.second->end);
  });
  uint64_t expected = 0;
  const std::string* previous = nullptr;
  for (const auto& [name, entry] : order) {
    if (entry->begin < expected) {
      return corrupt(tensor_label(*name) + ": data_offsets [" + std::to_string(entry->begin) + ", " +
                     std::to_string(entry->end) + "] overlap " + tensor_label(*previous) + " (ends at " +
                     std::to_string(expected) + ")");
    }
    if (entry->begin > expected) {
      return corrupt(tensor_label(*name) + ": data_offsets begin at " + std::to_string(entry->begin) +
                     " leaving a hole after " + (previous ? tensor_label(*previous) : std::string("the header")) +
                     " (which ends at " + std::to_string(expected) + ")");
    }
    expected = entry->end;
    previous = name;
  }
  if (expected != data_bytes) {
    return corrupt("the data section has " + std::to_string(data_bytes) + " bytes but the tensors cover only " +
                   std::to_string(expected) + (previous ? " (last: " + tensor_label(*previous) + ")" : std::string()));
  }
  return Status::ok_status();
}

}  // namespace

const char* dtype_name(DType dtype) { return info(dtype).name; }
size_t dtype_size(DType dtype) { return info(dtype).size; }

bool parse_dtype(const std::string& name, DType* out) {
  for (const DTypeInfo& d : kDTypes) {
    if (name == d.name) {
      *out = d.dtype;
      return true;
    }
  }
  return false;
}

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

Result<SafetensorsHeader> parse_safetensors_header(const uint8_t* bytes, uint64_t size) {
  if (size < 8) return corrupt("file has " + std::to_string(size) + " bytes, too short for the 8-byte header length");
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | bytes[i];
  if (header_len > size - 8) {
    return corrupt("header length " + std::to_string(header_len) + " runs past the end of the file (" +
                   std::to_string(size) + " bytes)");
  }
  if (header_len > kMaxSafetensorsHeaderBytes) {
    return corrupt("header length " + std::to_string(header_len) + " exceeds the limit of " +
                   std::to_string(kMaxSafetensorsHeaderBytes));
  }
  const char* text = reinterpret_cast<const char*>(bytes + 8);
  json root = json::parse(text, text + header_len, nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded()) return corrupt("header is not valid JSON");
  if (!root.is_object()) return corrupt("header is not a JSON object");

  SafetensorsHeader header;
  header.data_offset = 8 + header_len;
  const uint64_t data_bytes = size - header.data_offset;
  for (const auto& [name, value] : root.items()) {
    if (name == "__metadata__") {
      K2_RETURN_IF_ERROR(parse_metadata(value, &header));
      continue;
    }
    K2_ASSIGN_OR_RETURN(TensorEntry entry, parse_entry(name, value, data_bytes));
    header.tensors.emplace(name, std::move(entry));
  }
  K2_RETURN_IF_ERROR(check_tiling(header, data_bytes));
  return header;
}

Result<std::unique_ptr<SafetensorsFile>> SafetensorsFile::open(const std::filesystem::path& path) {
  const std::string where = path.string();
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    Status s(errno == ENOENT ? Code::kNotFound : Code::kIo, std::strerror(errno));
    return s.with_context(where);
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    Status s = io_error(std::string("fstat: ") + std::strerror(errno));
    ::close(fd);
    return s.with_context(where);
  }
  std::unique_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->path_ = path;
  file->size_ = static_cast<uint64_t>(st.st_size);
  if (file->size_ < 8) {
    ::close(fd);
    return corrupt("file has " + std::to_string(file->size_) + " bytes, too short for the 8-byte header length")
        .with_context(where);
  }
  void* map = ::mmap(nullptr, file->size_, PROT_READ, MAP_PRIVATE, fd, 0);
  const int map_errno = errno;
  ::close(fd);  // the mapping keeps the file alive
  if (map == MAP_FAILED) return io_error(std::string("mmap: ") + std::strerror(map_errno)).with_context(where);
  file->map_ = static_cast<const uint8_t*>(map);

  auto header = parse_safetensors_header(file->map_, file->size_);
  if (!header.ok()) return header.status().with_context(where);
  file->header_ = std::move(header).value();
  return file;
}

SafetensorsFile::~SafetensorsFile() {
  if (map_ != nullptr) ::munmap(const_cast<uint8_t*>(map_), size_);
}

Result<TensorView> SafetensorsFile::view(const std::string& name) const {
  auto it = header_.tensors.find(name);
  if (it == header_.tensors.end()) return not_found(path_.string() + ": " + tensor_label(name) + " not found");
  const TensorEntry& e = it->second;
  TensorView v;
  v.name = name;
  v.dtype = e.dtype;
  v.shape = e.shape;
  v.data = map_ + header_.data_offset + e.begin;
  v.bytes = e.end - e.begin;
  return v;
}

}  // namespace k2
