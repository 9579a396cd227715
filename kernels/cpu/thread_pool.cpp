#include "kernels/cpu/thread_pool.h"

#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <climits>
#include <cstdio>
#include <string>

#include "kernels/check.h"

namespace k2::cpu {
namespace {

constexpr uint64_t kTaskBase = uint64_t{1} << 31;
constexpr uint64_t kLowMask = 0xffffffffull;

// The pool (and thread index) whose task this thread is running, for the nested-call rule.
thread_local const ThreadPool* tls_pool = nullptr;
thread_local int tls_thread = 0;

// Makes the calling thread task 0 of `pool` for its lifetime (nested calls then run inline),
// restoring the identity it had before: the caller may itself be a worker of another pool.
class AsCallerOf {
 public:
  explicit AsCallerOf(const ThreadPool* pool) : outer_pool_(tls_pool), outer_thread_(tls_thread) {
    tls_pool = pool;
    tls_thread = 0;
  }
  ~AsCallerOf() {
    tls_pool = outer_pool_;
    tls_thread = outer_thread_;
  }
  AsCallerOf(const AsCallerOf&) = delete;
  AsCallerOf& operator=(const AsCallerOf&) = delete;

 private:
  const ThreadPool* outer_pool_;
  int outer_thread_;
};

uint32_t* futex_word(std::atomic<uint32_t>& a) {
  static_assert(sizeof(std::atomic<uint32_t>) == sizeof(uint32_t) && std::atomic<uint32_t>::is_always_lock_free);
  return reinterpret_cast<uint32_t*>(&a);
}

// Sleeps while a == expected (returns at once if it already differs; may wake spuriously).
void futex_wait(std::atomic<uint32_t>& a, uint32_t expected) {
  syscall(SYS_futex, futex_word(a), FUTEX_WAIT_PRIVATE, expected, nullptr, nullptr, 0);
}

void futex_wake(std::atomic<uint32_t>& a, int count) {
  syscall(SYS_futex, futex_word(a), FUTEX_WAKE_PRIVATE, count, nullptr, nullptr, 0);
}

inline void cpu_relax() { __builtin_ia32_pause(); }

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Spins until done() or spin_ns have passed; returns done().
template <class Pred>
bool spin_until(Pred done, int64_t spin_ns) {
  if (done()) return true;
  const int64_t deadline = now_ns() + spin_ns;
  for (;;) {
    for (int i = 0; i < 64; ++i) {
      if (done()) return true;
      cpu_relax();
    }
    if (now_ns() >= deadline) return done();
  }
}

std::vector<int> allowed_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> cpus;
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    for (int c = 0; c < CPU_SETSIZE; ++c) {
      if (CPU_ISSET(c, &set)) cpus.push_back(c);
    }
  }
  if (cpus.empty()) cpus.push_back(0);
  return cpus;
}

void pin_current_thread(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  // Best effort: a CPU outside the cgroup's set fails here and the thread stays unpinned.
  if (sched_setaffinity(0, sizeof set, &set) != 0) std::fprintf(stderr, "k2: could not pin a thread to cpu %d\n", cpu);
}

}  // namespace

ThreadPool::ThreadPool(const ThreadPoolOptions& options) {
  const std::vector<int> cpus = options.cpus.empty() ? allowed_cpus() : options.cpus;
  const int threads = options.threads > 0 ? options.threads : static_cast<int>(cpus.size());
  spin_ns_ = int64_t{options.spin_us < 0 ? 0 : options.spin_us} * 1000;
  solo_ns_ = int64_t{options.solo_ms < 0 ? 0 : options.solo_ms} * 1000000;
  if (options.pin) pin_current_thread(cpus[0]);
  workers_.reserve(static_cast<size_t>(threads - 1));
  for (int t = 1; t < threads; ++t) {
    const int cpu = options.pin ? cpus[static_cast<size_t>(t) % cpus.size()] : -1;
    workers_.emplace_back([this, t, cpu] { worker_main(t, cpu); });
  }
}

ThreadPool::~ThreadPool() {
  stop_.store(true, std::memory_order_seq_cst);
  job_seq_.fetch_add(1, std::memory_order_seq_cst);
  futex_wake(job_seq_, INT_MAX);
  for (std::thread& t : workers_) t.join();
}

ThreadPool::Stats ThreadPool::stats() const {
  return Stats{calls_.load(std::memory_order_relaxed), futex_waits_.load(std::memory_order_relaxed),
               solo_calls_.load(std::memory_order_relaxed)};
}

void ThreadPool::worker_main(int thread, int cpu) {
  if (cpu >= 0) pin_current_thread(cpu);
  const std::string name = "k2-pool-" + std::to_string(thread);
  pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
  tls_pool = this;
  tls_thread = thread;
  uint32_t seq = job_seq_.load(std::memory_order_acquire);
  while (!stop_.load(std::memory_order_acquire)) {
    drain(thread);
    wait_for_job(seq);
    seq = job_seq_.load(std::memory_order_acquire);
  }
}

