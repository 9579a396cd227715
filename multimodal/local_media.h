// file:// media under --allowed-local-media-path. A LocalMediaDir owns an O_PATH descriptor
// of the canonical allowed directory; it is immutable after open() and its methods may be
// called from any number of threads.
//
// Three layers keep a request inside the directory:
//   1. the URL's path must be absolute and may not contain "." or ".." segments at all;
//   2. the path's canonical form (realpath: every symlink resolved) must lie inside the
//      canonical allowed directory, compared by whole path components;
//   3. the file is opened relative to the directory with openat2(RESOLVE_BENEATH), so a
//      symlink swapped in after the check still cannot leave it. Kernels without openat2
//      fall back to O_NOFOLLOW on the canonical path (the final component only).
// Only regular files are read (no FIFOs, devices or directories), up to a byte cap.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string_view>
#include <vector>

#include "shm/status.h"

namespace k2::mm {

// True when `url` starts with the file: scheme (case-insensitive).
bool is_file_url(std::string_view url);

// The absolute, percent-decoded path of "file:///p" or "file://localhost/p". Rejects other
// hosts, queries and fragments, NUL bytes, relative paths and "."/".." segments.
Result<std::filesystem::path> file_url_path(std::string_view url);

class LocalMediaDir {
 public:
  // `dir` must exist and be a directory; it is canonicalised once here.
  static Result<LocalMediaDir> open(const std::filesystem::path& dir);
  LocalMediaDir(LocalMediaDir&& other) noexcept;
  LocalMediaDir& operator=(LocalMediaDir&& other) noexcept;
  LocalMediaDir(const LocalMediaDir&) = delete;
  LocalMediaDir& operator=(const LocalMediaDir&) = delete;
  ~LocalMediaDir();

  const std::filesystem::path& root() const { return root_; }

  // The canonical path a file:// URL names, if it lies inside root() (layers 1 and 2).
  Result<std::filesystem::path> resolve(std::string_view file_url) const;

  // resolve() and then read the regular file (layer 3); more than max_bytes is kOutOfRange.
  Result<std::vector<uint8_t>> read(std::string_view file_url, size_t max_bytes) const;

 private:
  LocalMediaDir(std::filesystem::path root, int fd) : root_(std::move(root)), dir_fd_(fd) {}
  std::filesystem::path root_;
  int dir_fd_ = -1;
};

}  // namespace k2::mm
