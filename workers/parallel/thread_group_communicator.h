// ThreadGroupCommunicator: the N ranks of a group as N threads of one process that share
// memory (golden-check with --tensor-parallel-size, tests, in-process benchmarks).
//
// create() returns the N endpoints of one group; they share one State (owned jointly by the
// endpoints). Endpoint r is used by rank r's thread only; the endpoints of one group may be
// used concurrently from their N threads (that is their purpose).
//
// all_reduce_sum: every rank publishes its buffer; after a barrier rank r sums the r-th
// slice of the elements over all buffers in rank order into a shared result; after a second
// barrier every rank copies the whole result into its buffer. Each element is summed once, by
// one thread, in rank order, so the result is deterministic and the same bits on every rank.
#pragma once

#include <memory>
#include <vector>

#include "workers/parallel/communicator.h"

namespace k2 {

class ThreadGroupCommunicator final : public Communicator {
 public:
  static std::vector<std::unique_ptr<ThreadGroupCommunicator>> create(int size, CommOptions options = {});

  int rank() const override { return rank_; }
  int size() const override;
  Status all_reduce_sum(std::span<float> data) override;
  Status barrier() override;

  struct State;  // shared by the endpoints of one group

 private:
  ThreadGroupCommunicator(std::shared_ptr<State> state, int rank) : state_(std::move(state)), rank_(rank) {}

  std::shared_ptr<State> state_;
  int rank_ = 0;
};

}  // namespace k2
