// ThreadPool: every task exactly once, stable thread indices, the nested-call rule, pinning,
// and a stress run over many calls from several threads with pools larger than the machine
// (oversubscribed) and with spinning off (every wait goes through the futex). The stress
// tests are also the ones to run under ThreadSanitizer: configure a build directory with
// CXX=clang++ and -DCMAKE_CXX_FLAGS=-fsanitize=thread -DCMAKE_EXE_LINKER_FLAGS=-fsanitize=thread.
#include "kernels/cpu/thread_pool.h"

#include <gtest/gtest.h>
#include <sched.h>

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

namespace k2::cpu {
namespace {

ThreadPoolOptions with_threads(int threads, int spin_us = 50) {
  ThreadPoolOptions o;
  o.threads = threads;
  o.spin_us = spin_us;
  return o;
}

// Runs n tasks and checks each ran once with a valid thread index.
void expect_each_task_once(ThreadPool& pool, int64_t n) {
  std::unique_ptr<std::atomic<int>[]> hits(new std::atomic<int>[static_cast<size_t>(n) + 1]);
  for (int64_t i = 0; i < n; ++i) hits[i].store(0);
  std::atomic<int> bad_thread{0};
  pool.parallel_for(n, [&](int64_t task, int thread) {
    hits[task].fetch_add(1, std::memory_order_relaxed);
    if (thread < 0 || thread >= pool.size()) bad_thread.fetch_add(1);
  });
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << "task " << i << " of " << n;
  EXPECT_EQ(bad_thread.load(), 0);
}

TEST(ThreadPool, RunsEveryTaskExactlyOnce) {
  for (int threads : {1, 2, 3, 5}) {
    ThreadPool pool(with_threads(threads));
    EXPECT_EQ(pool.size(), threads);
    for (int64_t n : {0, 1, 2, 3, 7, 64, 1000, 12345}) expect_each_task_once(pool, n);
  }
}

TEST(ThreadPool, DefaultSizeIsTheAffinityMask) {
  cpu_set_t set;
  CPU_ZERO(&set);
  ASSERT_EQ(sched_getaffinity(0, sizeof set, &set), 0);
  ThreadPool pool;
  EXPECT_EQ(pool.size(), CPU_COUNT(&set));
}

TEST(ThreadPool, ThreadIndexIsStablePerThread) {
  ThreadPool pool(with_threads(3));
  std::mutex mu;
  std::map<int, std::thread::id> owner;
  bool consistent = true;
  for (int call = 0; call < 200; ++call) {
    pool.parallel_for(16, [&](int64_t, int thread) {
      std::lock_guard<std::mutex> lock(mu);
      auto [it, inserted] = owner.emplace(thread, std::this_thread::get_id());
      if (!inserted && it->second != std::this_thread::get_id()) consistent = false;
    });
  }
  EXPECT_TRUE(consistent);
  ASSERT_TRUE(owner.count(0));
  EXPECT_EQ(owner[0], std::this_thread::get_id());  // the caller is thread 0
}

TEST(ThreadPool, NestedCallRunsInlineOnTheSameThread) {
  ThreadPool pool(with_threads(3));
  std::atomic<int> inner_total{0}, mismatches{0};
  pool.parallel_for(6, [&](int64_t, int thread) {
    const auto me = std::this_thread::get_id();
    pool.parallel_for(5, [&](int64_t, int inner_thread) {
      inner_total.fetch_add(1);
      if (inner_thread != thread || std::this_thread::get_id() != me) mismatches.fetch_add(1);
    });
  });
  EXPECT_EQ(inner_total.load(), 30);
  EXPECT_EQ(mismatches.load(), 0);
}

TEST(ThreadPool, AnotherPoolInsideATaskWorks) {
  ThreadPool outer(with_threads(2)), inner(with_threads(2));
  std::atomic<int> total{0};
  outer.parallel_for(4, [&](int64_t, int) {
    inner.parallel_for(8, [&](int64_t, int) { total.fetch_add(1); });
  });
  EXPECT_EQ(total.load(), 32);
}

TEST(ThreadPool, SleepingWorkersWakeUp) {
  ThreadPool pool(with_threads(3, /*spin_us=*/0));
  for (int round = 0; round < 5; ++round) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));  // workers go to sleep
    expect_each_task_once(pool, 100);
  }
  EXPECT_GT(pool.stats().futex_waits, 0u);
  EXPECT_EQ(pool.stats().calls, 5u);
}

TEST(ThreadPool, TasksSpreadOverThreads) {
  ThreadPool pool(with_threads(2, /*spin_us=*/1000));
  std::atomic<int> by_worker{0};
  for (int call = 0; call < 50 && by_worker.load() == 0; ++call) {
    pool.parallel_for(64, [&](int64_t, int thread) {
      if (thread != 0) by_worker.fetch_add(1);
      const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(20);
      while (std::chrono::steady_clock::now() < until) {
      }
    });
  }
  EXPECT_GT(by_worker.load(), 0) << "the worker never took a task";
}

