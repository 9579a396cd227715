// Metrics of a serving benchmark, computed as vLLM's `vllm bench serve` computes them
// (benchmarks/serve.py: calculate_metrics), so figures are comparable side by side:
//   TTFT  = first streamed chunk - request start
//   TPOT  = (E2EL - TTFT) / (output_tokens - 1), requests with more than one output token
//   ITL   = gaps between consecutive streamed chunks, all requests pooled
//   E2EL  = last byte - request start
// mean / median / std (population) / percentiles in ms over successful requests only;
// throughputs divide by the benchmark duration. Plain value types and pure functions;
// thread-safe.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace k2::bench {

// What one request measured (seconds). Filled by the load generator.
struct RequestOutput {
  bool success = false;
  int64_t prompt_len = 0;
  int64_t output_tokens = 0;  // usage.completion_tokens, else the number of content chunks
  double ttft = 0;
  double latency = 0;
  std::vector<double> itl;
  std::string generated_text;
  std::string error;
};

struct MetricStats {
  double mean_ms = 0, median_ms = 0, std_ms = 0;
  std::vector<std::pair<double, double>> percentiles_ms;  // (p, value)
};

struct BenchmarkMetrics {
  int64_t completed = 0, failed = 0;
  int64_t total_input = 0, total_output = 0;
  double duration_s = 0;
  double request_throughput = 0, output_throughput = 0, total_token_throughput = 0;
  MetricStats ttft, tpot, itl, e2el;
};

// numpy.percentile with linear interpolation; 0 for an empty sample (vLLM's `x or 0`).
double percentile(std::vector<double> values, double p);

MetricStats summarize(const std::vector<double>& seconds, const std::vector<double>& percentiles);

BenchmarkMetrics calculate_metrics(const std::vector<RequestOutput>& outputs, double duration_s,
                                   const std::vector<double>& percentiles);

struct TableOptions {
  std::vector<std::string> percentile_metrics;  // of "ttft", "tpot", "itl", "e2el"
  int64_t max_concurrency = 0;                  // 0: not set
};

// vLLM's result table ("============ Serving Benchmark Result ============" ...).
std::string format_table(const BenchmarkMetrics& m, const TableOptions& options);

// vLLM's result keys: completed, failed, total_input_tokens, total_output_tokens,
// request_throughput, output_throughput, total_token_throughput, duration, then
// mean_/median_/std_/pNN_ + ttft/tpot/itl/e2el + _ms for each selected metric, and the
// per-request lists (input_lens, output_lens, ttfts, itls, generated_texts, errors).
nlohmann::json result_json(const BenchmarkMetrics& m, const std::vector<RequestOutput>& outputs,
                           const std::vector<std::string>& percentile_metrics);

// "99" -> 99, "50,90,99.9" -> {50, 90, 99.9}; an empty result on a malformed list.
std::vector<double> parse_percentiles(const std::string& list);
// "p99" for 99, "p99.9" for 99.9 (vLLM's key spelling).
std::string percentile_label(double p);

}  // namespace k2::bench
