// bench_onednn: our bf16 linear kernel (linear_bf16_mt, float32 activations rounded to bf16,
// bf16 weights in our packed layout) against oneDNN's matmul (bf16 x bf16 -> f32, weights
// in oneDNN's own blocked layout chosen with format_tag::any), same shapes, same thread
// count, one process run. Prints GFLOP/s of both and their ratio per M (rows), so the model
// can use oneDNN where it wins (prefill-sized M) and our kernel where it does not (decode).
//
//   bench_onednn [--in 7168] [--out 2048] [--threads 2] [--iters 20]
// oneDNN's threads come from its CPU runtime (OpenMP in Debian's build): OMP_NUM_THREADS is
// set to --threads before the first call.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <oneapi/dnnl/dnnl.hpp>

#include "int_options.h"
#include "kernels/cpu/isa.h"
#include "kernels/cpu/linear_mt.h"
#include "kernels/cpu/packed.h"
#include "kernels/cpu/thread_pool.h"

namespace {

struct Options {
  int64_t in = 7168, out = 2048, threads = 2, iters = 20;
};

Options parse(int argc, char** argv) {
  Options o;
  k2::bench::parse_int_options(argc, argv,
                               {{"--in", &o.in}, {"--out", &o.out}, {"--threads", &o.threads}, {"--iters", &o.iters}});
  return o;
}

template <class Fn>
double best_seconds(int64_t iters, Fn&& fn) {
  fn();  // warm up (oneDNN creates its primitive state, caches fill)
  double best = 1e30;
  for (int64_t i = 0; i < iters; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

uint16_t to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return static_cast<uint16_t>((u + 0x7fff + ((u >> 16) & 1)) >> 16);
}

// One oneDNN matmul of M x K (bf16) by K x N (bf16, reordered once) into f32, as the model
// would keep it: the weights reordered at load, the activations converted per call.
struct OneDnnLinear {
  dnnl::engine eng{dnnl::engine::kind::cpu, 0};
  dnnl::stream strm{eng};
  dnnl::matmul prim;
  dnnl::memory src, wei, dst;

  OneDnnLinear(int64_t m, int64_t k, int64_t n, const std::vector<float>& w_out_in) {
    using dt = dnnl::memory::data_type;
    using tag = dnnl::memory::format_tag;
    dnnl::memory::desc src_md({m, k}, dt::bf16, tag::ab);
    dnnl::memory::desc wei_any({k, n}, dt::bf16, tag::any);
    dnnl::memory::desc dst_md({m, n}, dt::f32, tag::ab);
    dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(src_md, wei_any, dst_md), eng);
    prim = dnnl::matmul(pd);
    src = dnnl::memory(src_md, eng);
    dst = dnnl::memory(dst_md, eng);
    // The checkpoint's [out, in] is [k, n] with strides (1, k): format "ba".
    dnnl::memory::desc plain({k, n}, dt::bf16, tag::ba);
    dnnl::memory w_plain(plain, eng);
    auto* wp = static_cast<uint16_t*>(w_plain.get_data_handle());
    for (size_t i = 0; i < w_out_in.size(); ++i) wp[i] = to_bf16(w_out_in[i]);
    wei = dnnl::memory(pd.weights_desc(), eng);
    dnnl::reorder(w_plain, wei).execute(strm, w_plain, wei);
    strm.wait();
  }

  void run(const float* x, int64_t m, int64_t k) {
    auto* s = static_cast<uint16_t*>(src.get_data_handle());
    for (int64_t i = 0; i < m * k; ++i) s[i] = to_bf16(x[i]);
    prim.execute(strm, {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wei}, {DNNL_ARG_DST, dst}});
    strm.wait();
  }
};

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  setenv("OMP_NUM_THREADS", std::to_string(o.threads).c_str(), 1);
  std::mt19937 rng(1);
  std::normal_distribution<float> dist(0.f, 0.02f);
  std::vector<float> w(static_cast<size_t>(o.in * o.out));
  for (float& v : w) v = dist(rng);
  const k2::cpu::PackedBf16 packed = k2::cpu::pack_bf16(w.data(), o.in, o.out, o.in);
  k2::cpu::ThreadPoolOptions pool_options;
  pool_options.threads = static_cast<int>(o.threads);
  k2::cpu::ThreadPool pool(pool_options);

  std::printf("bf16 linear, in %lld, out %lld, %lld threads, isa %s; best of %lld\n", static_cast<long long>(o.in),
              static_cast<long long>(o.out), static_cast<long long>(o.threads),
              k2::cpu::isa_name(k2::cpu::active_isa()), static_cast<long long>(o.iters));
  std::printf("%6s %14s %14s %10s\n", "M", "k2 GFLOP/s", "oneDNN GFLOP/s", "oneDNN/k2");
  for (int64_t m : {1, 4, 16, 64, 256, 512}) {
    std::vector<float> x(static_cast<size_t>(m * o.in));
    for (float& v : x) v = dist(rng);
    std::vector<float> y(static_cast<size_t>(m * o.out));
    const double ours = best_seconds(o.iters, [&] {
      k2::cpu::linear_bf16_mt(pool, x.data(), o.in, m, packed.view(), y.data(), o.out);
    });
    OneDnnLinear dnn(m, o.in, o.out, w);
    const double theirs = best_seconds(o.iters, [&] { dnn.run(x.data(), m, o.in); });
    const double flops = 2.0 * static_cast<double>(m) * static_cast<double>(o.in) * static_cast<double>(o.out);
    std::printf("%6lld %14.1f %14.1f %10.2f\n", static_cast<long long>(m), flops / ours * 1e-9, flops / theirs * 1e-9,
                ours / theirs);
  }
  return 0;
}
