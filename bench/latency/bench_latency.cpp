#include "bench/latency/bench_latency.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <random>
#include <set>
#include <string>

#include <sys/resource.h>

#include <nlohmann/json.hpp>

#include "bench/roofline/roofline.h"
#include "enginecore/protocol/option_table.h"
#include "kernels/ref/dense.h"
#include "workers/generate.h"
#include "workers/kv_cache.h"

namespace k2::bench {
namespace {

using Clock = std::chrono::steady_clock;

struct Args {
  std::string model;
  int64_t input_len = 32;
  int64_t output_len = 128;
  int64_t batch_size = 8;
  int64_t num_prompts = 64;  // throughput only
  int64_t num_iters = 30;
  int64_t num_iters_warmup = 10;
  std::string dtype = "auto";
  std::string quantization;
  std::string load_format = "auto";
  std::string kv_cache_dtype = "auto";
  int64_t block_size = 16;
  int64_t roofline_mib = 1024;
  bool json = false;
  bool help = false;
};

// Repetitions of each DRAM probe (one before the load, one after the run).
constexpr int kDramProbeReps = 3;

OptionTable<Args> make_table(bool throughput) {
  OptionTable<Args> t;
  t.add("--model", &Args::model, "model directory (or the positional argument)")
      .add("--input-len", &Args::input_len, "prompt tokens per request")
      .add("--output-len", &Args::output_len, "generated tokens per request");
  if (throughput) {
    t.add("--num-prompts", &Args::num_prompts, "requests, all in one batch");
  } else {
    t.add("--batch-size", &Args::batch_size, "requests per batch")
        .add("--num-iters", &Args::num_iters, "measured iterations")
        .add("--num-iters-warmup", &Args::num_iters_warmup, "iterations before measuring");
  }
  t.add("--dtype", &Args::dtype, "auto, bfloat16 or float32 (as k2serve serve)")
      .add("--quantization,-q", &Args::quantization, "routed experts: int8 or int4 (as k2serve serve)")
      .add("--load-format", &Args::load_format, "auto, or dummy for random weights from config.json")
      .add("--block-size", &Args::block_size, "KV cache block size")
      .add("--kv-cache-dtype", &Args::kv_cache_dtype, "auto (float32), bfloat16, float32 or fp8 (e4m3, per-tile scales)")
      .add("--roofline-mib", &Args::roofline_mib, "buffer of the DRAM bandwidth probe (MiB)")
      .add("--json", &Args::json, "print one JSON object")
      .add("--help,-h", &Args::help, "show this help");
  return t;
}

// One iteration's measurements.
struct IterationTimes {
  double prefill_s = 0;
  std::vector<double> step_s;           // per decode step
  std::vector<uint64_t> step_bytes;     // weights + KV read per decode step
  uint64_t kv_bytes = 0;                // the cache this iteration allocated
};

class Runner {
 public:
  Runner(const DeepSeekV3& model, const Args& a, KvCacheDtype kv_dtype) : model_(model), a_(a), kv_dtype_(kv_dtype) {}

  Result<IterationTimes> run(int64_t batch, uint64_t seed) {
    const ModelConfig& c = model_.config();
    const int64_t total = a_.input_len + a_.output_len;
    const int64_t blocks = batch * ((total + a_.block_size - 1) / a_.block_size);
    K2_ASSIGN_OR_RETURN(LatentKvCache cache, LatentKvCache::create(c.num_hidden_layers, blocks, a_.block_size,
                                                                   model_.cache_row_dim(), kv_dtype_));
    BlockAllocator allocator(blocks);
    IterationTimes t;
    t.kv_bytes =
        LatentKvCache::bytes_needed(c.num_hidden_layers, blocks, a_.block_size, model_.cache_row_dim(), kv_dtype_);
    std::vector<std::vector<int32_t>> tables(static_cast<size_t>(batch));
    std::vector<std::vector<int32_t>> prompts(static_cast<size_t>(batch));
    std::mt19937_64 rng(seed);
    for (int64_t b = 0; b < batch; ++b) {
      K2_RETURN_IF_ERROR(allocator.grow(tables[b], total, a_.block_size));
      for (int64_t i = 0; i < a_.input_len; ++i) prompts[b].push_back(static_cast<int32_t>(rng() % c.vocab_size));
    }
    ForwardBatch pre;
    for (int64_t b = 0; b < batch; ++b) pre.sequences.push_back(SequenceChunk{prompts[b], 0, tables[b]});
    auto t0 = Clock::now();
    K2_ASSIGN_OR_RETURN(Logits logits, model_.forward(pre, cache));
    t.prefill_s = std::chrono::duration<double>(Clock::now() - t0).count();
    std::vector<int32_t> next(static_cast<size_t>(batch));
    const auto bytes = model_.decode_bytes();
    const uint64_t kv_row =
        static_cast<uint64_t>(kv_cache_row_bytes(kv_dtype_, model_.cache_row_dim()) * c.num_hidden_layers);
    for (int64_t j = 0; j < a_.output_len; ++j) {
      ForwardBatch step;
      for (int64_t b = 0; b < batch; ++b) {
        next[b] = static_cast<int32_t>(ref::argmax(logits.row(b), logits.vocab));
        step.sequences.push_back(SequenceChunk{std::span<const int32_t>(&next[b], 1), a_.input_len + j, tables[b]});
      }
      ForwardTrace trace;
      t0 = Clock::now();
      K2_ASSIGN_OR_RETURN(logits, model_.forward(step, cache, &trace));
      t.step_s.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
      uint64_t experts = 0;  // distinct routed experts per MoE layer
      for (const RouterTrace& r : trace.routers) experts += std::set<int32_t>(r.idx.begin(), r.idx.end()).size();
      t.step_bytes.push_back(bytes.fixed + experts * bytes.per_expert +
                             static_cast<uint64_t>(batch) * (a_.input_len + j + 1) * kv_row);
    }
    return t;
  }

