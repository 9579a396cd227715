// BroadcastRing: a single-writer, multi-reader broadcast ring in shared memory (the per-step
// plan channel from an enginecore to its workers, as vLLM's shm MessageQueue).
//
// Fixed slots of `slot_bytes` each. The writer publishes message k into slot k % num_slots
// once every reader has acknowledged message k - num_slots; each reader sees every message in
// order and acknowledges it. Shared indices are std::atomic with acquire/release; a waiter
// spins briefly, then sleeps in FUTEX_WAIT on a shared 32-bit epoch word that the other side
// bumps and wakes (only when someone sleeps). No sleep-polling. Waits take a timeout and, in
// slices, check whether the peer process is still alive, so a dead peer becomes an error
// value (kUnavailable) within one slice instead of a hang.
//
// A message larger than a slot is rejected: put it in an Arena and send the handle.
//
// Ownership: the RingWriter creates and owns the segment (unlinked on destruction); each
// RingReader opens it by name and claims a reader index in [0, num_readers). One RingWriter
// per ring and one RingReader per index, each used by one thread at a time (they are not
// internally locked); any number of processes.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "shm/segment.h"
#include "shm/status.h"

namespace k2 {

struct RingOptions {
  std::string run_id;
  std::string name;
  uint32_t num_slots = 8;
  size_t slot_bytes = 1 << 20;
  uint32_t num_readers = 1;
};

namespace shm_detail {
struct RingHeader;
struct ReaderState;
}  // namespace shm_detail

class RingWriter {
 public:
  static Result<RingWriter> create(const RingOptions& options);

  RingWriter(RingWriter&& other) noexcept;
  RingWriter& operator=(RingWriter&& other) noexcept;
  RingWriter(const RingWriter&) = delete;
  RingWriter& operator=(const RingWriter&) = delete;
  ~RingWriter();  // closes the ring and unlinks its name

  // Copies `message` into the next slot and publishes it. Waits (up to `timeout`) for the
  // slowest reader to free the slot; kUnavailable on timeout or when a reader died.
  Status write(std::span<const std::byte> message, std::chrono::nanoseconds timeout);

  // Zero-copy variant: reserve() returns the next slot's buffer (slot_bytes long); fill it and
  // commit(bytes) to publish. At most one reservation outstanding.
  Result<std::span<std::byte>> reserve(std::chrono::nanoseconds timeout);
  Status commit(size_t bytes);

  // Tells readers no more messages will come (their waits return kUnavailable once drained).
  void close();

  const std::string& name() const { return segment_.name(); }
  size_t slot_bytes() const { return slot_bytes_; }
  uint64_t published() const;

 private:
  explicit RingWriter(Segment segment);
  Status wait_for_slot(uint64_t seq, std::chrono::nanoseconds timeout);

  Segment segment_;
  shm_detail::RingHeader* header_ = nullptr;
  size_t slot_bytes_ = 0;
  uint64_t next_seq_ = 0;
  uint64_t min_consumed_ = 0;  // cached lower bound of every reader's progress
  bool reserved_ = false;
};

class RingReader {
 public:
  static Result<RingReader> open(const std::string& segment_name, uint32_t reader_index);

  RingReader(RingReader&&) noexcept = default;
  RingReader& operator=(RingReader&&) noexcept = default;
  ~RingReader() = default;

  // Waits for the next message and returns a view of it in the slot, valid until release().
  // kUnavailable on timeout, when the writer died, or when the ring is closed and drained.
  Result<std::span<const std::byte>> acquire(std::chrono::nanoseconds timeout);
  // Acknowledges the message returned by acquire(), letting the writer reuse its slot.
  void release();

  // acquire + copy into `out` + release.
  Status read(std::vector<std::byte>& out, std::chrono::nanoseconds timeout);

  uint32_t index() const { return index_; }

 private:
  explicit RingReader(Segment segment, uint32_t index);

  Segment segment_;
  shm_detail::RingHeader* header_ = nullptr;
  shm_detail::ReaderState* state_ = nullptr;
  uint32_t index_ = 0;
  uint64_t next_seq_ = 0;
  bool holding_ = false;
};

}  // namespace k2
