// ThreadPool: a persistent set of worker threads that run the tasks of one parallel_for
// at a time together with the calling thread.
//
// Made for decode: about a hundred short parallel_for calls per token on 2-16 cores, some of
// which another process may be using. Hence:
//  - Tasks are claimed one by one from a shared atomic counter, never split per thread in
//    advance, so a thread that is descheduled (its core taken by another process) simply
//    claims fewer tasks and the others take its share; nothing waits for it except the
//    task it is running.
//  - There is no spinning barrier. Between calls a worker spins for at most `spin_us`
//    (cheap back-to-back calls), then sleeps on a futex; the caller, once no task is left
//    to claim, waits for the running ones the same way. A sleeping caller frees its core,
//    so the kernel can move a preempted worker there.
//  - A worker whose core is shared can be preempted in the middle of a task, and the
//    caller then waits for the other process's time slice (milliseconds) with nothing left
//    to do. When that happens repeatedly (2 of the last 8 calls had the caller wait longer
//    for the last running task than it worked itself, and over 200 µs), the pool runs
//    every call on the caller alone for the next `solo_ms`, then tries the workers again.
//    Unpinned, the kernel then moves the other process to the worker's now idle core.
//  - The type-erased task is a pointer and a trampoline: a call allocates nothing.
//
// Rules for the task function fn(task, thread):
//  - task is in [0, n_tasks), each run exactly once, in no particular order and on no
//    particular thread; thread is in [0, size()): 0 is the caller, 1.. the workers, stable
//    for the pool's lifetime (index per-thread scratch with it).
//  - It must not throw: exceptions are not carried across threads, and an escaping one
//    calls std::terminate (the trampoline is noexcept). Report failures through your own
//    per-task state.
//  - Nested calls: parallel_for from inside a task of the same pool runs the inner loop
//    inline on the calling thread (thread index unchanged), so nesting is legal but adds
//    no parallelism. A task may use a different pool.
//
// Thread safety: parallel_for may be called from any thread; calls from different threads
// are serialised (a mutex), so a pool runs one loop at a time. The pool owns its threads and
// joins them in the destructor, which must not run concurrently with a parallel_for.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

namespace k2::cpu {

struct ThreadPoolOptions {
  // Total threads including the caller; <= 0 means one per CPU this process may run on.
  int threads = 0;
  // Pin thread t to the t-th CPU of `cpus` (or of the process affinity mask when empty).
  // The constructing thread is pinned as thread 0, so construct the pool on the thread that
  // will call parallel_for. Off by default: unpinned threads can be migrated away from a
  // core another process is using, which matters more on small machines than locality.
  bool pin = false;
  std::vector<int> cpus;
  // How long an idle worker (and the waiting caller) spins before sleeping on a futex.
  int spin_us = 50;
  // How long to run on the caller alone after repeated stalls on a preempted worker;
  // 0 turns the adaptation off.
  int solo_ms = 50;
};

class ThreadPool {
 public:
  explicit ThreadPool(const ThreadPoolOptions& options = {});
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  // Threads that run tasks, the caller included (>= 1).
  int size() const { return static_cast<int>(workers_.size()) + 1; }

  // Runs fn(task, thread) for every task in [0, n_tasks) and returns when all have
  // finished. n_tasks must be < 2^31. See the header comment for the rules on fn.
  template <class Fn>
  void parallel_for(int64_t n_tasks, Fn&& fn) {
    using F = std::remove_reference_t<Fn>;
    run(n_tasks, const_cast<void*>(static_cast<const void*>(&fn)),
        [](void* ctx, int64_t task, int thread) noexcept { (*static_cast<F*>(ctx))(task, thread); });
  }

  // Process-wide counters for tests and benchmarks (relaxed; approximate while running).
  struct Stats {
    uint64_t calls = 0;       // parallel_for calls that used the workers
    uint64_t futex_waits = 0; // times a worker or the caller went to sleep
    uint64_t solo_calls = 0;  // calls run on the caller alone after stalls (see above)
  };
  Stats stats() const;

 private:
  using Trampoline = void (*)(void* ctx, int64_t task, int thread) noexcept;

  void run(int64_t n_tasks, void* ctx, Trampoline fn);
  void worker_main(int thread, int cpu);
  // Claims and runs tasks until none is left; returns how many it ran.
  int64_t drain(int thread);
  void wait_for_job(uint32_t seen_seq);
  void wait_for_completion();
  // Updates the stall history with one call's timing; may start a solo period.
  void note_call(int64_t start_ns, int64_t drained_ns, int64_t end_ns);

  // Low 32 bits: the next task as kTaskBase - 1 - task (counts up, tasks go down), valid
  // while < kTaskBase; high 32 bits: the job generation. One word, so a claim names the job
  // it belongs to and a late worker can never run a task with a stale function.
  // Starts exhausted (generation 0, no task): nothing to claim before the first call.
  std::atomic<uint64_t> next_{uint64_t{1} << 31};
  // Unfinished tasks of the current job; the caller sleeps on it (futex) when waiting.
  std::atomic<uint32_t> remaining_{0};
  std::atomic<uint32_t> caller_sleeping_{0};
  // Bumped once per job (and at shutdown); idle workers sleep on it.
  std::atomic<uint32_t> job_seq_{0};
  std::atomic<uint32_t> sleepers_{0};
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> calls_{0}, futex_waits_{0}, solo_calls_{0};

  // Stall tracking, under call_mutex_: bit i set = the i-th last call stalled.
  uint32_t recent_stalls_ = 0;
  int64_t solo_until_ns_ = 0;
  int64_t solo_ns_ = 0;

  // The current job, written by the caller before it is published in next_ and not again
  // before every task has finished (so workers read them without a race).
  void* job_ctx_ = nullptr;
  Trampoline job_fn_ = nullptr;
  int64_t spin_ns_ = 0;

  std::mutex call_mutex_;
  std::vector<std::thread> workers_;
};

}  // namespace k2::cpu
