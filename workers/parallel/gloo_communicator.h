// GlooCommunicator: one rank of a tensor- / expert-parallel group whose ranks are processes
// on several nodes, over Gloo's TCP transport (a full mesh: one connection per pair of ranks).
//
// The ranks meet through a gloo::rendezvous::Store (in k2serve a ZmqStore served by rank 0,
// zmq_store.h) under a per-group key prefix, exchange their listening addresses and connect.
//
// all_reduce_sum keeps Communicator's contract (the same bits on every rank, summed in rank
// order 0..N-1): every call's first all-gather round has a fixed size and carries the ranks'
// lengths with the start of the data (a length mismatch fails on every rank alike and leaves
// the group usable); the rest of the data follows chunk by chunk, and each rank sums the N
// contributions of each element in rank order itself. Gloo's own allreduce
// is not used: its ring and halving-doubling algorithms add the contributions of different
// segments in different orders (each segment's reduction starts at another rank), so the
// result would differ in the low bits from ThreadGroupCommunicator and ShmCommunicator, and
// those bits decide router choices downstream. For two ranks the bytes moved are the same
// (each rank sends its n floats once); for N ranks an all-gather moves N/2 times more, which
// is the price of exact sums (TP groups are 2-8 ranks).
//
// Every Gloo failure (an enforce, a peer's closed connection, a wait past CommOptions::timeout)
// is caught and returned as `unavailable`, after which the communicator is broken and every
// later call fails at once: the group's phase is no longer known.
//
// Gloo writes to its sockets with writev, which raises SIGPIPE when a peer has died; create()
// therefore sets SIGPIPE to ignored for the whole process (the usual choice of servers; every
// write in k2serve already checks its result).
//
// Owns its Gloo context (its connections) and device (one event-loop thread). One endpoint is
// used by one thread at a time.
#pragma once

#include <cstddef>
#include <exception>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "workers/parallel/communicator.h"

namespace gloo {
class Context;
namespace rendezvous {
class Store;
}  // namespace rendezvous
}  // namespace gloo

namespace k2 {

struct GlooCommOptions : CommOptions {
  // The address this rank's connections listen on: its interface toward the other nodes.
  std::string hostname = "127.0.0.1";
  // Floats per rank in one all-gather round: bounds the scratch memory (N x this) while
  // keeping each round large enough for TCP throughput.
  size_t chunk_elements = size_t{1} << 18;
  // Floats that ride along with the length in every call's first round (padded when fewer):
  // a payload up to this size takes one round trip. 8192 covers one token's hidden state of
  // DeepSeek-V3 / Kimi-K2 (7168).
  size_t first_round_elements = 8192;
};

class GlooCommunicator final : public Communicator {
 public:
  // Meets the other `size - 1` ranks through `store` under the key prefix `group` and connects
  // to all of them. Every rank must call this within the others' timeouts: waiting for a rank
  // that never comes fails with `unavailable` after at most about `size` x options.timeout.
  // The store is only used during the call.
  static Result<std::unique_ptr<GlooCommunicator>> create(gloo::rendezvous::Store& store, std::string_view group,
                                                          int rank, int size, GlooCommOptions options = {});
  // The N ranks of one group as N endpoints in this process, connected over options.hostname
  // through a ZmqStore served on a free port there (tests, golden-check --tp-communicator
  // gloo). The endpoints then behave exactly as N processes' would.
  static Result<std::vector<std::unique_ptr<GlooCommunicator>>> create_local_group(int size,
                                                                                  GlooCommOptions options = {});
  ~GlooCommunicator() override;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  Status all_reduce_sum(std::span<float> data) override;
  Status barrier() override;

 private:
  GlooCommunicator(std::shared_ptr<gloo::Context> context, int rank, int size, GlooCommOptions options);
  Status all_reduce_chunks(std::span<float> data);
  Status fail(const char* what, const std::exception* e);

  std::shared_ptr<gloo::Context> context_;
  int rank_ = 0;
  int size_ = 1;
  GlooCommOptions options_;
  std::vector<float> round0_;    // this rank's first round: length, then data
  std::vector<float> gathered_;  // every rank's part of the current round
  bool broken_ = false;
};

}  // namespace k2
