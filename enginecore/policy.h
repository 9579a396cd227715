// Scheduling policies (vLLM's --scheduling-policy fcfs|priority): the order of the waiting
// queue and the choice of the request to preempt when the KV cache runs out.
//
// WaitingQueue holds non-owning Request pointers (the Scheduler owns the requests).
// Not thread-safe.
#pragma once

#include <cstddef>
#include <deque>
#include <span>

#include "enginecore/request_state.h"

namespace k2::engine {

enum class SchedulingPolicy : uint8_t {
  kFcfs,      // arrival order; preempted requests go back to the front
  kPriority,  // (priority, arrival) ascending; lower priority value first
};

class WaitingQueue {
 public:
  explicit WaitingQueue(SchedulingPolicy policy) : policy_(policy) {}

  // A new arrival.
  void push(Request* request);
  // A preempted request: FCFS puts it first, priority re-inserts it by its key.
  void push_preempted(Request* request);
  Request* front() const { return queue_.front(); }
  void pop_front() { queue_.pop_front(); }
  // False when the request is not queued.
  bool remove(const Request* request);

  bool empty() const { return queue_.empty(); }
  size_t size() const { return queue_.size(); }
  auto begin() const { return queue_.begin(); }
  auto end() const { return queue_.end(); }

 private:
  void insert_by_priority(Request* request);

  SchedulingPolicy policy_;
  std::deque<Request*> queue_;
};

// The running request to preempt: the last admitted one under FCFS, the one with the
// largest (priority, arrival) under priority. `running` must not be empty.
Request* pick_preemption_victim(std::span<Request* const> running, SchedulingPolicy policy);

}  // namespace k2::engine
