#include "workers/parallel/shm_communicator.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <new>
#include <thread>

#include "shm/futex.h"

namespace k2 {
namespace {

constexpr uint64_t kMagic = 0x4b32434f4d4d3031;  // "K2COMM01"
constexpr int kMaxRanks = 64;
constexpr int kSpins = 4096;  // busy-wait this long before sleeping on the futex

}  // namespace

struct ShmCommunicator::Header {
  uint64_t magic;
  uint32_t size;
  uint32_t pad;
  uint64_t capacity;
  alignas(64) std::atomic<uint32_t> arrived;
  alignas(64) std::atomic<uint32_t> generation;  // the futex word of the barrier
  std::atomic<uint32_t> aborted;
  alignas(64) uint64_t lengths[kMaxRanks];       // each rank's all_reduce length, per call
};

namespace {

size_t header_bytes() { return (sizeof(ShmCommunicator::Header) + 63) / 64 * 64; }

}  // namespace

ShmCommunicator::ShmCommunicator(Segment segment, int rank, CommOptions options)
    : segment_(std::move(segment)), rank_(rank), options_(options) {
  size_ = static_cast<int>(header().size);
  capacity_ = header().capacity;
}

ShmCommunicator::~ShmCommunicator() = default;

ShmCommunicator::Header& ShmCommunicator::header() const {
  return *std::launder(reinterpret_cast<Header*>(segment_.data()));
}

float* ShmCommunicator::slot(int rank) const {
  return reinterpret_cast<float*>(segment_.data() + header_bytes()) + static_cast<size_t>(rank) * capacity_;
}

Result<std::unique_ptr<ShmCommunicator>> ShmCommunicator::create(std::string_view run_id, std::string_view name,
                                                                 int size, ShmCommOptions options) {
  if (size < 1 || size > kMaxRanks) {
    return invalid_argument("shm communicator: group size must be in [1, " + std::to_string(kMaxRanks) + "]");
  }
  if (options.capacity == 0) return invalid_argument("shm communicator: slot capacity must be positive");
  const size_t bytes = header_bytes() + static_cast<size_t>(size) * options.capacity * sizeof(float);
  K2_ASSIGN_OR_RETURN(Segment segment, Segment::create(run_id, name, bytes));
  // Peers learn the name only from segment_name() after this returns, so plain stores suffice.
  Header* h = new (segment.data()) Header{};
  h->size = static_cast<uint32_t>(size);
  h->capacity = options.capacity;
  // Last, with release: open() reads it with acquire before anything else of the header.
  std::atomic_ref<uint64_t>(h->magic).store(kMagic, std::memory_order_release);
  return std::unique_ptr<ShmCommunicator>(new ShmCommunicator(std::move(segment), 0, options));
}

Result<std::unique_ptr<ShmCommunicator>> ShmCommunicator::open(const std::string& segment_name, int rank,
                                                               CommOptions options) {
  K2_ASSIGN_OR_RETURN(Segment segment, Segment::open(segment_name));
  if (segment.size() < header_bytes()) return corrupt("shm communicator " + segment_name + ": segment too small");
  Header* h = std::launder(reinterpret_cast<Header*>(segment.data()));
  const uint64_t magic = std::atomic_ref<uint64_t>(h->magic).load(std::memory_order_acquire);
  if (magic == 0) return unavailable("shm communicator " + segment_name + ": rank 0 is still initializing it");
  if (magic != kMagic || h->size < 1 || h->size > kMaxRanks || h->capacity == 0 ||
      segment.size() < header_bytes() + h->size * h->capacity * sizeof(float)) {
    return corrupt("shm communicator " + segment_name + ": not a communicator segment");
  }
  if (rank < 1 || rank >= static_cast<int>(h->size)) {
    return invalid_argument("shm communicator: rank " + std::to_string(rank) + " cannot open a group of " +
                            std::to_string(h->size) + " (rank 0 creates it)");
  }
  return std::unique_ptr<ShmCommunicator>(new ShmCommunicator(std::move(segment), rank, options));
}

namespace {

// The one /dev/shm entry named k2serve-<pid>-<run_id>-<name> with a complete header (a run id
// is unique to its run, so at most one matches). not_found while there is none yet.
Result<std::string> find_created_segment(std::string_view run_id, std::string_view name) {
  // Built with append: g++ 12 mis-warns (-Wrestrict) on `"literal" + std::string` chains.
  std::string suffix = "-";
  suffix.append(run_id).append("-").append(name);
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/dev/shm", ec)) {
    const std::string file = entry.path().filename().string();
    if (!file.starts_with(kSegmentPrefix) || !file.ends_with(suffix)) continue;
    std::error_code size_ec;
    if (entry.file_size(size_ec) < header_bytes() || size_ec) continue;  // not sized yet
    return "/" + file;
  }
  if (ec) return io_error("cannot list /dev/shm: " + ec.message());
  return not_found("no shm segment " + suffix.substr(1) + " yet");
}

}  // namespace

