// Only the AVX-512 kernel carries a wider target attribute; the rest is the x86-64-v3
// baseline (AVX2/FMA), so no wider instruction leaks into shared inline code.
#include "workers/vision/gemm_f32.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <numbers>
#include <utility>

#define K2_VIT_AVX512 __attribute__((target("avx512f,avx512vl,avx512dq")))

namespace k2::vision {
namespace {

// One micro-tile: c[mr, nr] (+)= a_tile[kc][12] · b_panel[kc][32] (+ bias).
struct Tile {
  const float* a;     // packed a micro-panel at the block's first k
  const float* b;     // packed B panel at the block's first k
  int64_t kc;         // k steps in this block
  float* c;
  int64_t ldc;
  int mr, nr;         // valid rows (<= 12) and columns (<= 32)
  const float* bias;  // [nr] or null
  bool load_c;        // add to c's current values
};

using KernelFn = void (*)(const Tile&);

// ---- AVX-512: 12 x 32, 24 zmm accumulators ---------------------------------------------

template <int... R>
K2_VIT_AVX512 inline void fma_rows512(std::integer_sequence<int, R...>, __m512 (&acc)[kTileM][2], const float* a,
                                      __m512 b0, __m512 b1) {
  ((acc[R][0] = _mm512_fmadd_ps(_mm512_set1_ps(a[R]), b0, acc[R][0]),
    acc[R][1] = _mm512_fmadd_ps(_mm512_set1_ps(a[R]), b1, acc[R][1])),
   ...);
}

K2_VIT_AVX512 inline __mmask16 lanes(int n) {
  return n >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << std::max(n, 0)) - 1u);
}

K2_VIT_AVX512 void kernel_avx512(const Tile& t) {
  __m512 acc[kTileM][2];
  for (auto& row : acc) row[0] = row[1] = _mm512_setzero_ps();
  const float* a = t.a;
  const float* b = t.b;
  for (int64_t k = 0; k < t.kc; ++k, a += kTileM, b += kPanelN) {
    fma_rows512(std::make_integer_sequence<int, kTileM>(), acc, a, _mm512_loadu_ps(b), _mm512_loadu_ps(b + 16));
  }
  const __mmask16 m0 = lanes(t.nr), m1 = lanes(t.nr - 16);
  const __m512 bias0 = t.bias ? _mm512_maskz_loadu_ps(m0, t.bias) : _mm512_setzero_ps();
  const __m512 bias1 = t.bias ? _mm512_maskz_loadu_ps(m1, t.bias + 16) : _mm512_setzero_ps();
  for (int r = 0; r < t.mr; ++r) {
    float* c = t.c + r * t.ldc;
    __m512 v0 = _mm512_add_ps(acc[r][0], bias0), v1 = _mm512_add_ps(acc[r][1], bias1);
    if (t.load_c) {
      v0 = _mm512_add_ps(_mm512_maskz_loadu_ps(m0, c), v0);
      v1 = _mm512_add_ps(_mm512_maskz_loadu_ps(m1, c + 16), v1);
    }
    _mm512_mask_storeu_ps(c, m0, v0);
    _mm512_mask_storeu_ps(c + 16, m1, v1);
  }
}

// ---- AVX2: the 12 x 32 tile as four 6 x 16 passes, 12 ymm accumulators ------------------

template <int... R>
inline void fma_rows256(std::integer_sequence<int, R...>, __m256 (&acc)[6][2], const float* a, __m256 b0, __m256 b1) {
  ((acc[R][0] = _mm256_fmadd_ps(_mm256_set1_ps(a[R]), b0, acc[R][0]),
    acc[R][1] = _mm256_fmadd_ps(_mm256_set1_ps(a[R]), b1, acc[R][1])),
   ...);
}

void kernel_avx2_part(const Tile& t, int r0, int c0) {
  __m256 acc[6][2];
  for (auto& row : acc) row[0] = row[1] = _mm256_setzero_ps();
  // With k = 0 the packed buffers may be empty (null): no offset is applied to them then.
  const float* a = t.kc > 0 ? t.a + r0 : nullptr;
  const float* b = t.kc > 0 ? t.b + c0 : nullptr;
  for (int64_t k = 0; k < t.kc; ++k, a += kTileM, b += kPanelN) {
    fma_rows256(std::make_integer_sequence<int, 6>(), acc, a, _mm256_loadu_ps(b), _mm256_loadu_ps(b + 8));
  }
  const int rows = std::min(6, t.mr - r0), cols = std::min(16, t.nr - c0);
  alignas(32) float tile[6][16];
  for (int r = 0; r < 6; ++r) {
    _mm256_store_ps(tile[r], acc[r][0]);
    _mm256_store_ps(tile[r] + 8, acc[r][1]);
  }
  for (int r = 0; r < rows; ++r) {
    float* c = t.c + (r0 + r) * t.ldc + c0;
    for (int j = 0; j < cols; ++j) {
      float v = tile[r][j] + (t.bias ? t.bias[c0 + j] : 0.0f);
      c[j] = t.load_c ? c[j] + v : v;
    }
  }
}