 private:
  const DeepSeekV3& model_;
  const Args& a_;
  KvCacheDtype kv_dtype_;
};

// Prefill FLOP: 2 per weight a token touches (the fixed part plus top-k experts per MoE
// layer), ignoring attention's quadratic term (small at these lengths).
double prefill_flop(const DeepSeekV3& model, int64_t tokens) {
  const auto b = model.decode_bytes();
  const ModelConfig& c = model.config();
  const double bytes_per_weight = model.weight_layouts().dense == WeightLayout::kF32 ? 4.0 : 2.0;
  const int64_t moe_layers = std::max<int64_t>(0, c.num_hidden_layers - c.first_k_dense_replace);
  const double expert_weights = static_cast<double>(b.per_expert) / bytes_per_weight;
  const double weights = static_cast<double>(b.fixed) / bytes_per_weight +
                         expert_weights * static_cast<double>(c.num_experts_per_tok * moe_layers);
  return 2.0 * weights * static_cast<double>(tokens);
}

// Forgets the process's peak RSS so far (Linux >= 4.0: "5" to clear_refs resets VmHWM), so
// the DRAM probe's buffer before the load is not counted as the model's memory.
bool reset_peak_rss() {
  std::ofstream f("/proc/self/clear_refs");
  f << "5";
  f.flush();
  return static_cast<bool>(f);
}

// VmHWM (the peak since the last reset); getrusage's lifetime peak where /proc lacks it.
uint64_t peak_rss_bytes() {
  std::ifstream f("/proc/self/status");
  for (std::string line; std::getline(f, line);) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stoull(line.substr(6)) * 1024;  // "VmHWM:  123 kB"
  }
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<uint64_t>(usage.ru_maxrss) * 1024;
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5))];
}

struct Summary {
  std::vector<double> latencies, prefills, steps;
  uint64_t kv_bytes = 0;  // the largest KV cache an iteration allocated
  uint64_t peak_rss_bytes = 0;  // of the process up to the end of the run (before the roofline probes)
  uint64_t decode_bytes = 0;
  double decode_seconds = 0;
};

Result<Summary> measure(const DeepSeekV3& model, const Args& a, int64_t batch, int64_t warmup, int64_t iters) {
  K2_ASSIGN_OR_RETURN(KvCacheDtype kv_dtype, kv_cache_dtype_for(a.kv_cache_dtype));
  Runner runner(model, a, kv_dtype);
  Summary s;
  for (int64_t i = 0; i < warmup + iters; ++i) {
    K2_ASSIGN_OR_RETURN(IterationTimes t, runner.run(batch, static_cast<uint64_t>(i)));
    s.kv_bytes = std::max(s.kv_bytes, t.kv_bytes);
    if (i < warmup) continue;
    double decode = 0;
    for (size_t j = 0; j < t.step_s.size(); ++j) {
      decode += t.step_s[j];
      s.decode_bytes += t.step_bytes[j];
      s.steps.push_back(t.step_s[j]);
    }
    s.decode_seconds += decode;
    s.prefills.push_back(t.prefill_s);
    s.latencies.push_back(t.prefill_s + decode);
  }
  s.peak_rss_bytes = peak_rss_bytes();
  return s;
}