Result<std::unique_ptr<ShmCommunicator>> ShmCommunicator::open_when_created(std::string_view run_id,
                                                                            std::string_view name, int rank,
                                                                            std::chrono::milliseconds wait,
                                                                            CommOptions options) {
  const auto deadline = std::chrono::steady_clock::now() + wait;
  while (true) {
    Result<std::string> found = find_created_segment(run_id, name);
    Result<std::unique_ptr<ShmCommunicator>> comm =
        found.ok() ? open(*found, rank, options) : Result<std::unique_ptr<ShmCommunicator>>(found.status());
    if (comm.ok()) return comm;
    // Rank 0 may still be starting (not_found) or writing the header (unavailable); the
    // segment may also vanish between listing and opening (not_found).
    const Code code = comm.status().code();
    if ((code != Code::kNotFound && code != Code::kUnavailable) || std::chrono::steady_clock::now() > deadline) {
      return comm.status().with_context("waiting " + std::to_string(wait.count()) + " ms for rank 0 of the " +
                                        std::string(name) + " group");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

// Generation-counted barrier over futex words shared by the processes.
Status ShmCommunicator::wait_all() {
  Header& h = header();
  if (broken_) return unavailable("shm communicator is broken by an earlier failure");
  if (h.aborted.load(std::memory_order_acquire) != 0) {
    broken_ = true;
    return unavailable("shm communicator: another rank gave up on the group");
  }
  const uint32_t gen = h.generation.load(std::memory_order_acquire);
  if (h.arrived.fetch_add(1, std::memory_order_acq_rel) + 1 == static_cast<uint32_t>(size_)) {
    h.arrived.store(0, std::memory_order_relaxed);
    h.generation.fetch_add(1, std::memory_order_acq_rel);
    shm_detail::futex_wake_all(&h.generation);
    return Status::ok_status();
  }
  using Clock = std::chrono::steady_clock;
  const Clock::time_point deadline = Clock::now() + options_.timeout;
  for (int spin = 0; h.generation.load(std::memory_order_acquire) == gen; ++spin) {
    if (h.aborted.load(std::memory_order_acquire) != 0) {
      broken_ = true;
      return unavailable("shm communicator: another rank gave up on the group");
    }
    if (spin < kSpins) {
      shm_detail::cpu_relax();
      continue;
    }
    const Clock::time_point now = Clock::now();
    if (now >= deadline) {
      broken_ = true;
      h.aborted.store(1, std::memory_order_release);
      shm_detail::futex_wake_all(&h.generation);
      return unavailable("shm communicator: a rank did not reach the collective within " +
                         std::to_string(options_.timeout.count()) + " ms");
    }
    // Short sleeps, so a raised abort flag (which does not change the futex word) is seen soon.
    shm_detail::futex_wait(&h.generation, gen, std::min<Clock::duration>(deadline - now, std::chrono::milliseconds(50)));
  }
  return Status::ok_status();
}

Status ShmCommunicator::barrier() { return wait_all(); }

Status ShmCommunicator::all_reduce_sum(std::span<float> data) {
  if (size_ == 1) return broken_ ? unavailable("shm communicator is broken") : Status::ok_status();
  Header& h = header();
  const size_t n = data.size();
  h.lengths[rank_] = n;
  for (size_t offset = 0, chunk_index = 0; offset < n || chunk_index == 0; offset += capacity_, ++chunk_index) {
    const size_t len = std::min(capacity_, n - offset);
    std::copy_n(data.data() + offset, len, slot(rank_));
    K2_RETURN_IF_ERROR(wait_all());
    if (chunk_index == 0) {
      // Every rank reads the same lengths, so all of them fail here together.
      for (int r = 0; r < size_; ++r) {
        if (h.lengths[r] != n) {
          K2_RETURN_IF_ERROR(wait_all());  // nobody rewrites a length before all have looked
          return invalid_argument("all_reduce_sum: the ranks passed different lengths");
        }
      }
    }
    float* out = data.data() + offset;
    std::copy_n(slot(0), len, out);
    for (int r = 1; r < size_; ++r) {
      const float* in = slot(r);
      for (size_t i = 0; i < len; ++i) out[i] += in[i];
    }
    K2_RETURN_IF_ERROR(wait_all());
    if (n == 0) break;
  }
  return Status::ok_status();
}

}  // namespace k2
