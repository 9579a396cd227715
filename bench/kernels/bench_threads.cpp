// bench_threads: what the CPU thread pool costs and how it holds up when another process
// takes a core.
//
//  1. parallel_for overhead: µs per call with one trivial task per thread, back to back
//     (workers still spinning) and after an idle gap (workers asleep on the futex).
//  2. decode GEMV (bf16, M = --rows, K = --in by N = --out matrices, --weights-mib of them,
//     far beyond the LLC) through linear_bf16_mt: 1 thread, 2 threads, then 2 threads while
//     a forked child spins (`for (;;)`) on cpu 0, on cpu 1 and unpinned. Printed as weight
//     GB/s and as ratios to the 1-thread run without the busy process (goal >= 0.8).
//
//   bench_threads [--in 7168] [--out 2048] [--rows 1] [--weights-mib 512] [--iters 7]
//                 [--threads 2] [--spin-us 50] [--pin 0] [--solo-ms 50]
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "kernels/cpu/linear_mt.h"
#include "kernels/cpu/packed.h"
#include "kernels/cpu/thread_pool.h"

namespace {

using k2::cpu::ThreadPool;
using k2::cpu::ThreadPoolOptions;

struct Options {
  int64_t in = 7168, out = 2048, rows = 1, weights_mib = 512, iters = 7, threads = 2, spin_us = 50, pin = 0,
          solo_ms = 50;
};

Options parse_options(int argc, char** argv) {
  Options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string key = argv[i];
    const int64_t v = std::strtoll(argv[i + 1], nullptr, 10);
    if (v < 0 || (v == 0 && key != "--pin" && key != "--spin-us" && key != "--solo-ms")) {
      std::fprintf(stderr, "bad value for %s\n", key.c_str());
      std::exit(2);
    }
    if (key == "--in") o.in = v;
    else if (key == "--out") o.out = v;
    else if (key == "--rows") o.rows = v;
    else if (key == "--weights-mib") o.weights_mib = v;
    else if (key == "--iters") o.iters = v;
    else if (key == "--threads") o.threads = v;
    else if (key == "--spin-us") o.spin_us = v;
    else if (key == "--pin") o.pin = v;
    else if (key == "--solo-ms") o.solo_ms = v;
    else {
      std::fprintf(stderr, "unknown option %s\n", key.c_str());
      std::exit(2);
    }
  }
  return o;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

ThreadPoolOptions pool_options(const Options& o, int64_t threads) {
  ThreadPoolOptions p;
  p.threads = static_cast<int>(threads);
  p.spin_us = static_cast<int>(o.spin_us);
  p.pin = o.pin != 0;
  p.solo_ms = static_cast<int>(o.solo_ms);
  return p;
}

void bench_overhead(const Options& o) {
  ThreadPool pool(pool_options(o, o.threads));
  std::vector<int64_t> sink(static_cast<size_t>(pool.size()) * 16);
  auto call = [&] {
    pool.parallel_for(pool.size(), [&](int64_t task, int thread) { sink[static_cast<size_t>(thread) * 16] += task; });
  };
  for (int i = 0; i < 1000; ++i) call();
  const int kHot = 20000;
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < kHot; ++i) call();
  const double hot_us = seconds_since(t0) / kHot * 1e6;
  const int kCold = 200;
  const auto gap = std::chrono::microseconds(o.spin_us + 500);
  double cold = 0.0;
  const auto waits0 = pool.stats().futex_waits;
  for (int i = 0; i < kCold; ++i) {
    std::this_thread::sleep_for(gap);
    t0 = std::chrono::steady_clock::now();
    call();
    cold += seconds_since(t0);
  }
  std::printf("parallel_for overhead, %d threads, %d tasks: %.2f us/call back to back; %.2f us/call after a %lld us "
              "idle gap (workers asleep; %llu futex sleeps)\n",
              pool.size(), pool.size(), hot_us, cold / kCold * 1e6, static_cast<long long>(gap.count()),
              static_cast<unsigned long long>(pool.stats().futex_waits - waits0));
}

