// Segment: one named POSIX shared-memory object mapped into this process.
//
// Names follow `/k2serve-<owner pid>-<run id>-<name>` so that, when an owner dies without
// cleaning up (kill -9), a survivor or the next start can find and unlink the segments of
// dead owners (cleanup_stale_segments / remove_segments_of). The creating process owns the
// name and unlinks it in its destructor; peers only map it. A Segment owns its mapping (and,
// for the owner, the name). Move-only; the object itself is not synchronized, the memory it
// maps is synchronized by whatever lives in it (arena mutex, ring atomics).
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <string>
#include <string_view>

#include "shm/status.h"

namespace k2 {

inline constexpr std::string_view kSegmentPrefix = "k2serve-";

// A fresh random run id (16 hex chars) for this start of the server; shared by all
// processes of one run so their segment names do not collide with a previous run's.
std::string make_run_id();

// `/k2serve-<pid>-<run_id>-<name>`. run_id: [A-Za-z0-9_]; name: [A-Za-z0-9_.-]; both non-empty.
Result<std::string> segment_name(pid_t owner, std::string_view run_id, std::string_view name);

class Segment {
 public:
  // Creates (O_EXCL) and maps a zero-filled segment owned by this process. numa_node >= 0
  // binds its pages to that node when libnuma is available (a no-op otherwise; see numa_bound()).
  static Result<Segment> create(std::string_view run_id, std::string_view name, size_t bytes,
                                int numa_node = -1);
  // Maps an existing segment by its full name (as returned by name()). Does not own it.
  static Result<Segment> open(const std::string& full_name);

  Segment() = default;  // maps nothing
  Segment(Segment&& other) noexcept;
  Segment& operator=(Segment&& other) noexcept;
  Segment(const Segment&) = delete;
  Segment& operator=(const Segment&) = delete;
  ~Segment();

  std::byte* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& name() const { return name_; }
  bool is_owner() const { return owner_; }
  bool numa_bound() const { return numa_bound_; }

  // Removes the name now (the mapping stays valid); idempotent. Owners call it implicitly.
  void unlink();

 private:
  void release();

  std::byte* data_ = nullptr;
  size_t size_ = 0;
  std::string name_;
  bool owner_ = false;
  bool numa_bound_ = false;
};

// Unlinks every /dev/shm/k2serve-<pid>-* whose owner pid no longer exists. Returns how many
// were removed. A zombie still "exists": reap children first, or use remove_segments_of.
Result<int> cleanup_stale_segments();

// Unlinks every segment named for `owner` (for a parent that just saw that child die).
Result<int> remove_segments_of(pid_t owner);

}  // namespace k2
