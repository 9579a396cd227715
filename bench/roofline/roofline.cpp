#include "bench/roofline/roofline.h"

#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <thread>
#include <utility>
#include <vector>

#include "bench/roofline/roofline_kernels.h"
#include "kernels/cpu/isa.h"

namespace k2::bench {
namespace {

using Clock = std::chrono::steady_clock;
using cpu::Isa;

// Keeps every probe's result observable so no loop is optimised away.
std::atomic<uint64_t> g_sink{0};

void sink(double v) {
  uint64_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  g_sink.fetch_xor(bits, std::memory_order_relaxed);
}

std::vector<int> allowed_cpus() {
  std::vector<int> cpus;
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    for (int c = 0; c < CPU_SETSIZE; ++c) {
      if (CPU_ISSET(c, &set)) cpus.push_back(c);
    }
  }
  return cpus;
}

void pin_to(int cpu) {
  if (cpu < 0) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  pthread_setaffinity_np(pthread_self(), sizeof set, &set);  // best effort: a cgroup may refuse
}

// Runs body(t) on `threads` threads pinned one per CPU, released together; returns the
// seconds from the first start to the last finish.
double run_pinned(int threads, const std::function<void(int)>& body) {
  const std::vector<int> cpus = allowed_cpus();
  std::vector<Clock::time_point> start(threads), end(threads);
  std::barrier gate(threads);
  auto run = [&](int t) {
    pin_to(cpus.empty() ? -1 : cpus[static_cast<size_t>(t) % cpus.size()]);
    gate.arrive_and_wait();
    start[t] = Clock::now();
    body(t);
    end[t] = Clock::now();
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(run, t);
  run(0);
  for (std::thread& th : pool) th.join();
  // The main thread was pinned for the run; let it go anywhere again.
  cpu_set_t all;
  CPU_ZERO(&all);
  for (int c : cpus) CPU_SET(c, &all);
  if (!cpus.empty()) pthread_setaffinity_np(pthread_self(), sizeof all, &all);
  return std::chrono::duration<double>(*std::max_element(end.begin(), end.end()) -
                                       *std::min_element(start.begin(), start.end()))
      .count();
}

// An anonymous mapping, freed when it goes.
class Buffer {
 public:
  static Result<Buffer> allocate(uint64_t bytes) {
    void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return unavailable("cannot map " + std::to_string(bytes >> 20) + " MiB: " + std::strerror(errno));
    ::madvise(p, bytes, MADV_HUGEPAGE);  // fewer TLB misses; a hint the kernel may ignore
    return Buffer(static_cast<uint8_t*>(p), bytes);
  }
  Buffer(Buffer&& o) noexcept : p_(std::exchange(o.p_, nullptr)), n_(o.n_) {}
  Buffer& operator=(Buffer&&) = delete;
  ~Buffer() {
    if (p_) ::munmap(p_, n_);
  }
  uint8_t* data() const { return p_; }

 private:
  Buffer(uint8_t* p, uint64_t n) : p_(p), n_(n) {}
  uint8_t* p_;
  uint64_t n_;
};

uint64_t stream_sum(const uint8_t* p, uint64_t bytes) {
  return cpu::active_isa() >= Isa::kAvx512 ? roofline::stream_sum_avx512(p, bytes)
                                           : roofline::stream_sum_avx2(p, bytes);
}

// Best rate (work units per second, in billions) of `kernel(iters)` on every thread, with
// iters calibrated so one repetition runs about `seconds`.
template <class Kernel>
double peak_rate(int threads, int reps, double seconds, double work_per_iter, Kernel kernel) {
  int64_t iters = 1000;
  for (;;) {  // calibrate on one thread until a run is long enough to time
    const auto t0 = Clock::now();
    sink(static_cast<double>(kernel(iters)));
    const double dt = std::chrono::duration<double>(Clock::now() - t0).count();
    if (dt > 0.002 || iters > (int64_t{1} << 40)) {
      iters = std::max<int64_t>(1000, static_cast<int64_t>(static_cast<double>(iters) * seconds / dt));
      break;
    }
    iters *= 8;
  }
  double best = 0;
  for (int r = 0; r < reps; ++r) {
    std::vector<double> results(threads);
    const double dt = run_pinned(threads, [&](int t) { results[t] = static_cast<double>(kernel(iters)); });
    for (double v : results) sink(v);
    best = std::max(best, work_per_iter * static_cast<double>(iters) * threads / dt / 1e9);
  }
  return best;
}

std::string figure(double v, const char* unit) {
  if (v <= 0) return "n/a";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.1f %s", v, unit);
  return buf;
}

}  // namespace

int usable_cpus() { return std::max(1, static_cast<int>(allowed_cpus().size())); }

Result<std::vector<double>> measure_dram_read_samples(int threads, uint64_t buffer_bytes, int reps) {
  threads = std::max(1, threads);
  // Whole 4 KiB pages per thread, so every part is a multiple of the kernels' 512 bytes.
  const uint64_t part = std::max<uint64_t>(4096, buffer_bytes / threads / 4096 * 4096);
  const uint64_t total = part * threads;
  K2_ASSIGN_OR_RETURN(Buffer buf, Buffer::allocate(total));
  // Each thread first-touches its own part (its pages land on its node), with non-zero
  // bytes so no page is the shared zero page.
  run_pinned(threads, [&](int t) { std::memset(buf.data() + part * t, 1 + t, part); });
  std::vector<double> samples;
  for (int r = 0; r < std::max(1, reps) + 1; ++r) {  // the first pass warms TLBs and clocks
    std::vector<uint64_t> sums(threads);
    const double dt = run_pinned(threads, [&](int t) { sums[t] = stream_sum(buf.data() + part * t, part); });
    for (uint64_t s : sums) sink(static_cast<double>(s));
    if (r > 0) samples.push_back(static_cast<double>(total) / dt / 1e9);
  }
  return samples;
}

Result<double> measure_dram_read_gbs(int threads, uint64_t buffer_bytes, int reps) {
  K2_ASSIGN_OR_RETURN(std::vector<double> samples, measure_dram_read_samples(threads, buffer_bytes, reps));
  return summarize_probes(std::move(samples)).max;
}

ProbeSpread summarize_probes(std::vector<double> samples) {
  ProbeSpread p;
  if (samples.empty()) return p;
  std::sort(samples.begin(), samples.end());
  p.count = static_cast<int>(samples.size());
  p.min = samples.front();
  p.max = samples.back();
  const size_t n = samples.size();
  p.median = n % 2 == 1 ? samples[n / 2] : (samples[n / 2 - 1] + samples[n / 2]) / 2;
  return p;
}

double measure_fp32_fma_gflops(int threads, int reps, double seconds) {
  if (cpu::active_isa() >= Isa::kAvx512) {
    return peak_rate(threads, reps, seconds, roofline::kFp32FmaAvx512Flop, roofline::fp32_fma_avx512);
  }
  if (cpu::active_isa() >= Isa::kAvx2) {
    return peak_rate(threads, reps, seconds, roofline::kFp32FmaAvx2Flop, roofline::fp32_fma_avx2);
  }
  return 0;
}

double measure_bf16_dot_gflops(int threads, int reps, double seconds) {
  if (cpu::active_isa() < Isa::kAvx512Bf16) return 0;
  return peak_rate(threads, reps, seconds, roofline::kBf16DotFlop, roofline::bf16_dot_avx512);
}

double measure_int8_dot_gops(int threads, int reps, double seconds) {
  if (cpu::active_isa() < Isa::kAvx512Bf16) return 0;  // that level includes AVX512_VNNI
  return peak_rate(threads, reps, seconds, roofline::kInt8DotOp, roofline::int8_dot_avx512);
}

double measure_amx_bf16_gflops(int threads, int reps, double seconds) {
  if (cpu::active_isa() < Isa::kAmx) return 0;
  return peak_rate(threads, reps, seconds, roofline::kAmxBf16Flop, roofline::amx_bf16);
}

Result<Roofline> measure_roofline(const RooflineOptions& o) {
  Roofline r;
  r.threads = o.threads > 0 ? o.threads : usable_cpus();
  r.isa = cpu::isa_name(cpu::active_isa());
  const int reps = std::max(1, o.reps);
  K2_ASSIGN_OR_RETURN(r.dram_read_gbs_1t, measure_dram_read_gbs(1, o.buffer_bytes, reps));
  K2_ASSIGN_OR_RETURN(r.dram_read_gbs_all, measure_dram_read_gbs(r.threads, o.buffer_bytes, reps));
  r.fp32_fma_gflops = measure_fp32_fma_gflops(r.threads, reps, o.compute_seconds);
  r.bf16_dot_gflops = measure_bf16_dot_gflops(r.threads, reps, o.compute_seconds);
  r.int8_dot_gops = measure_int8_dot_gops(r.threads, reps, o.compute_seconds);
  r.amx_bf16_gflops = measure_amx_bf16_gflops(r.threads, reps, o.compute_seconds);
  return r;
}

nlohmann::json roofline_to_json(const Roofline& r) {
  return {{"dram_read_gbs_1t", r.dram_read_gbs_1t}, {"dram_read_gbs_all", r.dram_read_gbs_all},
          {"fp32_fma_gflops", r.fp32_fma_gflops},   {"bf16_dot_gflops", r.bf16_dot_gflops},
          {"int8_dot_gops", r.int8_dot_gops},       {"amx_bf16_gflops", r.amx_bf16_gflops},
          {"threads", r.threads},                   {"isa", r.isa}};
}

std::string roofline_table(const Roofline& r) {
  const std::string all = std::to_string(r.threads) + (r.threads == 1 ? " thread" : " threads");
  const std::pair<std::string, std::string> rows[] = {
      {"DRAM read, 1 thread", figure(r.dram_read_gbs_1t, "GB/s")},
      {"DRAM read, " + all, figure(r.dram_read_gbs_all, "GB/s")},
      {"FP32 FMA peak, " + all, figure(r.fp32_fma_gflops, "GFLOP/s")},
      {"BF16 dot (vdpbf16ps), " + all, figure(r.bf16_dot_gflops, "GFLOP/s")},
      {"INT8 dot (vpdpbusd), " + all, figure(r.int8_dot_gops, "GOP/s")},
      {"AMX-BF16 (tdpbf16ps), " + all, figure(r.amx_bf16_gflops, "GFLOP/s")},
  };
  std::string out = "Roofline (ISA " + r.isa + ")\n";
  char line[128];
  std::snprintf(line, sizeof line, "%-36s %16s\n", "quantity", "measured");
  out += line;
  out += std::string(53, '-') + "\n";
  for (const auto& [name, value] : rows) {
    std::snprintf(line, sizeof line, "%-36s %16s\n", name.c_str(), value.c_str());
    out += line;
  }
  return out;
}

}  // namespace k2::bench