nlohmann::json report(const DeepSeekV3& model, const Args& a, int64_t batch, const Summary& s,
                      const ProbeSpread& dram, double peak_gflops, bool amx) {
  const double dram_gbs = dram.max;
  const double step = percentile(s.steps, 0.5), prefill = percentile(s.prefills, 0.5);
  const double achieved_gbs = static_cast<double>(s.decode_bytes) / s.decode_seconds / 1e9;
  const double prefill_gflops = prefill_flop(model, batch * a.input_len) / prefill / 1e9;
  double total = 0;
  for (double l : s.latencies) total += l;
  const double peak_rss = static_cast<double>(s.peak_rss_bytes);
  const double resident = static_cast<double>(model.resident_bytes() + s.kv_bytes);
  return {{"dense_layout", weight_layout_name(model.weight_layouts().dense)},
          {"expert_layout", weight_layout_name(model.weight_layouts().experts)},
          {"batch_size", batch},
          {"input_len", a.input_len},
          {"output_len", a.output_len},
          {"avg_latency_s", total / static_cast<double>(s.latencies.size())},
          {"p50_latency_s", percentile(s.latencies, 0.5)},
          {"p90_latency_s", percentile(s.latencies, 0.9)},
          {"prefill_median_s", prefill},
          {"prefill_tokens_per_s", static_cast<double>(batch * a.input_len) / prefill},
          {"decode_step_median_s", step},
          {"decode_tokens_per_s", static_cast<double>(batch) / step},
          // The fastest step: on a shared host, the least disturbed estimate of the machine's own rate.
          {"decode_step_min_s", *std::min_element(s.steps.begin(), s.steps.end())},
          {"decode_read_gbs", achieved_gbs},
          {"dram_read_gbs", dram_gbs},  // the max of the probes before and after the run
          {"dram_read_gbs_min", dram.min},
          {"dram_read_gbs_median", dram.median},
          {"dram_probes", dram.count},
          {"dram_probe_spread", dram.relative_spread()},
          {"decode_roofline_fraction", achieved_gbs / dram_gbs},
          {"prefill_gflops", prefill_gflops},
          {"compute_peak", amx ? "amx_bf16" : "avx512_bf16"},
          {"compute_peak_gflops", peak_gflops},
          {"prefill_peak_fraction", peak_gflops > 0 ? prefill_gflops / peak_gflops : 0.0},
          {"weights_bytes", model.resident_bytes()},
          {"kv_cache_bytes", s.kv_bytes},
          {"peak_rss_bytes", peak_rss},
          {"peak_rss_over_weights_and_kv", peak_rss / resident}};
}

void print_table(const nlohmann::json& j) {
  auto f = [&](const char* k) { return j.at(k).get<double>(); };
  std::printf("dense %s, experts %s, kv cache %s, batch %lld, input %lld, output %lld\n",
              j.at("dense_layout").get<std::string>().c_str(), j.at("expert_layout").get<std::string>().c_str(),
              j.at("kv_cache_dtype").get<std::string>().c_str(),
              static_cast<long long>(j.at("batch_size").get<int64_t>()),
              static_cast<long long>(j.at("input_len").get<int64_t>()),
              static_cast<long long>(j.at("output_len").get<int64_t>()));
  if (j.contains("requests_per_s")) {
    std::printf("Throughput: %.2f requests/s, %.2f total tokens/s, %.2f output tokens/s\n", f("requests_per_s"),
                f("total_tokens_per_s"), f("output_tokens_per_s"));
  } else {
    std::printf("Avg latency: %.4f s (p50 %.4f, p90 %.4f)\n", f("avg_latency_s"), f("p50_latency_s"),
                f("p90_latency_s"));
  }
  std::printf("prefill: %.1f tok/s, %.1f GFLOP/s = %.3f of the %s peak (%.0f GFLOP/s)\n", f("prefill_tokens_per_s"),
              f("prefill_gflops"), f("prefill_peak_fraction"), j.at("compute_peak").get<std::string>().c_str(),
              f("compute_peak_gflops"));
  std::printf("decode:  %.1f tok/s, step %.2f ms (fastest %.2f ms), read %.2f GB/s = %.3f of the DRAM roofline (%.2f GB/s)\n",
              f("decode_tokens_per_s"), f("decode_step_median_s") * 1e3, f("decode_step_min_s") * 1e3,
              f("decode_read_gbs"), f("decode_roofline_fraction"), f("dram_read_gbs"));
  std::printf("roofline: DRAM read max of %lld probes before and after the run; they ranged %.2f-%.2f GB/s "
              "(median %.2f, spread %.0f%%)\n",
              static_cast<long long>(j.at("dram_probes").get<int64_t>()), f("dram_read_gbs_min"), f("dram_read_gbs"),
              f("dram_read_gbs_median"), 100 * f("dram_probe_spread"));
  std::printf("memory:  peak RSS %.1f MiB = %.2f x (weights %.1f MiB + KV cache %.1f MiB)\n",
              f("peak_rss_bytes") / (1 << 20), f("peak_rss_over_weights_and_kv"), f("weights_bytes") / (1 << 20),
              f("kv_cache_bytes") / (1 << 20));
}

