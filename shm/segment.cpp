#include "shm/segment.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>
#include <vector>

#ifdef K2_HAVE_NUMA
#include <numa.h>
#endif

namespace k2 {
namespace {

bool valid_chars(std::string_view s, bool allow_dash) {
  if (s.empty()) return false;
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
              (allow_dash && (c == '-' || c == '.'));
    if (!ok) return false;
  }
  return true;
}

std::string errno_text(const char* what, const std::string& name) {
  return std::string(what) + " " + name + ": " + std::strerror(errno);
}

// Parses the owner pid out of "k2serve-<pid>-..." (a /dev/shm entry, no leading slash).
bool owner_of(std::string_view entry, pid_t* pid) {
  if (entry.substr(0, kSegmentPrefix.size()) != kSegmentPrefix) return false;
  entry.remove_prefix(kSegmentPrefix.size());
  long long value = 0;
  size_t i = 0;
  for (; i < entry.size() && entry[i] >= '0' && entry[i] <= '9' && i < 10; ++i) value = value * 10 + (entry[i] - '0');
  if (i == 0 || i >= entry.size() || entry[i] != '-' || value <= 0) return false;
  *pid = static_cast<pid_t>(value);
  return true;
}

bool process_exists(pid_t pid) { return ::kill(pid, 0) == 0 || errno == EPERM; }

template <class Pred>
Result<int> unlink_matching(Pred pred) {
  DIR* dir = ::opendir("/dev/shm");
  if (dir == nullptr) return io_error(errno_text("opendir", "/dev/shm"));
  std::vector<std::string> victims;
  while (dirent* e = ::readdir(dir)) {
    pid_t pid = 0;
    if (owner_of(e->d_name, &pid) && pred(pid)) victims.emplace_back(e->d_name);
  }
  ::closedir(dir);
  int removed = 0;
  for (const auto& v : victims) {
    std::string path = "/";
    path += v;
    if (::shm_unlink(path.c_str()) == 0) ++removed;
  }
  return removed;
}

}  // namespace

std::string make_run_id() {
  std::random_device rd;
  uint64_t v = (static_cast<uint64_t>(rd()) << 32) ^ rd();
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

Result<std::string> segment_name(pid_t owner, std::string_view run_id, std::string_view name) {
  if (!valid_chars(run_id, false)) return invalid_argument("bad shm run id '" + std::string(run_id) + "'");
  if (!valid_chars(name, true)) return invalid_argument("bad shm segment name '" + std::string(name) + "'");
  // Built with append: g++ 12 mis-warns (-Wrestrict) on `"literal" + std::string` chains.
  std::string full = "/";
  full.append(kSegmentPrefix).append(std::to_string(owner)).append("-").append(run_id).append("-").append(name);
  if (full.size() > 200) return invalid_argument("shm segment name too long: " + full);
  return full;
}

Result<Segment> Segment::create(std::string_view run_id, std::string_view name, size_t bytes, int numa_node) {
  if (bytes == 0) return invalid_argument("shm segment of 0 bytes");
  K2_ASSIGN_OR_RETURN(std::string full, segment_name(::getpid(), run_id, name));
  int fd = ::shm_open(full.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
  if (fd < 0) return io_error(errno_text("shm_open", full));
  Segment seg;
  seg.name_ = full;
  seg.owner_ = true;  // from here on the destructor unlinks the name on any failure
  if (::ftruncate(fd, static_cast<off_t>(bytes)) != 0) {
    Status s = io_error(errno_text("ftruncate", full));
    ::close(fd);
    return s;
  }
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ::close(fd);
  if (p == MAP_FAILED) return io_error(errno_text("mmap", full));
  seg.data_ = static_cast<std::byte*>(p);
  seg.size_ = bytes;
#ifdef K2_HAVE_NUMA
  // Bind before first touch so the pages land on the node; shmem keeps the policy shared.
  if (numa_node >= 0 && numa_available() >= 0 && numa_node <= numa_max_node()) {
    numa_tonode_memory(p, bytes, numa_node);
    seg.numa_bound_ = true;
  }
#else
  (void)numa_node;
#endif
  return seg;
}

Result<Segment> Segment::open(const std::string& full_name) {
  pid_t pid = 0;
  if (full_name.size() < 2 || full_name[0] != '/' || !owner_of(std::string_view(full_name).substr(1), &pid))
    return invalid_argument("not a k2serve shm segment name: '" + full_name + "'");
  int fd = ::shm_open(full_name.c_str(), O_RDWR, 0);
  if (fd < 0) return errno == ENOENT ? not_found(errno_text("shm_open", full_name)) : io_error(errno_text("shm_open", full_name));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || st.st_size <= 0) {
    ::close(fd);
    return io_error("shm segment " + full_name + " has no size");
  }
  size_t bytes = static_cast<size_t>(st.st_size);
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ::close(fd);
  if (p == MAP_FAILED) return io_error(errno_text("mmap", full_name));
  Segment seg;
  seg.name_ = full_name;
  seg.data_ = static_cast<std::byte*>(p);
  seg.size_ = bytes;
  return seg;
}

Segment::Segment(Segment&& other) noexcept { *this = std::move(other); }

Segment& Segment::operator=(Segment&& other) noexcept {
  if (this != &other) {
    release();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    name_ = std::move(other.name_);
    owner_ = std::exchange(other.owner_, false);
    numa_bound_ = std::exchange(other.numa_bound_, false);
    other.name_.clear();
  }
  return *this;
}

Segment::~Segment() { release(); }

void Segment::unlink() {
  if (owner_ && !name_.empty()) ::shm_unlink(name_.c_str());
  owner_ = false;
}

void Segment::release() {
  if (data_ != nullptr) ::munmap(data_, size_);
  data_ = nullptr;
  size_ = 0;
  unlink();
}

Result<int> cleanup_stale_segments() {
  return unlink_matching([](pid_t pid) { return !process_exists(pid); });
}

Result<int> remove_segments_of(pid_t owner) {
  return unlink_matching([owner](pid_t pid) { return pid == owner; });
}

}  // namespace k2