TEST(ThreadPool, PinnedThreadsRunOnTheirCpus) {
  cpu_set_t set;
  CPU_ZERO(&set);
  ASSERT_EQ(sched_getaffinity(0, sizeof set, &set), 0);
  std::vector<int> cpus;
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &set)) cpus.push_back(c);
  // Pinning pins the constructing thread too: do it on a thread of its own.
  std::thread([&] {
    ThreadPoolOptions o;
    o.threads = static_cast<int>(cpus.size());
    o.pin = true;
    ThreadPool pool(o);
    std::vector<std::atomic<int>> wrong(static_cast<size_t>(pool.size()));
    pool.parallel_for(256, [&](int64_t, int thread) {
      if (sched_getcpu() != cpus[static_cast<size_t>(thread)]) wrong[static_cast<size_t>(thread)].fetch_add(1);
    });
    for (auto& w : wrong) EXPECT_EQ(w.load(), 0);
  }).join();
}

// Many calls of random sizes from several threads at once on oversubscribed pools, with
// and without spinning; every task's result lands in its own slot.
TEST(ThreadPool, StressManyCallsFromManyThreads) {
  for (int spin_us : {0, 20}) {
    ThreadPool pool(with_threads(4, spin_us));
    std::atomic<int> failures{0};
    auto client = [&](unsigned seed) {
      std::mt19937 rng(seed);
      std::vector<int64_t> slots;
      for (int call = 0; call < 4000; ++call) {
        const int64_t n = static_cast<int64_t>(rng() % 40);
        slots.assign(static_cast<size_t>(n), -1);
        const int64_t salt = call * 1000;
        pool.parallel_for(n, [&](int64_t task, int) { slots[static_cast<size_t>(task)] = salt + task; });
        for (int64_t t = 0; t < n; ++t)
          if (slots[static_cast<size_t>(t)] != salt + t) failures.fetch_add(1);
        if (rng() % 64 == 0) std::this_thread::sleep_for(std::chrono::microseconds(rng() % 300));
      }
    };
    std::vector<std::thread> clients;
    for (unsigned c = 0; c < 3; ++c) clients.emplace_back(client, 17 + c);
    for (auto& t : clients) t.join();
    EXPECT_EQ(failures.load(), 0) << "spin_us=" << spin_us;
  }
}

// A worker that keeps the caller waiting (here: sleeping in its tasks, as if preempted)
// makes the pool run calls on the caller alone for a while; with solo_ms = 0 it never does.
TEST(ThreadPool, RepeatedStallsRunCallsOnTheCallerAlone) {
  for (int solo_ms : {1000, 0}) {
    ThreadPoolOptions o = with_threads(2, /*spin_us=*/2000);
    o.solo_ms = solo_ms;
    ThreadPool pool(o);
    for (int call = 0; call < 200 && pool.stats().solo_calls == 0; ++call) {
      // The caller's first task waits (bounded) until a worker has claimed a task, so every
      // call really stalls on a sleeping worker even when workers wake slowly (sanitizers).
      std::atomic<bool> worker_took{false};
      pool.parallel_for(64, [&](int64_t task, int thread) {
        if (thread != 0) {
          worker_took.store(true);
          std::this_thread::sleep_for(std::chrono::milliseconds(5));
          return;
        }
        const auto now = std::chrono::steady_clock::now();
        const auto until = now + std::chrono::microseconds(10);
        const auto give_up = now + std::chrono::milliseconds(50);
        while (std::chrono::steady_clock::now() < until ||
               (task == 63 && !worker_took.load() && std::chrono::steady_clock::now() < give_up)) {
        }
      });
    }
    if (solo_ms == 0) {
      EXPECT_EQ(pool.stats().solo_calls, 0u);
      continue;
    }
    ASSERT_GT(pool.stats().solo_calls, 0u);
    std::atomic<int> off_caller{0};
    pool.parallel_for(64, [&](int64_t, int thread) {
      if (thread != 0) off_caller.fetch_add(1);
    });
    EXPECT_EQ(off_caller.load(), 0);
    // A nested call during the solo period runs inline (it once waited for the call mutex
    // its own caller held: a deadlock).
    std::atomic<int> inner{0};
    pool.parallel_for(4, [&](int64_t, int) { pool.parallel_for(3, [&](int64_t, int) { inner.fetch_add(1); }); });
    EXPECT_EQ(inner.load(), 12);
    expect_each_task_once(pool, 100);
  }
}

TEST(ThreadPool, CreateAndDestroyRepeatedly) {
  for (int i = 0; i < 50; ++i) {
    ThreadPool pool(with_threads(3, i % 2 ? 0 : 10));
    if (i % 3) expect_each_task_once(pool, i);
  }
}

TEST(ThreadPoolDeathTest, RejectsTooManyTasks) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");  // the pool's threads exist before the fork
  ThreadPool pool(with_threads(2));
  EXPECT_DEATH(pool.parallel_for(int64_t{1} << 31, [](int64_t, int) {}), "bad task count");
}

}  // namespace
}  // namespace k2::cpu
