// `k2serve bench serve`: vLLM's `vllm bench serve` for the random dataset against an
// OpenAI-compatible completions endpoint: same flags, same metric formulas, same printed
// table and result-file keys. Prompts are token-id lists, so no tokenizer is needed.
// Stateless functions; each call owns what it creates.
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "bench/serve/bench_metrics.h"
#include "shm/status.h"

namespace k2::bench {

struct BenchServeOptions {
  std::string backend = "vllm";
  std::string base_url;
  std::string host = "127.0.0.1";
  int64_t port = 8000;
  std::string endpoint = "/v1/completions";
  std::string model;
  std::string served_model_name;
  std::string dataset_name = "random";
  int64_t random_input_len = 1024;
  int64_t random_output_len = 128;
  double random_range_ratio = 0.0;
  int64_t random_prefix_len = 0;
  int64_t random_vocab_size = 0;  // 0: the model directory's config.json vocab_size
  int64_t num_prompts = 1000;
  double request_rate = std::numeric_limits<double>::infinity();
  double burstiness = 1.0;
  int64_t max_concurrency = 0;
  int64_t seed = 0;
  bool ignore_eos = false;
  double temperature = 0.0;
  std::string percentile_metrics = "ttft,tpot,itl,e2el";
  std::string metric_percentiles = "99";
  bool save_result = false;
  std::string result_dir;
  std::string result_filename;
  bool disable_test_run = false;
  bool help = false;
};

// Parses `args` (after "bench serve"); an error names the bad flag.
Result<BenchServeOptions> parse_bench_serve_options(const std::vector<std::string>& args);

struct BenchServeReport {
  BenchmarkMetrics metrics;
  std::string table;
  nlohmann::json result;
  std::optional<std::string> saved_path;
};

// Runs the benchmark; progress and the table go to stdout. Fails when the server cannot be
// reached or the single-prompt test run fails (as vLLM does).
Result<BenchServeReport> run_bench_serve(const BenchServeOptions& options);

// The command: returns the process exit code (0 when every request succeeded).
int bench_serve_command(const std::vector<std::string>& args);

}  // namespace k2::bench
