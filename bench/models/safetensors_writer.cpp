#include "bench/models/safetensors_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

namespace k2::bench {
namespace {

Status write_all(int fd, const uint8_t* data, size_t n, const std::filesystem::path& path) {
  while (n > 0) {
    const ssize_t w = ::write(fd, data, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return io_error("writing " + path.string() + ": " + std::strerror(errno));
    }
    data += w;
    n -= static_cast<size_t>(w);
  }
  return Status::ok_status();
}

// Closes the descriptor on every path out of write_safetensors.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  int release() {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }

 private:
  int fd_;
};

}  // namespace

uint64_t TensorLayout::bytes() const {
  uint64_t n = dtype_size(dtype);
  for (int64_t d : shape) n *= static_cast<uint64_t>(d);
  return n;
}

std::string encode_safetensors_header(const std::vector<TensorLayout>& tensors,
                                      const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const TensorLayout& t : tensors) {
    const uint64_t end = offset + t.bytes();
    header[t.name] = {{"dtype", dtype_name(t.dtype)}, {"shape", t.shape}, {"data_offsets", {offset, end}}};
    offset = end;
  }
  std::string json = header.dump();
  json.append((8 - json.size() % 8) % 8, ' ');
  std::string out(8, '\0');
  uint64_t n = json.size();
  for (int i = 0; i < 8; ++i) out[static_cast<size_t>(i)] = static_cast<char>((n >> (8 * i)) & 0xFF);
  return out + json;
}

Status write_safetensors(const std::filesystem::path& path, const std::vector<TensorLayout>& tensors,
                         const std::map<std::string, std::string>& metadata, const TensorBytes& produce,
                         const BytesWritten& on_written, uint64_t chunk_bytes) {
  K2_CHECK(chunk_bytes >= 8 && chunk_bytes % 8 == 0, "chunk_bytes must be a positive multiple of 8");
  Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (fd.get() < 0) return io_error("cannot create " + path.string() + ": " + std::strerror(errno));
  const std::string header = encode_safetensors_header(tensors, metadata);
  K2_RETURN_IF_ERROR(write_all(fd.get(), reinterpret_cast<const uint8_t*>(header.data()), header.size(), path));
  std::vector<uint8_t> buffer;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const uint64_t total = tensors[i].bytes();
    for (uint64_t offset = 0; offset < total;) {
      const uint64_t n = std::min(chunk_bytes, total - offset);
      buffer.resize(n);
      produce(i, offset, std::span<uint8_t>(buffer.data(), n));
      K2_RETURN_IF_ERROR(write_all(fd.get(), buffer.data(), n, path));
      if (on_written) on_written(n);
      offset += n;
    }
  }
  if (::close(fd.release()) != 0) return io_error("closing " + path.string() + ": " + std::strerror(errno));
  return Status::ok_status();
}

}  // namespace k2::bench
