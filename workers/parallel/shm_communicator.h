// ShmCommunicator: the N ranks of a group as N processes on one node, over one shared-memory
// segment (k2::Segment).
//
// Layout of the segment: a header (group size, slot capacity, a generation-counted barrier
// on futex words, an abort flag, each rank's announced length) followed by one slot of
// `capacity` floats per rank. all_reduce_sum works in chunks of at most `capacity` floats:
// each rank copies its chunk into its own slot; barrier; every rank sums all slots in rank
// order into its own buffer (the same additions in the same order on every rank, hence the
// same bits); barrier (so no slot is overwritten while someone still reads it).
//
// Rank 0 creates the segment and owns its name (unlinked when rank 0's communicator goes
// away; peers keep their mappings); ranks 1..N-1 open it by name (or find it by run id and
// name, open_when_created). The header's magic is written last, so a peer never maps a
// half-initialized group. A wait that exceeds
// CommOptions::timeout fails with `unavailable`, raises the shared abort flag so the other
// ranks fail at once instead of timing out one by one, and leaves the communicator broken.
//
// Owns its mapping. One endpoint per process (or per thread); not for concurrent use.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "shm/segment.h"
#include "workers/parallel/communicator.h"

namespace k2 {

struct ShmCommOptions : CommOptions {
  // Floats per rank slot: larger payloads go through in several chunks.
  size_t capacity = size_t{1} << 20;
};

class ShmCommunicator final : public Communicator {
 public:
  // Rank 0: creates `/k2serve-<pid>-<run_id>-<name>` for `size` ranks.
  static Result<std::unique_ptr<ShmCommunicator>> create(std::string_view run_id, std::string_view name, int size,
                                                         ShmCommOptions options = {});
  // Rank `rank` >= 1: maps the segment rank 0 created (its segment_name()). The group size
  // and capacity come from the segment; options.capacity is ignored.
  static Result<std::unique_ptr<ShmCommunicator>> open(const std::string& segment_name, int rank,
                                                       CommOptions options = {});
  // Rank `rank` >= 1 of a group whose rank 0 is a process the caller knows nothing of but the
  // run (a worker of another engine): waits, at most `wait`, until rank 0 has created and
  // initialized `/k2serve-<its pid>-<run_id>-<name>`, then opens it.
  static Result<std::unique_ptr<ShmCommunicator>> open_when_created(std::string_view run_id, std::string_view name,
                                                                    int rank, std::chrono::milliseconds wait,
                                                                    CommOptions options = {});
  ~ShmCommunicator() override;

  const std::string& segment_name() const { return segment_.name(); }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  Status all_reduce_sum(std::span<float> data) override;
  Status barrier() override;

  struct Header;

 private:
  ShmCommunicator(Segment segment, int rank, CommOptions options);
  Header& header() const;
  float* slot(int rank) const;
  Status wait_all();

  Segment segment_;
  int rank_ = 0;
  int size_ = 1;
  size_t capacity_ = 0;
  CommOptions options_;
  bool broken_ = false;
};

}  // namespace k2