int fail(const char* cmd, const Status& s) {
  std::cerr << "k2serve bench " << cmd << ": " << s.to_string() << "\n";
  return s.code() == Code::kInvalidArgument ? 2 : 1;
}

Status parse_args(const OptionTable<Args>& table, const std::vector<std::string>& argv, Args& a) {
  std::vector<std::string> pos;
  K2_RETURN_IF_ERROR(table.parse(argv, a, &pos));
  if (a.help) return Status::ok_status();
  if (a.model.empty() && pos.size() == 1) a.model = pos[0];
  if (a.model.empty()) return invalid_argument("a model directory is required");
  if (a.input_len < 1 || a.output_len < 1 || a.batch_size < 1 || a.num_prompts < 1 || a.num_iters < 1 ||
      a.num_iters_warmup < 0 || a.roofline_mib < 1)
    return invalid_argument("lengths, sizes and iteration counts must be positive");
  return Status::ok_status();
}

int run(const std::vector<std::string>& argv, bool throughput) {
  const char* cmd = throughput ? "throughput" : "latency";
  const OptionTable<Args> table = make_table(throughput);
  Args a;
  if (Status s = parse_args(table, argv, a); !s.ok()) return fail(cmd, s);
  if (a.help) {
    std::cout << table.help(Args{}, std::string("k2serve bench ") + cmd + " MODEL_DIR [options]");
    return 0;
  }
  auto layouts = weight_layouts_for(a.dtype, a.quantization);
  if (!layouts.ok()) return fail(cmd, layouts.status());
  // DRAM probes before the load and after the run, in the same process: the host is shared
  // and one probe varies by 2x between runs; the max of several is the machine's bandwidth.
  const uint64_t probe_bytes = static_cast<uint64_t>(a.roofline_mib) << 20;
  auto before = measure_dram_read_samples(usable_cpus(), probe_bytes, kDramProbeReps);
  if (!before.ok()) return fail(cmd, before.status());
  const bool rss_reset = reset_peak_rss();
  auto model = load_model(a.model, ProgressStyle::kAuto, a.load_format == "dummy", *layouts);
  if (!model.ok()) return fail(cmd, model.status());
  const int64_t batch = throughput ? a.num_prompts : a.batch_size;
  auto summary = measure(**model, a, batch, throughput ? 0 : a.num_iters_warmup, throughput ? 1 : a.num_iters);
  if (!summary.ok()) return fail(cmd, summary.status());
  auto after = measure_dram_read_samples(usable_cpus(), probe_bytes, kDramProbeReps);
  if (!after.ok()) return fail(cmd, after.status());
  before->insert(before->end(), after->begin(), after->end());
  const ProbeSpread dram = summarize_probes(std::move(*before));
  const double amx = measure_amx_bf16_gflops(usable_cpus(), 3, 0.05);
  const double peak = amx > 0 ? amx : measure_bf16_dot_gflops(usable_cpus(), 3, 0.05);
  nlohmann::json j = report(**model, a, batch, *summary, dram, peak, amx > 0);
  // Without the reset (no /proc/self/clear_refs) the peak includes the first probe's buffer.
  j["peak_rss_includes_probe"] = !rss_reset;
  j["command"] = cmd;
  j["kv_cache_dtype"] = kv_cache_dtype_name(*kv_cache_dtype_for(a.kv_cache_dtype));
  j["model"] = a.model;
  if (throughput) {  // vLLM's throughput figures: one batch of every prompt, end to end
    const double secs = j.at("avg_latency_s").get<double>();
    j["requests_per_s"] = static_cast<double>(batch) / secs;
    j["total_tokens_per_s"] = static_cast<double>(batch * (a.input_len + a.output_len)) / secs;
    j["output_tokens_per_s"] = static_cast<double>(batch * a.output_len) / secs;
  }
  if (a.json) {
    std::cout << j.dump() << "\n";
  } else {
    print_table(j);
  }
  return 0;
}

}  // namespace

int bench_latency_command(const std::vector<std::string>& args) { return run(args, false); }
int bench_throughput_command(const std::vector<std::string>& args) { return run(args, true); }

}  // namespace k2::bench
