#include "shm/arena.h"

#include <pthread.h>
#include <unistd.h>

#include <atomic>
#include <bit>
#include <cerrno>
#include <cstring>
#include <new>

namespace k2 {
namespace {

constexpr uint64_t kArenaMagic = 0x4b324152454e4131ull;  // "K2ARENA1"
constexpr uint32_t kBlockMagic = 0x4b32424bu;            // "K2BK"
constexpr uint32_t kArenaVersion = 1;
constexpr int kNumClasses = 48;

// Precedes every block's data; exactly one minimum block long so data stays 64-aligned.
struct BlockHeader {
  std::atomic<uint64_t> generation;
  uint64_t capacity;
  uint64_t next_free;  // block offset of the next free block of this class; 0 = end
  uint32_t size_class;
  uint32_t magic;
  uint8_t pad[32];
};
static_assert(sizeof(BlockHeader) == Arena::kMinBlock);
static_assert(std::atomic<uint64_t>::is_always_lock_free);

size_t class_capacity(int cls) { return Arena::kMinBlock << cls; }

int class_for(size_t bytes) {
  size_t need = bytes < Arena::kMinBlock ? Arena::kMinBlock : bytes;
  int cls = std::bit_width(need - 1) - std::bit_width(Arena::kMinBlock - 1);
  return cls < 0 ? 0 : cls;
}

}  // namespace

struct Arena::Header {
  std::atomic<uint64_t> magic;  // written last by the creator: peers see a complete header
  uint32_t version;
  uint32_t pad;
  uint64_t arena_id;
  uint64_t total_bytes;
  uint64_t data_begin;
  pthread_mutex_t mutex;
  std::atomic<uint64_t> bump;  // end of the carved region; grows under the mutex
  uint64_t bytes_in_use;
  uint64_t free_heads[kNumClasses];
};

namespace {

// Locks the arena's robust mutex; a holder that died mid-operation leaves at most a lost
// block (operations update the free list last), so the state is declared consistent.
class ArenaLock {
 public:
  explicit ArenaLock(pthread_mutex_t* m) : m_(m) {
    if (pthread_mutex_lock(m_) == EOWNERDEAD) pthread_mutex_consistent(m_);
  }
  ~ArenaLock() { pthread_mutex_unlock(m_); }
  ArenaLock(const ArenaLock&) = delete;
  ArenaLock& operator=(const ArenaLock&) = delete;

