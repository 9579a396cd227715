#include "workers/parallel/thread_group_communicator.h"

#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>

namespace k2 {

struct ThreadGroupCommunicator::State {
  int size = 1;
  CommOptions options;
  std::mutex mutex;
  std::condition_variable cv;
  int arrived = 0;           // guarded by mutex
  uint64_t generation = 0;   // guarded by mutex; bumped when the last rank arrives
  bool broken = false;       // guarded by mutex; a wait timed out, the phase is lost
  std::vector<std::span<float>> buffers;  // per rank, published before the first barrier
  std::vector<float> result;               // sized by the last arriver of the first barrier
  bool lengths_differ = false;             // set with it; read by all until the next barrier

  // Generation-counted barrier: returns once all `size` ranks arrived, or fails on a timeout
  // (and then breaks the group so every other waiter fails too, now and later). The last
  // rank to arrive runs `on_all_arrived` under the lock, when no rank is between barriers.
  template <class Fn>
  Status arrive_and_wait(Fn&& on_all_arrived) {
    std::unique_lock<std::mutex> lock(mutex);
    if (broken) return unavailable("thread group communicator is broken by an earlier timeout");
    const uint64_t gen = generation;
    if (++arrived == size) {
      on_all_arrived();
      arrived = 0;
      ++generation;
      cv.notify_all();
      return Status::ok_status();
    }
    const bool done = cv.wait_for(lock, options.timeout, [&] { return generation != gen || broken; });
    if (done && generation != gen) return Status::ok_status();
    broken = true;
    cv.notify_all();
    return unavailable("a rank did not reach the collective within " + std::to_string(options.timeout.count()) +
                       " ms");
  }
  Status arrive_and_wait() {
    return arrive_and_wait([] {});
  }
};

std::vector<std::unique_ptr<ThreadGroupCommunicator>> ThreadGroupCommunicator::create(int size, CommOptions options) {
  K2_CHECK(size >= 1, "a group needs at least one rank");
  auto state = std::make_shared<State>();
  state->size = size;
  state->options = options;
  state->buffers.resize(static_cast<size_t>(size));
  std::vector<std::unique_ptr<ThreadGroupCommunicator>> ranks;
  for (int r = 0; r < size; ++r) ranks.emplace_back(new ThreadGroupCommunicator(state, r));
  return ranks;
}

int ThreadGroupCommunicator::size() const { return state_->size; }

Status ThreadGroupCommunicator::barrier() { return state_->arrive_and_wait(); }

Status ThreadGroupCommunicator::all_reduce_sum(std::span<float> data) {
  State& s = *state_;
  if (s.size == 1) return Status::ok_status();
  s.buffers[static_cast<size_t>(rank_)] = data;
  const size_t n = data.size();
  K2_RETURN_IF_ERROR(s.arrive_and_wait([&] {
    s.lengths_differ = std::any_of(s.buffers.begin(), s.buffers.end(),
                                   [&](const std::span<float>& b) { return b.size() != n; });
    if (!s.lengths_differ && s.result.size() < n) s.result.resize(n);
  }));
  // Every rank reads the same flag, so all fail together and stay in step.
  if (s.lengths_differ) return invalid_argument("all_reduce_sum: the ranks passed different lengths");
  // Rank r sums its slice [lo, hi) of the elements, each over the ranks in order.
  const size_t per = (n + static_cast<size_t>(s.size) - 1) / static_cast<size_t>(s.size);
  const size_t lo = std::min(n, per * static_cast<size_t>(rank_)), hi = std::min(n, lo + per);
  float* out = s.result.data();
  std::copy(s.buffers[0].data() + lo, s.buffers[0].data() + hi, out + lo);
  for (int r = 1; r < s.size; ++r) {
    const float* in = s.buffers[static_cast<size_t>(r)].data();
    for (size_t i = lo; i < hi; ++i) out[i] += in[i];
  }
  K2_RETURN_IF_ERROR(s.arrive_and_wait());
  // Nobody overwrites the result or republishes a buffer before every rank has copied: the
  // next call's first barrier waits for all of them.
  std::copy_n(out, n, data.data());
  return Status::ok_status();
}

}  // namespace k2
