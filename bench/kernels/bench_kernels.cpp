// bench_kernels: DRAM read bandwidth and GEMV weight throughput of each CPU linear kernel,
// measured in one process run, printed as ratios (achieved weight bytes/s over the read
// bandwidth with the same thread count = fraction of the memory roofline).
//
// Shape: DeepSeek-V3-like expert projections, K = --in (7168) by N = --out (2048) each,
// enough of them back to back (--weights-mib, default 512) that they stream from DRAM,
// not the L3. Each thread takes every T-th matrix, so threads never share a cache line.
//
//   bench_kernels [--weights-mib 512] [--bw-mib 1024] [--iters 5] [--rows 1] [--threads 2]
//                 [--in 7168] [--out 2048] [--group 32]
// (INT4 weights use one scale per --group inputs; run with --rows 1 and --rows 16 for the
// decode and small-batch figures.)
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "int_options.h"
#include "kernels/cpu/isa.h"
#include "kernels/cpu/ops.h"
#include "kernels/cpu/packed.h"

namespace {

using k2::cpu::Isa;

struct Options {
  int64_t weights_mib = 512, bw_mib = 1024, iters = 5, rows = 1, max_threads = 2, in = 7168, out = 2048, group = 32;
};

Options parse_options(int argc, char** argv) {
  Options o;
  k2::bench::parse_int_options(argc, argv, {{"--weights-mib", &o.weights_mib}, {"--bw-mib", &o.bw_mib},
                                            {"--iters", &o.iters}, {"--rows", &o.rows}, {"--threads", &o.max_threads},
                                            {"--in", &o.in}, {"--out", &o.out}, {"--group", &o.group}});
  return o;
}

// Runs fn(t) on `threads` threads (t = 0..threads-1) and returns the wall time in seconds.
double timed_parallel(int64_t threads, const std::function<void(int64_t)>& fn) {
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> pool;
  for (int64_t t = 1; t < threads; ++t) pool.emplace_back(fn, t);
  fn(0);
  for (auto& th : pool) th.join();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Median of `iters` timed runs after one warm-up.
double median_seconds(int64_t iters, int64_t threads, const std::function<void(int64_t)>& fn) {
  timed_parallel(threads, fn);
  std::vector<double> t;
  for (int64_t i = 0; i < iters; ++i) t.push_back(timed_parallel(threads, fn));
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

volatile uint64_t g_sink;  // keeps the read loops from being optimised away

double read_bandwidth(const Options& o, int64_t threads) {
  const size_t n = static_cast<size_t>(o.bw_mib) << 17;  // uint64 words
  static std::vector<uint64_t> buf;
  if (buf.size() != n) {
    buf.assign(n, 0);
    for (size_t i = 0; i < n; i += 512) buf[i] = i;  // touch every page
  }
  const double s = median_seconds(o.iters, threads, [&](int64_t t) {
    const size_t begin = n * static_cast<size_t>(t) / static_cast<size_t>(threads);
    const size_t end = n * static_cast<size_t>(t + 1) / static_cast<size_t>(threads);
    uint64_t acc[8] = {};
    for (size_t i = begin; i + 8 <= end; i += 8) {
      for (int l = 0; l < 8; ++l) acc[l] += buf[i + static_cast<size_t>(l)];
    }
    uint64_t sum = 0;
    for (uint64_t a : acc) sum += a;
    g_sink = sum;
  });
  return static_cast<double>(n * sizeof(uint64_t)) / s;
}

template <class Packed, class Fn>
double gemv_bandwidth(const Options& o, const std::vector<Packed>& mats, Fn fn, int64_t threads,
                      const std::vector<float>& x) {
  size_t bytes = 0;
  for (const auto& m : mats) bytes += m.bytes();
  std::vector<std::vector<float>> y(static_cast<size_t>(threads), std::vector<float>(static_cast<size_t>(o.rows * o.out)));
  const double s = median_seconds(o.iters, threads, [&](int64_t t) {
    for (size_t e = static_cast<size_t>(t); e < mats.size(); e += static_cast<size_t>(threads)) {
      fn(x.data(), o.in, o.rows, mats[e].view(), y[static_cast<size_t>(t)].data(), o.out);
    }
  });
  return static_cast<double>(bytes) / s;
}

std::vector<Isa> kernel_levels() {
  std::vector<Isa> out;
  const Isa best = k2::cpu::best_isa(k2::cpu::detect_features());
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512Bf16}) {
    if (isa <= best) out.push_back(isa);
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse_options(argc, argv);
  const k2::cpu::IsaFeatures f = k2::cpu::detect_features();
  std::printf("cpu: best isa %s (amx %d), active %s; K=%lld N=%lld rows=%lld, %lld MiB of weights per format\n",
              k2::cpu::isa_name(k2::cpu::best_isa(f)), f.amx, k2::cpu::isa_name(k2::cpu::active_isa()),
              static_cast<long long>(o.in), static_cast<long long>(o.out), static_cast<long long>(o.rows),
              static_cast<long long>(o.weights_mib));

  std::vector<double> bw(static_cast<size_t>(o.max_threads + 1));
  for (int64_t t = 1; t <= o.max_threads; ++t) {
    bw[static_cast<size_t>(t)] = read_bandwidth(o, t);
    std::printf("dram read  threads=%lld  %.2f GB/s (%lld MiB buffer)\n", static_cast<long long>(t),
                bw[static_cast<size_t>(t)] / 1e9, static_cast<long long>(o.bw_mib));
  }

  std::mt19937 rng(1);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> w(static_cast<size_t>(o.in * o.out));
  for (auto& v : w) v = normal(rng);
  std::vector<float> x(static_cast<size_t>(o.rows * o.in));
  for (auto& v : x) v = normal(rng);

  auto report = [&](const char* fmt, const char* impl, int64_t t, double b) {
    std::printf("gemv %-5s %-11s threads=%lld  %.2f GB/s of weights  = %.3f of the DRAM roofline\n", fmt, impl,
                static_cast<long long>(t), b / 1e9, b / bw[static_cast<size_t>(t)]);
  };
  {
    const size_t one = static_cast<size_t>(o.out * ((o.in + 1) / 2 * 2) * 2);
    std::vector<k2::cpu::PackedBf16> mats;
    for (size_t b = 0; b < static_cast<size_t>(o.weights_mib) << 20; b += one)
      mats.push_back(k2::cpu::pack_bf16(w.data(), o.in, o.out, o.in));
    for (Isa isa : kernel_levels()) {
      const k2::cpu::CpuOps ops = k2::cpu::cpu_ops_for(isa);
      for (int64_t t = 1; t <= o.max_threads; ++t)
        report("bf16", ops.linear_bf16_name, t, gemv_bandwidth(o, mats, ops.linear_bf16, t, x));
    }
  }
  {
    const size_t one = static_cast<size_t>(o.out * ((o.in + 3) / 4 * 4));
    std::vector<k2::cpu::PackedInt8> mats;
    for (size_t b = 0; b < static_cast<size_t>(o.weights_mib) << 20; b += one)
      mats.push_back(k2::cpu::pack_int8(w.data(), o.in, o.out, o.in));
    for (Isa isa : kernel_levels()) {
      const k2::cpu::CpuOps ops = k2::cpu::cpu_ops_for(isa);
      for (int64_t t = 1; t <= o.max_threads; ++t)
        report("int8", ops.linear_int8_name, t, gemv_bandwidth(o, mats, ops.linear_int8, t, x));
    }
  }
  if (k2::cpu::int4_shape_ok(o.in, o.group)) {
    std::vector<k2::cpu::PackedInt4> mats;
    for (size_t b = 0; b < static_cast<size_t>(o.weights_mib) << 20; b += mats.back().bytes())
      mats.push_back(k2::cpu::pack_int4(w.data(), o.in, o.out, o.in, o.group));
    for (Isa isa : kernel_levels()) {
      const k2::cpu::CpuOps ops = k2::cpu::cpu_ops_for(isa);
      for (int64_t t = 1; t <= o.max_threads; ++t)
        report("int4", ops.linear_int4_name, t, gemv_bandwidth(o, mats, ops.linear_int4, t, x));
    }
  } else {
    std::printf("gemv int4 skipped: --in %lld is not a multiple of --group %lld (a multiple of 8)\n",
                static_cast<long long>(o.in), static_cast<long long>(o.group));
  }
  return 0;
}
