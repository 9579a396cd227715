// Smoke tests on small sizes. No timed assertion: only that each probe runs on the units
// this CPU has, reports 0 for those it lacks, and that the kernels compute what they claim.
#include "bench/roofline/roofline.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "bench/roofline/bench_roofline.h"
#include "bench/roofline/roofline_kernels.h"
#include "kernels/cpu/isa.h"

namespace k2::bench {
namespace {

using cpu::Isa;

TEST(RooflineKernels, StreamSumsAddEveryWord) {
  constexpr size_t kWords = 4096;  // 32 KiB
  alignas(64) static uint64_t words[kWords];
  uint64_t want = 0;
  for (size_t i = 0; i < kWords; ++i) want += words[i] = i * 2654435761u;
  const auto* p = reinterpret_cast<const uint8_t*>(words);
  EXPECT_EQ(roofline::stream_sum_avx2(p, kWords * 8), want);
  if (cpu::active_isa() >= Isa::kAvx512) {
    EXPECT_EQ(roofline::stream_sum_avx512(p, kWords * 8), want);
  }
}

TEST(RooflineKernels, DotLoopsAccumulate) {
  if (cpu::active_isa() >= Isa::kAvx512) {
    const float v = roofline::fp32_fma_avx512(100);
    EXPECT_TRUE(std::isfinite(v) && v > 0) << v;
  }
  const float v2 = roofline::fp32_fma_avx2(100);
  EXPECT_TRUE(std::isfinite(v2) && v2 > 0) << v2;
  if (cpu::active_isa() >= Isa::kAvx512Bf16) {
    const float b = roofline::bf16_dot_avx512(10);
    EXPECT_TRUE(std::isfinite(b) && b > 0) << b;
    EXPECT_NE(roofline::int8_dot_avx512(10), 0);  // lanes of 10 * 4 * (3 * -2) * 16 chains, or-ed
  }
}

TEST(Roofline, SmallRunGivesEveryAvailableFigure) {
  RooflineOptions o;
  o.buffer_bytes = 16ull << 20;
  o.reps = 1;
  o.compute_seconds = 0.002;
  Result<Roofline> r = measure_roofline(o);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->threads, usable_cpus());
  EXPECT_GT(r->dram_read_gbs_1t, 0);
  EXPECT_GT(r->dram_read_gbs_all, 0);
  EXPECT_GT(r->fp32_fma_gflops, 0);
  const Isa isa = cpu::active_isa();
  EXPECT_EQ(r->bf16_dot_gflops > 0, isa >= Isa::kAvx512Bf16);
  EXPECT_EQ(r->int8_dot_gops > 0, isa >= Isa::kAvx512Bf16);
  EXPECT_EQ(r->amx_bf16_gflops > 0, isa >= Isa::kAmx);
  const std::string table = roofline_table(*r);
  EXPECT_NE(table.find("DRAM read, 1 thread"), std::string::npos);
  EXPECT_EQ(table.find("n/a") != std::string::npos, isa < Isa::kAmx);
  const nlohmann::json j = roofline_to_json(*r);
  for (const char* key : {"dram_read_gbs_1t", "dram_read_gbs_all", "fp32_fma_gflops", "bf16_dot_gflops",
                          "int8_dot_gops", "amx_bf16_gflops"}) {
    EXPECT_TRUE(j.contains(key)) << key;
  }
}

TEST(Roofline, ProbeSpreadTakesTheMaxAndReportsTheSpread) {
  const ProbeSpread p = summarize_probes({30.0, 75.0, 28.0, 40.0});
  EXPECT_EQ(p.count, 4);
  EXPECT_DOUBLE_EQ(p.max, 75.0);
  EXPECT_DOUBLE_EQ(p.min, 28.0);
  EXPECT_DOUBLE_EQ(p.median, 35.0);
  EXPECT_DOUBLE_EQ(p.relative_spread(), 47.0 / 75.0);
  EXPECT_DOUBLE_EQ(summarize_probes({5.0, 1.0, 3.0}).median, 3.0);
  const ProbeSpread none = summarize_probes({});
  EXPECT_EQ(none.count, 0);
  EXPECT_EQ(none.relative_spread(), 0.0);
}

TEST(Roofline, DramSamplesAreOnePerRepetition) {
  Result<std::vector<double>> s = measure_dram_read_samples(1, 8ull << 20, 3);
  ASSERT_TRUE(s.ok()) << s.status().to_string();
  ASSERT_EQ(s->size(), 3u);
  for (double v : *s) EXPECT_GT(v, 0);
}

TEST(Roofline, CommandRejectsBadOptions) {
  EXPECT_EQ(bench_roofline_command({"--reps", "0"}), 2);
  EXPECT_EQ(bench_roofline_command({"--nope"}), 2);
  EXPECT_EQ(bench_roofline_command({"--help"}), 0);
}

}  // namespace
}  // namespace k2::bench
