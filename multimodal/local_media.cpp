#include "multimodal/local_media.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <string>

#include "multimodal/ascii.h"

namespace k2::mm {
namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}


Result<std::string> percent_decode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '%') {
      if (i + 2 >= s.size()) return invalid_argument("file URL: truncated percent escape");
      int hi = hex_value(s[i + 1]), lo = hex_value(s[i + 2]);
      if (hi < 0 || lo < 0) return invalid_argument("file URL: bad percent escape");
      c = static_cast<char>(hi * 16 + lo);
      i += 2;
    }
    if (c == '\0') return invalid_argument("file URL: NUL byte in path");
    out.push_back(c);
  }
  return out;
}

// realpath(3) wrapper: the canonical form of an existing path.
Result<std::string> canonical(const std::string& path) {
  char buf[PATH_MAX];
  if (::realpath(path.c_str(), buf) == nullptr) {
    const int err = errno;
    if (err == ENOENT || err == ENOTDIR) return not_found("no such file: " + path);
    return io_error("cannot resolve " + path + ": " + std::strerror(err));
  }
  return std::string(buf);
}

// `path` inside `root` by whole components ("/a/bc" is not inside "/a/b").
bool is_inside(const std::string& path, const std::string& root) {
  if (root == "/") return path.size() > 1 && path[0] == '/';
  return path.size() > root.size() && path.compare(0, root.size(), root) == 0 && path[root.size()] == '/';
}

int open_beneath(int dir_fd, const std::string& relative, const std::string& absolute) {
  struct open_how how;
  std::memset(&how, 0, sizeof(how));
  how.flags = O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
  long fd = ::syscall(SYS_openat2, dir_fd, relative.c_str(), &how, sizeof(how));
  if (fd >= 0 || (errno != ENOSYS && errno != EPERM)) return static_cast<int>(fd);
  // No openat2 (old kernel or a seccomp filter that does not know it).
  return ::open(absolute.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY | O_NOFOLLOW);
}

}  // namespace

bool is_file_url(std::string_view url) { return starts_with_ci(url, "file:"); }

Result<std::filesystem::path> file_url_path(std::string_view url) {
  if (!starts_with_ci(url, "file://")) return invalid_argument("not a file:// URL");
  url.remove_prefix(7);
  const size_t slash = url.find('/');
  if (slash == std::string_view::npos) return invalid_argument("file URL: missing path");
  std::string_view host = url.substr(0, slash);
  if (!host.empty() && !(host.size() == 9 && starts_with_ci(host, "localhost"))) {
    return invalid_argument("file URL: remote hosts are not allowed");
  }
  std::string_view raw = url.substr(slash);
  if (raw.find_first_of("?#") != std::string_view::npos) return invalid_argument("file URL: query or fragment");
  K2_ASSIGN_OR_RETURN(std::string path, percent_decode(raw));
  size_t start = 0;
  while (start < path.size()) {
    size_t next = path.find('/', start + 1);
    std::string_view seg = std::string_view(path).substr(start + 1, next == std::string::npos ? std::string::npos : next - start - 1);
    if (seg == ".." || seg == ".") return invalid_argument("file URL: '.' and '..' path segments are not allowed");
    if (next == std::string::npos) break;
    start = next;
  }
  return std::filesystem::path(path);
}

Result<LocalMediaDir> LocalMediaDir::open(const std::filesystem::path& dir) {
  K2_ASSIGN_OR_RETURN(std::string root, canonical(dir.string()));
  int fd = ::open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return io_error("--allowed-local-media-path " + dir.string() + ": " + std::strerror(errno));
  return LocalMediaDir(std::filesystem::path(root), fd);
}

LocalMediaDir::LocalMediaDir(LocalMediaDir&& other) noexcept : root_(std::move(other.root_)), dir_fd_(other.dir_fd_) {
  other.dir_fd_ = -1;
}

LocalMediaDir& LocalMediaDir::operator=(LocalMediaDir&& other) noexcept {
  if (this != &other) {
    if (dir_fd_ >= 0) ::close(dir_fd_);
    root_ = std::move(other.root_);
    dir_fd_ = other.dir_fd_;
    other.dir_fd_ = -1;
  }
  return *this;
}

LocalMediaDir::~LocalMediaDir() {
  if (dir_fd_ >= 0) ::close(dir_fd_);
}

Result<std::filesystem::path> LocalMediaDir::resolve(std::string_view file_url) const {
  K2_ASSIGN_OR_RETURN(std::filesystem::path path, file_url_path(file_url));
  K2_ASSIGN_OR_RETURN(std::string real, canonical(path.string()));
  if (!is_inside(real, root_.string())) {
    return invalid_argument("file URL points outside --allowed-local-media-path");
  }
  return std::filesystem::path(real);
}

Result<std::vector<uint8_t>> LocalMediaDir::read(std::string_view file_url, size_t max_bytes) const {
  K2_ASSIGN_OR_RETURN(std::filesystem::path path, resolve(file_url));
  const std::string abs = path.string();
  const std::string rel = root_.string() == "/" ? abs.substr(1) : abs.substr(root_.string().size() + 1);
  const int fd = open_beneath(dir_fd_, rel, abs);
  if (fd < 0) {
    if (errno == EXDEV || errno == ELOOP) return invalid_argument("file URL points outside --allowed-local-media-path");
    return io_error("cannot open " + abs + ": " + std::strerror(errno));
  }
  struct FdCloser {
    int fd;
    ~FdCloser() { ::close(fd); }
  } closer{fd};
  struct stat st;
  if (::fstat(fd, &st) != 0) return io_error("cannot stat " + abs + ": " + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) return invalid_argument("file URL does not name a regular file");
  if (static_cast<uint64_t>(st.st_size) > max_bytes) {
    return out_of_range("file is larger than " + std::to_string(max_bytes) + " bytes");
  }
  std::vector<uint8_t> data(static_cast<size_t>(st.st_size));
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::read(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return io_error("cannot read " + abs + ": " + std::strerror(errno));
    if (n == 0) break;  // the file shrank while we read it
    done += static_cast<size_t>(n);
  }
  data.resize(done);
  return data;
}

}  // namespace k2::mm