void kernel_avx2(const Tile& t) {
  for (int r0 = 0; r0 < t.mr; r0 += 6) {
    for (int c0 = 0; c0 < t.nr; c0 += 16) kernel_avx2_part(t, r0, c0);
  }
}

KernelFn kernel_for(cpu::Isa isa) { return isa >= cpu::Isa::kAvx512 ? kernel_avx512 : kernel_avx2; }

// a [m, k] -> [tiles][k][12], rows past m zero.
void pack_a_tile(const float* a, int64_t lda, int64_t m, int64_t k, int64_t tile, float* out) {
  const int64_t r0 = tile * kTileM, rows = std::min(kTileM, m - r0);
  float* dst = out + tile * k * kTileM;
  for (int64_t kk = 0; kk < k; ++kk) {
    for (int64_t r = 0; r < kTileM; ++r) dst[kk * kTileM + r] = r < rows ? a[(r0 + r) * lda + kk] : 0.0f;
  }
}

// Tasks: kTilesPerTask row tiles x kPanelsPerTask column panels (a ~96 x 128 block of c).
constexpr int64_t kTilesPerTask = 8;
constexpr int64_t kPanelsPerTask = 4;
// Below this many multiply-adds a call stays on the calling thread.
constexpr int64_t kMinParallelMacs = int64_t{1} << 20;

struct Job {
  const float* a_packed;
  int64_t m, k;
  const PackedMatrix* b;
  const float* bias;
  float* c;
  int64_t ldc;
  GemmOut out;
  KernelFn kernel;

  void run(int64_t tile0, int64_t tile1, int64_t panel0, int64_t panel1) const {
    const int64_t n = b->n();
    const int64_t k_end = std::max<int64_t>(k, 1);  // k = 0 still writes the bias
    for (int64_t k0 = 0; k0 < k_end; k0 += kBlockK) {
      const int64_t kc = std::min(kBlockK, k - k0);
      const bool first = k0 == 0;
      for (int64_t p = panel0; p < panel1; ++p) {
        const int64_t col = p * kPanelN;
        for (int64_t t = tile0; t < tile1; ++t) {
          const int64_t row = t * kTileM;
          Tile tile{a_packed + t * k * kTileM + k0 * kTileM,
                    b->panel(p) + k0 * kPanelN,
                    std::max<int64_t>(kc, 0),
                    c + row * ldc + col,
                    ldc,
                    static_cast<int>(std::min(kTileM, m - row)),
                    static_cast<int>(std::min(kPanelN, n - col)),
                    first && bias != nullptr ? bias + col : nullptr,
                    !first || out == GemmOut::kAdd};
          kernel(tile);
        }
      }
    }
  }
};

thread_local std::vector<float> t_a_packed;

}  // namespace

void PackedMatrix::reset(int64_t k, int64_t n) {
  k_ = k;
  n_ = n;
  data_.assign(static_cast<size_t>(panels() * k * kPanelN), 0.0f);
}

void PackedMatrix::pack_transposed(const float* w, int64_t ld, int64_t n, int64_t k) {
  reset(k, n);
  for (int64_t p = 0; p < panels(); ++p) {
    float* dst = data_.data() + p * k * kPanelN;
    const int64_t cols = std::min(kPanelN, n - p * kPanelN);
    for (int64_t j = 0; j < cols; ++j) {
      const float* src = w + (p * kPanelN + j) * ld;
      for (int64_t kk = 0; kk < k; ++kk) dst[kk * kPanelN + j] = src[kk];
    }
  }
}

void PackedMatrix::pack(const float* b, int64_t ld, int64_t k, int64_t n) {
  reset(k, n);
  for (int64_t p = 0; p < panels(); ++p) {
    float* dst = data_.data() + p * k * kPanelN;
    const int64_t cols = std::min(kPanelN, n - p * kPanelN);
    for (int64_t kk = 0; kk < k; ++kk) std::copy_n(b + kk * ld + p * kPanelN, cols, dst + kk * kPanelN);
  }
}

