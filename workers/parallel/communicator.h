// Communicator: the collectives a tensor- / expert-parallel model needs between its ranks.
//
// Every rank of a group calls the same collectives in the same order with the same sizes
// (the model's forward pass guarantees this: all ranks see the same batch). Results are
// deterministic and bit-identical on every rank: contributions are always summed in rank
// order 0, 1, ..., N-1, never in arrival order, so the ranks' replicated state (residual
// stream, router choices, logits) never drifts apart.
//
// A peer that never arrives (a dead rank, a rank that took another path) does not hang the
// others forever: every wait gives up after CommOptions::timeout with an `unavailable`
// Status, and the communicator stays broken afterwards (later calls fail at once), because
// the group's phase is no longer known.
//
// One Communicator object is one rank's endpoint: it is used by one thread at a time.
#pragma once

#include <chrono>
#include <span>

#include "shm/status.h"

namespace k2 {

struct CommOptions {
  // How long one wait for the other ranks may take before the collective fails. Generous:
  // a peer may legitimately be busy for a whole forward pass between two collectives.
  std::chrono::milliseconds timeout{60'000};
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // data[i] = Σ_{r = 0..N-1} data_r[i] on every rank, summed in rank order. Every rank
  // passes the same length; a length mismatch is an error on every rank.
  virtual Status all_reduce_sum(std::span<float> data) = 0;
  // Returns once every rank has called it.
  virtual Status barrier() = 0;
};

}  // namespace k2