int64_t ThreadPool::drain(int thread) {
  int64_t ran = 0;
  for (;;) {
    // acq_rel: acquire pairs with the caller's release publication of the job fields;
    // the claim itself orders nothing else.
    const uint64_t c = next_.fetch_add(1, std::memory_order_acq_rel);
    const uint64_t low = c & kLowMask;
    if (low >= kTaskBase) return ran;
    // A valid claim keeps its job from completing, so these fields are that job's.
    job_fn_(job_ctx_, static_cast<int64_t>(kTaskBase - 1 - low), thread);
    ++ran;
    if (remaining_.fetch_sub(1, std::memory_order_seq_cst) == 1 &&
        caller_sleeping_.load(std::memory_order_seq_cst) != 0) {
      futex_wake(remaining_, 1);
    }
  }
}

void ThreadPool::wait_for_job(uint32_t seen_seq) {
  auto changed = [&] { return job_seq_.load(std::memory_order_acquire) != seen_seq; };
  if (spin_until(changed, spin_ns_)) return;
  sleepers_.fetch_add(1, std::memory_order_seq_cst);
  while (job_seq_.load(std::memory_order_seq_cst) == seen_seq) {
    futex_waits_.fetch_add(1, std::memory_order_relaxed);
    futex_wait(job_seq_, seen_seq);
  }
  sleepers_.fetch_sub(1, std::memory_order_seq_cst);
}

void ThreadPool::wait_for_completion() {
  auto done = [&] { return remaining_.load(std::memory_order_acquire) == 0; };
  if (spin_until(done, spin_ns_)) return;
  caller_sleeping_.store(1, std::memory_order_seq_cst);
  for (uint32_t v = remaining_.load(std::memory_order_seq_cst); v != 0;
       v = remaining_.load(std::memory_order_seq_cst)) {
    futex_waits_.fetch_add(1, std::memory_order_relaxed);
    futex_wait(remaining_, v);
  }
  caller_sleeping_.store(0, std::memory_order_relaxed);
}

void ThreadPool::run(int64_t n_tasks, void* ctx, Trampoline fn) {
  K2_KERNEL_CHECK(n_tasks >= 0 && static_cast<uint64_t>(n_tasks) < kTaskBase, "parallel_for: bad task count");
  if (n_tasks == 0) return;
  // Nested call from one of this pool's tasks, or nothing to share: run inline.
  if (tls_pool == this || workers_.empty() || n_tasks == 1) {
    const int thread = tls_pool == this ? tls_thread : 0;
    for (int64_t t = 0; t < n_tasks; ++t) fn(ctx, t, thread);
    return;
  }
  std::lock_guard<std::mutex> lock(call_mutex_);
  const int64_t start_ns = now_ns();
  if (start_ns < solo_until_ns_) {
    solo_calls_.fetch_add(1, std::memory_order_relaxed);
    // As a task of this pool, so that a nested call runs inline instead of waiting for the
    // call mutex this thread already holds.
    const AsCallerOf caller(this);
    for (int64_t t = 0; t < n_tasks; ++t) fn(ctx, t, 0);
    return;
  }
  calls_.fetch_add(1, std::memory_order_relaxed);
  job_ctx_ = ctx;
  job_fn_ = fn;
  remaining_.store(static_cast<uint32_t>(n_tasks), std::memory_order_relaxed);
  const uint64_t gen = (next_.load(std::memory_order_relaxed) >> 32) + 1;
  next_.store((gen << 32) | (kTaskBase - static_cast<uint64_t>(n_tasks)), std::memory_order_seq_cst);
  job_seq_.fetch_add(1, std::memory_order_seq_cst);
  const uint32_t sleeping = sleepers_.load(std::memory_order_seq_cst);
  if (sleeping != 0) {
    futex_wake(job_seq_, static_cast<int>(std::min<int64_t>(sleeping, n_tasks - 1)));
  }
  int64_t drained_ns = 0;
  {
    const AsCallerOf caller(this);
    drain(0);
    drained_ns = now_ns();
    wait_for_completion();
  }
  note_call(start_ns, drained_ns, now_ns());
}

void ThreadPool::note_call(int64_t start_ns, int64_t drained_ns, int64_t end_ns) {
  constexpr int64_t kMinStallNs = 200000;
  const int64_t tail = end_ns - drained_ns;
  const bool stalled = tail > kMinStallNs && tail > drained_ns - start_ns;
  recent_stalls_ = ((recent_stalls_ << 1) | (stalled ? 1u : 0u)) & 0xffu;
  if (solo_ns_ > 0 && std::popcount(recent_stalls_) >= 2) {
    solo_until_ns_ = end_ns + solo_ns_;
    recent_stalls_ = 0;
  }
}

}  // namespace k2::cpu