void gemm(const float* a, int64_t lda, int64_t m, const PackedMatrix& b, const float* bias, float* c, int64_t ldc,
          GemmOut out, cpu::ThreadPool* pool, cpu::Isa isa) {
  if (m <= 0 || b.n() <= 0) return;
  const int64_t k = b.k(), tiles = (m + kTileM - 1) / kTileM;
  std::vector<float>& packed = t_a_packed;
  if (packed.size() < static_cast<size_t>(tiles * k * kTileM)) packed.resize(static_cast<size_t>(tiles * k * kTileM));
  const Job job{packed.data(), m, k, &b, bias, c, ldc, out, kernel_for(isa)};
  const int64_t row_tasks = (tiles + kTilesPerTask - 1) / kTilesPerTask;
  const int64_t col_tasks = (b.panels() + kPanelsPerTask - 1) / kPanelsPerTask;
  const bool parallel = pool != nullptr && pool->size() > 1 && m * k * b.n() >= kMinParallelMacs;
  if (!parallel) {
    for (int64_t t = 0; t < tiles; ++t) pack_a_tile(a, lda, m, k, t, packed.data());
    job.run(0, tiles, 0, b.panels());
    return;
  }
  pool->parallel_for(tiles, [&](int64_t t, int) { pack_a_tile(a, lda, m, k, t, packed.data()); });
  pool->parallel_for(row_tasks * col_tasks, [&](int64_t task, int) {
    const int64_t rt = task % row_tasks, ct = task / row_tasks;
    job.run(rt * kTilesPerTask, std::min(tiles, (rt + 1) * kTilesPerTask), ct * kPanelsPerTask,
            std::min(b.panels(), (ct + 1) * kPanelsPerTask));
  });
}

// ---- Elementwise ------------------------------------------------------------------------

namespace {

// exp(x) for x in [-87.3, 88] (clamped outside): Cephes' expf polynomial, ~1-2 ulp.
inline __m256 exp256(__m256 x) {
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.33654f)), _mm256_set1_ps(88.0f));
  const __m256 fx =
      _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), x);
  x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), x);
  __m256 y = _mm256_set1_ps(1.9875691500e-4f);
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.3981999507e-3f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(8.3334519073e-3f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(4.1665795894e-2f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.6666665459e-1f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(5.0000001201e-1f));
  y = _mm256_fmadd_ps(y, _mm256_mul_ps(x, x), _mm256_add_ps(x, _mm256_set1_ps(1.0f)));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(fx), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(y, _mm256_castsi256_ps(e));
}

float hmax(__m256 v) {
  alignas(32) float f[8];
  _mm256_store_ps(f, v);
  return *std::max_element(f, f + 8);
}

float hsum(__m256 v) {
  alignas(32) float f[8];
  _mm256_store_ps(f, v);
  float s = 0.0f;
  for (float x : f) s += x;
  return s;
}

}  // namespace

void softmax_scaled(float* x, int64_t n, float scale) {
  if (n <= 0) return;
  __m256 vmax = _mm256_set1_ps(-INFINITY);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) vmax = _mm256_max_ps(vmax, _mm256_mul_ps(_mm256_loadu_ps(x + i), _mm256_set1_ps(scale)));
  float mx = hmax(vmax);
  for (; i < n; ++i) mx = std::max(mx, x[i] * scale);
  const __m256 vs = _mm256_set1_ps(scale), vm = _mm256_set1_ps(mx);
  __m256 vsum = _mm256_setzero_ps();
  for (i = 0; i + 8 <= n; i += 8) {
    const __m256 e = exp256(_mm256_fmsub_ps(_mm256_loadu_ps(x + i), vs, vm));
    _mm256_storeu_ps(x + i, e);
    vsum = _mm256_add_ps(vsum, e);
  }
  float sum = hsum(vsum);
  for (; i < n; ++i) {
    x[i] = std::exp(x[i] * scale - mx);
    sum += x[i];
  }
  const float inv = 1.0f / sum;
  const __m256 vinv = _mm256_set1_ps(inv);
  for (i = 0; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), vinv));
  for (; i < n; ++i) x[i] *= inv;
}

void gelu_tanh(const float* x, int64_t n, float* out) {
  const float k = static_cast<float>(std::numbers::sqrt2 * std::numbers::inv_sqrtpi);  // √(2/π)
  const __m256 vk = _mm256_set1_ps(k), vc = _mm256_set1_ps(0.044715f), one = _mm256_set1_ps(1.0f);
  const __m256 two = _mm256_set1_ps(2.0f), half = _mm256_set1_ps(0.5f);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 u = _mm256_loadu_ps(x + i);
    const __m256 inner = _mm256_mul_ps(vk, _mm256_fmadd_ps(_mm256_mul_ps(vc, u), _mm256_mul_ps(u, u), u));
    // tanh(v) = 1 − 2 / (exp(2v) + 1): exact limits ±1, absolute error ~1e-7 near 0.
    const __m256 t = _mm256_sub_ps(one, _mm256_div_ps(two, _mm256_add_ps(exp256(_mm256_mul_ps(two, inner)), one)));
    _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_mul_ps(half, u), _mm256_add_ps(one, t)));
  }
  for (; i < n; ++i) {
    const float u = x[i];
    out[i] = 0.5f * u * (1.0f + std::tanh(k * (u + 0.044715f * u * u * u)));
  }
}

}  // namespace k2::vision
