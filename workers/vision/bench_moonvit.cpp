// bench_moonvit: images/s through the float32 MoonViT-3D tower + merge + projector at the real
// Kimi-K2.5 dimensions (vt_hidden 1152, 27 layers, 16 heads, MLP 4304, patch 14, 2x2 merge,
// projector to 7168) with random weights.
//   bench_moonvit [GRID_SIDE_IN_PATCHES=16] [ITERATIONS=2]
// GRID_SIDE 16 is a 224x224 image (256 patches, 64 tokens); 32 is 448x448. Threads:
// K2_CPU_THREADS (default one per CPU). Besides wall time it prints the process CPU time of
// the best iteration, so the figure per core holds on a machine others are also using.
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "workers/vision/moonvit.h"

namespace {
double process_cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         1e-6 * static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}
}  // namespace

int main(int argc, char** argv) {
  using Clock = std::chrono::steady_clock;
  const int64_t side = argc > 1 ? std::atoll(argv[1]) : 16;
  const int iters = argc > 2 ? std::atoi(argv[2]) : 2;
  k2::VisionConfig c;
  c.patch_size = 14;
  c.pos_emb_height = 64;
  c.pos_emb_width = 64;
  c.pos_emb_time = 4;
  c.hidden_size = 1152;
  c.intermediate_size = 4304;
  c.num_heads = 16;
  c.num_layers = 27;
  c.merge_height = 2;
  c.merge_width = 2;
  c.text_hidden_size = 7168;
  const auto t0 = Clock::now();
  auto vit = k2::MoonVit::load_dummy(c, 1);
  if (!vit.ok()) {
    std::fprintf(stderr, "%s\n", vit.status().to_string().c_str());
    return 1;
  }
  const double load_s = std::chrono::duration<double>(Clock::now() - t0).count();
  const k2::MediaGrid grid{1, side, side};
  std::vector<float> pixels(static_cast<size_t>(grid.patches() * c.patch_values()));
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  for (float& v : pixels) v = u(rng);
  double best = 1e30, best_cpu = 0.0;
  for (int i = 0; i < iters; ++i) {
    const auto s = Clock::now();
    const double cpu0 = process_cpu_seconds();
    auto emb = (*vit)->encode(grid, pixels);
    const double sec = std::chrono::duration<double>(Clock::now() - s).count();
    const double cpu = process_cpu_seconds() - cpu0;
    if (!emb.ok()) {
      std::fprintf(stderr, "%s\n", emb.status().to_string().c_str());
      return 1;
    }
    if (sec < best) {
      best = sec;
      best_cpu = cpu;
    }
    std::printf("iteration %d: %.3f s wall, %.3f s CPU (%lld tokens)\n", i, sec, cpu,
                static_cast<long long>(emb->tokens));
  }
  const double gflop = 2e-9 * static_cast<double>((*vit)->macs(grid));
  std::printf("moonvit K2.5 dims, %lldx%lld px (%lld patches, %.0f GFLOP): load %.1f s, best %.3f s/image = %.3f "
              "images/s = %.1f GFLOP/s wall; %.3f CPU-s/image = %.1f GFLOP per CPU-second\n",
              static_cast<long long>(side * 14), static_cast<long long>(side * 14),
              static_cast<long long>(grid.patches()), gflop, load_s, best, 1.0 / best, gflop / best, best_cpu,
              gflop / best_cpu);
  return 0;
}
