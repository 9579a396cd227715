#include "enginecore/policy.h"

#include <algorithm>
#include <utility>

namespace k2::engine {

namespace {

// Lower key is served first and preempted last.
std::pair<int32_t, uint64_t> priority_key(const Request* r) { return {r->priority(), r->arrival_seq()}; }

}  // namespace

void WaitingQueue::insert_by_priority(Request* request) {
  auto pos = std::upper_bound(queue_.begin(), queue_.end(), request, [](const Request* a, const Request* b) {
    return priority_key(a) < priority_key(b);
  });
  queue_.insert(pos, request);
}

void WaitingQueue::push(Request* request) {
  if (policy_ == SchedulingPolicy::kPriority) {
    insert_by_priority(request);
  } else {
    queue_.push_back(request);
  }
}

void WaitingQueue::push_preempted(Request* request) {
  if (policy_ == SchedulingPolicy::kPriority) {
    insert_by_priority(request);
  } else {
    queue_.push_front(request);
  }
}

bool WaitingQueue::remove(const Request* request) {
  auto it = std::find(queue_.begin(), queue_.end(), request);
  if (it == queue_.end()) return false;
  queue_.erase(it);
  return true;
}

Request* pick_preemption_victim(std::span<Request* const> running, SchedulingPolicy policy) {
  K2_CHECK(!running.empty(), "no running request to preempt");
  if (policy == SchedulingPolicy::kFcfs) return running.back();
  return *std::max_element(running.begin(), running.end(), [](const Request* a, const Request* b) {
    return priority_key(a) < priority_key(b);
  });
}

}  // namespace k2::engine
