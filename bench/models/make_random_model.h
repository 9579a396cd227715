// `k2serve make-random-model`: writes a random-weight checkpoint in the exact Kimi-K2
// format (config.json, model-K-of-N.safetensors shards, model.safetensors.index.json, a
// Kimi tokenizer), BF16, FP8-block or INT4 pack-quantized, for benchmarks at sizes no test
// set has. Tensor data is generated chunk by chunk while it is written, so memory use is a
// few chunks whatever the model's size; the files are a pure function of the options.
//
// Stateless functions; each call owns what it creates.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "bench/models/model_preset.h"
#include "shm/status.h"
#include "workers/loader/progress.h"

namespace k2::bench {

struct RandomModelOptions {
  std::string preset;
  std::string weights = "bf16";
  int64_t seed = 0;
  std::string tokenizer;       // a Kimi tokenizer directory; empty: the bundled demo tokenizer
  int64_t max_shard_mb = 1024; // a shard is closed before it would pass this (a bigger tensor gets its own)
  int64_t threads = 0;         // generator threads; 0: every CPU this process may use
  int64_t vocab_size = 0;      // 0: the preset's (raised to the tokenizer's ids if smaller)
  bool overwrite = false;      // allow a non-empty OUT_DIR (its old shards are removed)
  bool dry_run = false;        // plan only: report sizes, write nothing
  bool help = false;
  std::string out_dir;         // the positional argument
};

Result<RandomModelOptions> parse_make_random_model_options(const std::vector<std::string>& args);

struct RandomModelReport {
  std::filesystem::path dir;
  ModelPreset preset;  // as written (vocab_size raised to the tokenizer's ids if needed)
  RandomWeights weights = RandomWeights::kBf16;
  int64_t num_tensors = 0;
  int64_t num_shards = 0;
  uint64_t tensor_bytes = 0;  // the index's total_size
  // Stored bytes one token reads at batch 1: one embedding row, every non-expert tensor,
  // num_experts_per_tok / n_routed_experts of the routed experts' (quantised) tensors.
  double active_bytes = 0;
  double seconds = 0;
};

// Writes the checkpoint (or, with dry_run, only fills the report).
Result<RandomModelReport> write_random_model(const RandomModelOptions& options,
                                             ProgressStyle progress = ProgressStyle::kAuto);

// The command (args after "make-random-model"): returns the process exit code.
int make_random_model_command(const std::vector<std::string>& args);

}  // namespace k2::bench
