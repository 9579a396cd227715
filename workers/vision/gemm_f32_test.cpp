#include "workers/vision/gemm_f32.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "kernels/ref/dense.h"
#include "kernels/ref/vision.h"

namespace k2::vision {
namespace {

std::vector<float> random_values(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-scale, scale);
  std::vector<float> v(n);
  for (float& x : v) x = u(rng);
  return v;
}

// Largest absolute difference.
double max_error(const std::vector<float>& got, const std::vector<float>& want) {
  double worst = 0.0;
  for (size_t i = 0; i < got.size(); ++i) worst = std::max(worst, std::fabs(double{got[i]} - want[i]));
  return worst;
}

struct Shape {
  int64_t m, n, k;
};

class GemmTest : public ::testing::TestWithParam<cpu::Isa> {};

// Every tail: rows around the 12-row tile, columns around the 32-column panel, k around
// the 256-step block, and k = 0 (bias only).
TEST_P(GemmTest, MatchesTheReferenceOnEveryTail) {
  const cpu::Isa isa = GetParam();
  cpu::ThreadPoolOptions options;
  options.threads = 3;
  cpu::ThreadPool pool(options);
  const Shape shapes[] = {{1, 1, 1},    {11, 31, 7},   {12, 32, 256}, {13, 33, 257}, {25, 72, 72},
                          {100, 65, 600}, {97, 130, 0}, {200, 300, 513}};
  for (const Shape& s : shapes) {
    for (bool threaded : {false, true}) {
      for (GemmOut out : {GemmOut::kStore, GemmOut::kAdd}) {
        SCOPED_TRACE("m " + std::to_string(s.m) + " n " + std::to_string(s.n) + " k " + std::to_string(s.k) +
                     (threaded ? " threaded" : "") + (out == GemmOut::kAdd ? " add" : " store"));
        const int64_t lda = s.k + 3, ldc = s.n + 5;
        const std::vector<float> a = random_values(static_cast<size_t>(s.m * lda), 1);
        const std::vector<float> w = random_values(static_cast<size_t>(s.n * s.k), 2);
        const std::vector<float> bias = random_values(static_cast<size_t>(s.n), 3);
        std::vector<float> c = random_values(static_cast<size_t>(s.m * ldc), 4);
        std::vector<float> want = c;
        std::vector<float> product(static_cast<size_t>(s.m * s.n));
        if (s.k > 0) ref::linear(a.data(), lda, w.data(), s.k, s.m, s.k, s.n, product.data(), s.n);
        for (int64_t r = 0; r < s.m; ++r) {
          for (int64_t j = 0; j < s.n; ++j) {
            const float v = product[static_cast<size_t>(r * s.n + j)] + bias[static_cast<size_t>(j)];
            float& dst = want[static_cast<size_t>(r * ldc + j)];
            dst = out == GemmOut::kAdd ? dst + v : v;
          }
        }
        PackedMatrix b;
        b.pack_transposed(w.data(), s.k, s.n, s.k);
        gemm(a.data(), lda, s.m, b, bias.data(), c.data(), ldc, out, threaded ? &pool : nullptr, isa);
        // Padding columns of c past n are untouched (compared as part of c).
        EXPECT_LT(max_error(c, want), 2e-5 * std::sqrt(static_cast<double>(std::max<int64_t>(s.k, 1))));
      }
    }
  }
}

TEST_P(GemmTest, PackFromKMajorEqualsPackTransposed) {
  const int64_t k = 50, n = 45, m = 17;
  const std::vector<float> bt = random_values(static_cast<size_t>(n * k), 5);  // [n, k]
  std::vector<float> b(static_cast<size_t>(k * n));                          // [k, n]
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < k; ++j) b[static_cast<size_t>(j * n + i)] = bt[static_cast<size_t>(i * k + j)];
  PackedMatrix p1, p2;
  p1.pack_transposed(bt.data(), k, n, k);
  p2.pack(b.data(), n, k, n);
  const std::vector<float> a = random_values(static_cast<size_t>(m * k), 6);
  std::vector<float> c1(static_cast<size_t>(m * n)), c2(c1.size());
  gemm(a.data(), k, m, p1, nullptr, c1.data(), n, GemmOut::kStore, nullptr, GetParam());
  gemm(a.data(), k, m, p2, nullptr, c2.data(), n, GemmOut::kStore, nullptr, GetParam());
  EXPECT_EQ(c1, c2);
}

std::vector<cpu::Isa> vector_isas() {
  std::vector<cpu::Isa> out;
  for (cpu::Isa isa : cpu::supported_isas()) {
    if (isa == cpu::Isa::kAvx2 || isa == cpu::Isa::kAvx512) out.push_back(isa);
  }
  return out;
}

INSTANTIATE_TEST_SUITE_P(Isas, GemmTest, ::testing::ValuesIn(vector_isas()),
                         [](const auto& info) { return std::string(cpu::isa_name(info.param)); });

TEST(VisionElementwise, SoftmaxMatchesTheReference) {
  for (int64_t n : {1, 7, 8, 9, 100, 1000}) {
    std::vector<float> x = random_values(static_cast<size_t>(n), 7, 30.0f);
    std::vector<float> want = x;
    const float scale = 0.118f;
    for (float& v : want) v *= scale;
    ref::softmax(want.data(), n);
    softmax_scaled(x.data(), n, scale);
    EXPECT_LT(max_error(x, want), 1e-6) << n;
  }
}

TEST(VisionElementwise, GeluTanhMatchesTheReference) {
  std::vector<float> x = random_values(1001, 8, 12.0f);
  x[0] = 0.0f;
  x[1] = 1e-4f;
  x[2] = -60.0f;
  x[3] = 60.0f;
  std::vector<float> want(x.size()), got(x.size());
  ref::gelu_tanh(x.data(), static_cast<int64_t>(x.size()), want.data());
  gelu_tanh(x.data(), static_cast<int64_t>(x.size()), got.data());
  EXPECT_LT(max_error(got, want), 2e-6);
  EXPECT_EQ(got[2], 0.0f);  // -0 or +0: both compare equal
  EXPECT_EQ(got[3], 60.0f);
}

}  // namespace
}  // namespace k2::vision
