// bench_vision_gemm: the vision encoder's float32 GEMM (workers/vision/gemm_f32.h) on one
// thread at the MoonViT-3D layer shapes (real Kimi-K2.5 dims), against this core's float32
// FMA peak measured the same way (bench/roofline's probe). Both are timed in thread CPU
// time, so the ratio holds on a machine other processes are also using.
//   bench_vision_gemm [ROWS=1024]
#include <time.h>

#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "bench/roofline/roofline_kernels.h"
#include "kernels/cpu/isa.h"
#include "workers/vision/gemm_f32.h"

namespace {

double thread_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

double fma_peak_gflops(bool avx512) {
  namespace rl = k2::bench::roofline;
  const int64_t iters = 200'000'000 / (avx512 ? 16 : 12);
  const double t0 = thread_seconds();
  volatile float sink = avx512 ? rl::fp32_fma_avx512(iters) : rl::fp32_fma_avx2(iters);
  (void)sink;
  const double sec = thread_seconds() - t0;
  return static_cast<double>(iters) * (avx512 ? rl::kFp32FmaAvx512Flop : rl::kFp32FmaAvx2Flop) / sec * 1e-9;
}

}  // namespace

int main(int argc, char** argv) {
  const int64_t m = argc > 1 ? std::atoll(argv[1]) : 1024;
  const k2::cpu::Isa isa = k2::cpu::active_isa();
  const bool avx512 = isa >= k2::cpu::Isa::kAvx512;
  const double peak = fma_peak_gflops(avx512);
  std::printf("isa %s: float32 FMA peak %.1f GFLOP/s per core (thread CPU time)\n", k2::cpu::isa_name(isa), peak);
  struct Shape {
    const char* name;
    int64_t k, n;
  };
  const Shape shapes[] = {{"wqkv", 1152, 3456}, {"wo", 1152, 1152}, {"fc0", 1152, 4304}, {"fc1", 4304, 1152},
                          {"proj.0", 4608, 4608}};
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  for (const Shape& s : shapes) {
    std::vector<float> a(static_cast<size_t>(m * s.k)), w(static_cast<size_t>(s.n * s.k)), c(static_cast<size_t>(m * s.n));
    for (float& v : a) v = u(rng);
    for (float& v : w) v = u(rng);
    k2::vision::PackedMatrix b;
    b.pack_transposed(w.data(), s.k, s.n, s.k);
    double best = 1e30;
    for (int rep = 0; rep < 3; ++rep) {
      const double t0 = thread_seconds();
      k2::vision::gemm(a.data(), s.k, m, b, nullptr, c.data(), s.n, k2::vision::GemmOut::kStore, nullptr, isa);
      best = std::min(best, thread_seconds() - t0);
    }
    const double gflops = 2.0 * static_cast<double>(m * s.k * s.n) / best * 1e-9;
    std::printf("%-7s %5lld x %5lld x %5lld: %6.1f GFLOP/s = %.0f%% of peak\n", s.name, static_cast<long long>(m),
                static_cast<long long>(s.k), static_cast<long long>(s.n), gflops, 100.0 * gflops / peak);
  }
  return 0;
}
