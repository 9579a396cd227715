// The machine's roofline, measured in-process: DRAM read bandwidth (one thread and all
// threads) and the peak rates of the CPU's vector units (AVX-512 FP32 FMA, AVX512-BF16
// vdpbf16ps, AVX512-VNNI vpdpbusd, AMX-BF16 tdpbf16ps). Benchmarks report their figures as
// fractions of these numbers, measured in the same run, because the host is shared and its
// clock and bandwidth drift by tens of percent between runs.
//
// Each measurement runs on `threads` threads pinned one per allowed CPU and reports the best
// of `reps` repetitions (the least disturbed one). Instructions wider than the x86-64-v3
// baseline are only executed when kernels/cpu/isa.h's active_isa() allows them; a unit the
// CPU lacks measures as 0.
//
// Free functions, safe to call from any thread (each allocates what it uses); running two at
// once measures contention, not the machine.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "shm/status.h"

namespace k2::bench {

struct Roofline {
  double dram_read_gbs_1t = 0;   // GB/s (1e9 bytes), one thread streaming a buffer much larger than the LLC
  double dram_read_gbs_all = 0;  // GB/s, every thread streaming its own part of it
  double fp32_fma_gflops = 0;    // all threads; AVX-512 (AVX2 when AVX-512 is not usable)
  double bf16_dot_gflops = 0;    // all threads, vdpbf16ps (2 FLOP per bf16 pair); 0 without AVX512_BF16
  double int8_dot_gops = 0;      // all threads, vpdpbusd (2 OP per u8 x s8 pair); 0 without AVX512_VNNI
  double amx_bf16_gflops = 0;    // all threads, tdpbf16ps from tiles in registers; 0 without usable AMX
  int threads = 0;               // the thread count of the *_all and peak figures
  std::string isa;               // active_isa()'s name
};

struct RooflineOptions {
  uint64_t buffer_bytes = 1ull << 30;  // the DRAM probe's buffer
  int reps = 5;                        // best of
  int threads = 0;                     // 0: every CPU this process may run on
  double compute_seconds = 0.05;       // roughly how long one repetition of a peak probe runs
};

// CPUs this process may run on (sched_getaffinity).
int usable_cpus();

// Bytes per second as GB/s of summing a buffer of `buffer_bytes` on `threads` threads
// (each its own contiguous part), best of `reps`. An allocation failure is an error value.
Result<double> measure_dram_read_gbs(int threads, uint64_t buffer_bytes, int reps);
// The same probe's every repetition (after one warm-up pass), in run order.
Result<std::vector<double>> measure_dram_read_samples(int threads, uint64_t buffer_bytes, int reps);

// Several DRAM probes of one run (e.g. before and after a benchmark's timed part). On a
// shared host a probe only ever under-reads the machine (another process took bandwidth or
// a core), so the max is the capability a fraction should be taken against, and the spread
// says how disturbed the run was.
struct ProbeSpread {
  double max = 0, min = 0, median = 0;
  int count = 0;
  // (max - min) / max: 0 for a quiet host; 0 when there is no sample.
  double relative_spread() const { return max > 0 ? (max - min) / max : 0.0; }
};
ProbeSpread summarize_probes(std::vector<double> samples);
// Peak rates on `threads` threads (0 when the instructions are not usable here).
double measure_fp32_fma_gflops(int threads, int reps, double seconds);
double measure_bf16_dot_gflops(int threads, int reps, double seconds);
double measure_int8_dot_gops(int threads, int reps, double seconds);
double measure_amx_bf16_gflops(int threads, int reps, double seconds);

// Everything above, in one run.
Result<Roofline> measure_roofline(const RooflineOptions& options);

nlohmann::json roofline_to_json(const Roofline& r);
// A printable table; units not available on this CPU read "n/a".
std::string roofline_table(const Roofline& r);

}  // namespace k2::bench