 private:
  pthread_mutex_t* m_;
};

BlockHeader* block_at(std::byte* base, uint64_t block_offset) {
  return reinterpret_cast<BlockHeader*>(base + block_offset);
}

}  // namespace

Arena::Arena(Segment segment) : segment_(std::move(segment)) {}
Arena::Arena(Arena&&) noexcept = default;
Arena& Arena::operator=(Arena&&) noexcept = default;
Arena::~Arena() = default;

Arena::Header* Arena::header() const { return reinterpret_cast<Header*>(segment_.data()); }

Result<Arena> Arena::create(const ArenaOptions& o) {
  constexpr size_t kHeaderBytes = (sizeof(Header) + kMinBlock - 1) / kMinBlock * kMinBlock;
  if (o.bytes < kHeaderBytes + 2 * kMinBlock) return invalid_argument("arena too small: " + std::to_string(o.bytes));
  K2_ASSIGN_OR_RETURN(Segment seg, Segment::create(o.run_id, o.name, o.bytes, o.numa_node));
  auto* h = new (seg.data()) Header;
  h->version = kArenaVersion;
  h->arena_id = o.arena_id;
  h->total_bytes = o.bytes;
  h->data_begin = kHeaderBytes;
  h->bump.store(kHeaderBytes, std::memory_order_relaxed);
  h->bytes_in_use = 0;
  std::memset(h->free_heads, 0, sizeof(h->free_heads));
  pthread_mutexattr_t attr;
  pthread_mutexattr_init(&attr);
  pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
  pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
  int rc = pthread_mutex_init(&h->mutex, &attr);
  pthread_mutexattr_destroy(&attr);
  if (rc != 0) return io_error("pthread_mutex_init for arena " + seg.name() + ": " + std::strerror(rc));
  h->magic.store(kArenaMagic, std::memory_order_release);
  return Arena(std::move(seg));
}

Result<Arena> Arena::open(const std::string& segment_name) {
  K2_ASSIGN_OR_RETURN(Segment seg, Segment::open(segment_name));
  if (seg.size() < sizeof(Header)) return corrupt("shm arena " + segment_name + " is too small");
  auto* h = reinterpret_cast<Header*>(seg.data());
  if (h->magic.load(std::memory_order_acquire) != kArenaMagic)
    return unavailable("shm arena " + segment_name + " is not initialized (yet)");
  if (h->version != kArenaVersion) return corrupt("shm arena " + segment_name + " has layout version " +
                                                  std::to_string(h->version));
  if (h->total_bytes != seg.size()) return corrupt("shm arena " + segment_name + " size mismatch");
  return Arena(std::move(seg));
}

uint64_t Arena::id() const { return header()->arena_id; }

size_t Arena::bytes_in_use() const {
  ArenaLock lock(&header()->mutex);
  return header()->bytes_in_use;
}

Result<ShmHandle> Arena::allocate(size_t bytes) {
  Header* h = header();
  int cls = class_for(bytes);
  if (cls >= kNumClasses || class_capacity(cls) > h->total_bytes)
    return invalid_argument("arena " + name() + ": block of " + std::to_string(bytes) + " bytes cannot fit");
  size_t cap = class_capacity(cls);
  std::byte* base = segment_.data();
  ArenaLock lock(&h->mutex);
  uint64_t block = h->free_heads[cls];
  if (block != 0) {
    h->free_heads[cls] = block_at(base, block)->next_free;
  } else {
    uint64_t end = h->bump.load(std::memory_order_relaxed);
    if (h->total_bytes - end < kMinBlock + cap)
      return unavailable("arena " + name() + " is full (" + std::to_string(bytes) + " bytes requested)");
    block = end;
    BlockHeader* b = new (base + block) BlockHeader;
    b->generation.store(1, std::memory_order_relaxed);
    b->capacity = cap;
    b->size_class = static_cast<uint32_t>(cls);
    b->magic = kBlockMagic;
    h->bump.store(end + kMinBlock + cap, std::memory_order_release);
  }
  BlockHeader* b = block_at(base, block);
  b->next_free = 0;
  h->bytes_in_use += cap;
  return ShmHandle{h->arena_id, block + kMinBlock, bytes, b->generation.load(std::memory_order_relaxed)};
}

Result<uint64_t> Arena::check(const ShmHandle& handle) const {
  const Header* h = header();
  if (handle.arena_id != h->arena_id)
    return invalid_argument("handle for arena " + std::to_string(handle.arena_id) + " used on arena " +
                            std::to_string(h->arena_id));
  uint64_t carved = h->bump.load(std::memory_order_acquire);
  if (handle.offset < h->data_begin + kMinBlock || handle.offset % kMinBlock != 0 || handle.offset >= carved)
    return out_of_range("handle offset " + std::to_string(handle.offset) + " outside arena " + name());
  uint64_t block = handle.offset - kMinBlock;
  const BlockHeader* b = block_at(segment_.data(), block);
  if (b->magic != kBlockMagic || b->size_class >= kNumClasses || b->capacity != class_capacity(b->size_class) ||
      b->capacity > carved - handle.offset)
    return corrupt("handle offset " + std::to_string(handle.offset) + " is not a block of arena " + name());
  if (handle.bytes > b->capacity) return out_of_range("handle claims more bytes than its block holds");
  uint64_t gen = b->generation.load(std::memory_order_acquire);
  if (gen != handle.generation)
    return invalid_argument("stale handle: generation " + std::to_string(handle.generation) + ", block is at " +
                            std::to_string(gen));
  return block;
}

Status Arena::free(const ShmHandle& handle) {
  K2_ASSIGN_OR_RETURN(uint64_t block, check(handle));
  Header* h = header();
  BlockHeader* b = block_at(segment_.data(), block);
  ArenaLock lock(&h->mutex);
  // Re-check under the lock: two racing frees of one handle must not both succeed.
  uint64_t expected = handle.generation;
  if (!b->generation.compare_exchange_strong(expected, expected + 1, std::memory_order_acq_rel))
    return invalid_argument("double free or stale handle in arena " + name());
  b->next_free = h->free_heads[b->size_class];
  h->free_heads[b->size_class] = block;
  h->bytes_in_use -= b->capacity;
  return Status::ok_status();
}

Result<ShmHandle> Arena::store(std::span<const std::byte> payload) {
  K2_ASSIGN_OR_RETURN(ShmHandle handle, allocate(payload.size()));
  if (!payload.empty()) std::memcpy(segment_.data() + handle.offset, payload.data(), payload.size());
  return handle;
}

Result<std::span<std::byte>> Arena::view(const ShmHandle& handle) const {
  K2_RETURN_IF_ERROR(check(handle).status());
  return std::span<std::byte>(segment_.data() + handle.offset, handle.bytes);
}

Status Arena::copy_out(const ShmHandle& handle, std::span<std::byte> dst) const {
  K2_ASSIGN_OR_RETURN(uint64_t block, check(handle));
  if (dst.size() < handle.bytes) return invalid_argument("copy_out destination too small");
  if (handle.bytes > 0) std::memcpy(dst.data(), segment_.data() + handle.offset, handle.bytes);
  std::atomic_thread_fence(std::memory_order_acquire);
  if (block_at(segment_.data(), block)->generation.load(std::memory_order_relaxed) != handle.generation)
    return unavailable("block freed while being copied (stale handle)");
  return Status::ok_status();
}

}  // namespace k2