// A child process that spins on `cpu` (-1: unpinned) until killed.
pid_t start_busy_process(int cpu) {
  const pid_t pid = fork();
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (cpu >= 0) {
      cpu_set_t set;
      CPU_ZERO(&set);
      CPU_SET(cpu, &set);
      sched_setaffinity(0, sizeof set, &set);
    }
    volatile uint64_t n = 0;
    for (;;) n = n + 1;
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // let it start spinning
  return pid;
}

void stop_busy_process(pid_t pid) {
  if (pid <= 0) return;
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
}

struct Gemv {
  const Options& o;
  std::vector<k2::cpu::PackedBf16> mats;
  std::vector<float> x, y;
  size_t bytes = 0;

  // Weight GB/s of the median sweep over all matrices.
  double run(ThreadPool& pool) {
    auto sweep = [&] {
      for (const auto& m : mats) k2::cpu::linear_bf16_mt(pool, x.data(), o.in, o.rows, m.view(), y.data(), o.out);
    };
    sweep();
    std::vector<double> t;
    for (int64_t i = 0; i < o.iters; ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      sweep();
      t.push_back(seconds_since(t0));
    }
    std::sort(t.begin(), t.end());
    return static_cast<double>(bytes) / t[t.size() / 2] / 1e9;
  }
};

void bench_busy_core(const Options& o) {
  Gemv g{o, {}, {}, {}, 0};
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> w(static_cast<size_t>(o.in * o.out));
  for (auto& v : w) v = normal(rng);
  g.x.resize(static_cast<size_t>(o.rows * o.in));
  for (auto& v : g.x) v = normal(rng);
  g.y.resize(static_cast<size_t>(o.rows * o.out));
  while (g.bytes < static_cast<size_t>(o.weights_mib) << 20) {
    g.mats.push_back(k2::cpu::pack_bf16(w.data(), o.in, o.out, o.in));
    g.bytes += g.mats.back().bytes();
  }
  const int64_t tasks = k2::cpu::plan_blocks(g.mats[0].view().n_blocks(), g.mats[0].view().block_elems() * 2,
                                             static_cast<int>(o.threads)).n_tasks;
  std::printf("decode gemv bf16 M=%lld K=%lld N=%lld: %zu matrices, %.0f MiB, %lld tasks per call\n",
              static_cast<long long>(o.rows), static_cast<long long>(o.in), static_cast<long long>(o.out),
              g.mats.size(), static_cast<double>(g.bytes) / (1 << 20), static_cast<long long>(tasks));
  ThreadPool one(pool_options(o, 1));
  const double bw1 = g.run(one);
  std::printf("  1 thread              %6.2f GB/s  (baseline)\n", bw1);
  ThreadPool many(pool_options(o, o.threads));
  const double bw2 = g.run(many);
  std::printf("  %lld threads             %6.2f GB/s  = %.2fx of 1 thread\n", static_cast<long long>(o.threads), bw2,
              bw2 / bw1);
  for (int cpu : {0, 1, -1}) {
    const pid_t busy = start_busy_process(cpu);
    const auto before = many.stats();
    const double bwb = g.run(many);
    const auto waits = many.stats().futex_waits - before.futex_waits;
    const auto solo = many.stats().solo_calls - before.solo_calls;
    stop_busy_process(busy);
    const std::string where = cpu >= 0 ? "on cpu " + std::to_string(cpu) : std::string("unpinned");
    std::printf("  %lld threads, busy %-8s %6.2f GB/s  = %.2fx of 1 thread (goal >= 0.8); %llu futex sleeps, "
                "%llu of %zu calls solo\n",
                static_cast<long long>(o.threads), where.c_str(), bwb, bwb / bw1, static_cast<unsigned long long>(waits),
                static_cast<unsigned long long>(solo), g.mats.size() * static_cast<size_t>(o.iters + 1));
  }
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse_options(argc, argv);
  bench_overhead(o);
  bench_busy_core(o);
  return 0;
}
