#include "shm/ring.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <limits>
#include <new>
#include <utility>

#include "shm/futex.h"

namespace k2 {
namespace shm_detail {

constexpr uint64_t kRingMagic = 0x4b3252494e473031ull;  // "K2RING01"
constexpr uint32_t kRingVersion = 1;
constexpr size_t kLine = 64;

// One side's wake channel: the epoch word is what sleepers FUTEX_WAIT on; it only moves
// when `waiters` says someone may be asleep, so the uncontended path is a plain store.
struct alignas(kLine) WakeChannel {
  std::atomic<uint32_t> epoch{0};
  std::atomic<uint32_t> waiters{0};
};

struct alignas(kLine) RingHeader {
  std::atomic<uint64_t> magic{0};  // written last by the creator
  uint32_t version = 0;
  uint32_t num_slots = 0;
  uint32_t num_readers = 0;
  int32_t writer_pid = 0;
  uint64_t slot_bytes = 0;
  uint64_t slot_stride = 0;
  uint64_t slots_offset = 0;
  alignas(kLine) std::atomic<uint64_t> published{0};  // messages published so far
  std::atomic<uint32_t> closed{0};
  WakeChannel publish_wake;  // readers sleep here waiting for `published`
  WakeChannel ack_wake;      // the writer sleeps here waiting for readers' `consumed`
};

struct alignas(kLine) ReaderState {
  std::atomic<uint64_t> consumed{0};  // messages this reader has finished with
  std::atomic<int32_t> pid{0};        // 0 until a reader attaches
};

static_assert(std::atomic<uint64_t>::is_always_lock_free && std::atomic<int32_t>::is_always_lock_free);

}  // namespace shm_detail

namespace {

using namespace shm_detail;
using Clock = std::chrono::steady_clock;
// A few microseconds: long enough to catch a peer that is running right now, short enough
// not to steal its core when processes outnumber cores.
constexpr int kSpinIterations = 128;
constexpr std::chrono::milliseconds kLivenessSlice{50};

size_t round_up(size_t v, size_t a) { return (v + a - 1) / a * a; }

bool pid_alive(int32_t pid) { return pid <= 0 || ::kill(pid, 0) == 0 || errno == EPERM; }

ReaderState* readers_of(RingHeader* h) { return reinterpret_cast<ReaderState*>(h + 1); }

std::byte* slot_of(RingHeader* h, uint64_t seq) {
  return reinterpret_cast<std::byte*>(h) + h->slots_offset + (seq % h->num_slots) * h->slot_stride;
}

// Wakes sleepers of `ch` after the caller made its condition true with a seq_cst store.
void notify(WakeChannel& ch) {
  if (ch.waiters.load(std::memory_order_seq_cst) == 0) return;
  ch.epoch.fetch_add(1, std::memory_order_seq_cst);
  futex_wake_all(&ch.epoch);
}

// Spins briefly, then sleeps on ch.epoch until ready() holds, the deadline passes, or
// alive() reports a dead peer. ready() must read the shared state with seq_cst loads: with
// notify()'s seq_cst store-then-load this is the Dekker pairing that makes a lost wake-up
// impossible (either the notifier sees our waiter count, or we see its store).
template <class Ready, class Alive>
Status wait_on(WakeChannel& ch, Ready ready, Alive alive, std::chrono::nanoseconds timeout, const char* what) {
  for (int i = 0; i < kSpinIterations; ++i) {
    if (ready()) return Status::ok_status();
    cpu_relax();
  }
  const auto deadline = Clock::now() + timeout;
  while (true) {
    uint32_t epoch = ch.epoch.load(std::memory_order_seq_cst);
    ch.waiters.fetch_add(1, std::memory_order_seq_cst);
    bool is_ready = ready();
    auto now = Clock::now();
    if (!is_ready && now < deadline) {
      futex_wait(&ch.epoch, epoch, std::min<std::chrono::nanoseconds>(deadline - now, kLivenessSlice));
    }
    ch.waiters.fetch_sub(1, std::memory_order_seq_cst);
    if (is_ready || ready()) return Status::ok_status();
    K2_RETURN_IF_ERROR(alive());
    if (Clock::now() >= deadline) return unavailable(std::string("ring wait timed out: ") + what);
  }
}

}  // namespace

// ---------------------------------------------------------------- writer

RingWriter::RingWriter(Segment segment)
    : segment_(std::move(segment)), header_(reinterpret_cast<RingHeader*>(segment_.data())) {
  slot_bytes_ = header_->slot_bytes;
}

RingWriter::RingWriter(RingWriter&& other) noexcept { *this = std::move(other); }

RingWriter& RingWriter::operator=(RingWriter&& other) noexcept {
  if (this != &other) {
    if (header_ != nullptr) close();
    segment_ = std::move(other.segment_);  // the mapping keeps its address
    header_ = std::exchange(other.header_, nullptr);
    slot_bytes_ = other.slot_bytes_;
    next_seq_ = other.next_seq_;
    min_consumed_ = other.min_consumed_;
    reserved_ = std::exchange(other.reserved_, false);
  }
  return *this;
}

RingWriter::~RingWriter() {
  if (header_ != nullptr) close();
}

Result<RingWriter> RingWriter::create(const RingOptions& o) {
  if (o.num_slots == 0 || o.num_readers == 0 || o.slot_bytes == 0 || o.num_readers > 1024 || o.num_slots > 65536)
    return invalid_argument("ring needs 1..65536 slots, 1..1024 readers and a non-zero slot size");
  size_t stride = kLine + round_up(o.slot_bytes, kLine);
  size_t slots_offset = sizeof(RingHeader) + o.num_readers * sizeof(ReaderState);
  size_t total = slots_offset + stride * o.num_slots;
  K2_ASSIGN_OR_RETURN(Segment seg, Segment::create(o.run_id, o.name, total));
  auto* h = new (seg.data()) RingHeader;
  h->version = kRingVersion;
  h->num_slots = o.num_slots;
  h->num_readers = o.num_readers;
  h->writer_pid = ::getpid();
  h->slot_bytes = o.slot_bytes;
  h->slot_stride = stride;
  h->slots_offset = slots_offset;
  for (uint32_t r = 0; r < o.num_readers; ++r) new (readers_of(h) + r) ReaderState;
  h->magic.store(kRingMagic, std::memory_order_release);
  return RingWriter(std::move(seg));
}

uint64_t RingWriter::published() const { return header_->published.load(std::memory_order_acquire); }

Status RingWriter::wait_for_slot(uint64_t seq, std::chrono::nanoseconds timeout) {
  RingHeader* h = header_;
  if (seq < min_consumed_ + h->num_slots) return Status::ok_status();
  ReaderState* readers = readers_of(h);
  auto ready = [&] {
    uint64_t m = std::numeric_limits<uint64_t>::max();
    for (uint32_t r = 0; r < h->num_readers; ++r) m = std::min(m, readers[r].consumed.load(std::memory_order_seq_cst));
    min_consumed_ = m;
    return seq < m + h->num_slots;
  };
  auto alive = [&]() -> Status {
    for (uint32_t r = 0; r < h->num_readers; ++r) {
      int32_t pid = readers[r].pid.load(std::memory_order_acquire);
      if (readers[r].consumed.load(std::memory_order_acquire) + h->num_slots <= seq && !pid_alive(pid))
        return unavailable("ring " + name() + ": reader " + std::to_string(r) + " (pid " + std::to_string(pid) +
                           ") died");
    }
    return Status::ok_status();
  };
  return wait_on(h->ack_wake, ready, alive, timeout, "writer waiting for readers to free a slot");
}

Result<std::span<std::byte>> RingWriter::reserve(std::chrono::nanoseconds timeout) {
  if (reserved_) return internal_error("ring " + name() + ": reserve() twice without commit()");
  if (header_->closed.load(std::memory_order_relaxed) != 0) return unavailable("ring " + name() + " is closed");
  K2_RETURN_IF_ERROR(wait_for_slot(next_seq_, timeout));
  reserved_ = true;
  return std::span<std::byte>(slot_of(header_, next_seq_) + kLine, slot_bytes_);
}

Status RingWriter::commit(size_t bytes) {
  if (!reserved_) return internal_error("ring " + name() + ": commit() without reserve()");
  if (bytes > slot_bytes_) return invalid_argument("ring message larger than a slot");
  reserved_ = false;
  std::memcpy(slot_of(header_, next_seq_), &bytes, sizeof(uint64_t));
  header_->published.store(++next_seq_, std::memory_order_seq_cst);
  notify(header_->publish_wake);
  return Status::ok_status();
}

Status RingWriter::write(std::span<const std::byte> message, std::chrono::nanoseconds timeout) {
  if (message.size() > slot_bytes_)
    return invalid_argument("ring message of " + std::to_string(message.size()) + " bytes exceeds the slot size " +
                            std::to_string(slot_bytes_) + "; send an arena handle instead");
  K2_ASSIGN_OR_RETURN(std::span<std::byte> slot, reserve(timeout));
  if (!message.empty()) std::memcpy(slot.data(), message.data(), message.size());
  return commit(message.size());
}

void RingWriter::close() {
  header_->closed.store(1, std::memory_order_seq_cst);
  header_->publish_wake.epoch.fetch_add(1, std::memory_order_seq_cst);
  futex_wake_all(&header_->publish_wake.epoch);
}

// ---------------------------------------------------------------- reader

RingReader::RingReader(Segment segment, uint32_t index)
    : segment_(std::move(segment)), header_(reinterpret_cast<RingHeader*>(segment_.data())), index_(index) {
  state_ = readers_of(header_) + index;
  next_seq_ = state_->consumed.load(std::memory_order_acquire);
}

Result<RingReader> RingReader::open(const std::string& segment_name, uint32_t reader_index) {
  K2_ASSIGN_OR_RETURN(Segment seg, Segment::open(segment_name));
  if (seg.size() < sizeof(RingHeader)) return corrupt("ring " + segment_name + " is too small");
  auto* h = reinterpret_cast<RingHeader*>(seg.data());
  if (h->magic.load(std::memory_order_acquire) != kRingMagic)
    return unavailable("ring " + segment_name + " is not initialized (yet)");
  if (h->version != kRingVersion || h->num_slots == 0 ||
      h->slots_offset != sizeof(RingHeader) + h->num_readers * sizeof(ReaderState) ||
      h->slot_stride != kLine + round_up(h->slot_bytes, kLine) ||
      h->slots_offset + h->slot_stride * h->num_slots != seg.size())
    return corrupt("ring " + segment_name + " has an inconsistent header");
  if (reader_index >= h->num_readers)
    return invalid_argument("ring reader index " + std::to_string(reader_index) + " >= " +
                            std::to_string(h->num_readers));
  ReaderState* st = readers_of(h) + reader_index;
  int32_t me = ::getpid();
  int32_t prev = st->pid.load(std::memory_order_acquire);
  if (prev != 0 && prev != me && pid_alive(prev))
    return invalid_argument("ring reader index " + std::to_string(reader_index) + " is held by pid " +
                            std::to_string(prev));
  st->pid.store(me, std::memory_order_release);
  return RingReader(std::move(seg), reader_index);
}

Result<std::span<const std::byte>> RingReader::acquire(std::chrono::nanoseconds timeout) {
  if (holding_) return internal_error("ring reader: acquire() twice without release()");
  RingHeader* h = header_;
  const uint64_t seq = next_seq_;
  auto ready = [&] {
    return h->published.load(std::memory_order_seq_cst) > seq || h->closed.load(std::memory_order_seq_cst) != 0;
  };
  auto alive = [&]() -> Status {
    if (!pid_alive(h->writer_pid))
      return unavailable("ring " + segment_.name() + ": writer (pid " + std::to_string(h->writer_pid) + ") died");
    return Status::ok_status();
  };
  K2_RETURN_IF_ERROR(wait_on(h->publish_wake, ready, alive, timeout, "reader waiting for a message"));
  if (h->published.load(std::memory_order_acquire) <= seq) return unavailable("ring " + segment_.name() + " closed");
  const std::byte* slot = slot_of(h, seq);
  uint64_t bytes = 0;
  std::memcpy(&bytes, slot, sizeof(bytes));
  if (bytes > h->slot_bytes) return corrupt("ring slot claims " + std::to_string(bytes) + " bytes");
  holding_ = true;
  return std::span<const std::byte>(slot + kLine, bytes);
}

void RingReader::release() {
  if (!holding_) return;
  holding_ = false;
  state_->consumed.store(++next_seq_, std::memory_order_seq_cst);
  notify(header_->ack_wake);
}

Status RingReader::read(std::vector<std::byte>& out, std::chrono::nanoseconds timeout) {
  K2_ASSIGN_OR_RETURN(std::span<const std::byte> msg, acquire(timeout));
  out.assign(msg.begin(), msg.end());
  release();
  return Status::ok_status();
}

}  // namespace k2
